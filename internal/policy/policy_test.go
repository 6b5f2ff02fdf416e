package policy

import (
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/auth"
)

func TestAllowed(t *testing.T) {
	admin := &auth.Identity{ProjectID: "a", Roles: []string{"admin"}, IsAdmin: true}
	member := &auth.Identity{ProjectID: "p1", Roles: []string{"member", "reader"}}
	reader := &auth.Identity{ProjectID: "p1", Roles: []string{"reader"}}
	other := &auth.Identity{ProjectID: "p2", Roles: []string{"member"}}
	// A role with no meaning in Neutron's policy grants nothing in p1.
	custom := &auth.Identity{ProjectID: "p1", Roles: []string{"auditor"}}
	own := Facts{Owner: "p1"}
	shared := Facts{Owner: "p1", Shared: true}
	cases := []struct {
		name    string
		rule    Rule
		id      *auth.Identity
		f       Facts
		writing bool
		want    bool
	}{
		{"admin sees all", Owner, admin, own, false, true},
		{"owner reads", Owner, member, own, false, true},
		{"other project cannot read", Owner, other, own, false, false},
		{"shared is readable by others", OwnerOrShared, other, shared, false, true},
		{"shared is not writable by others", Owner, other, shared, true, false},
		{"reader cannot write own", Owner, reader, own, true, false},
		{"reader reads own", Owner, reader, own, false, true},
		{"network owner reads port", OwnerOrNetworkOwner, other, Facts{Owner: "p1", NetworkOwner: "p2"}, false, true},
		{"agents admin only", AdminOnly, member, Facts{}, false, false},
		{"reader cannot create", Anyone, reader, Facts{}, true, false},
		{"member creates", Anyone, member, Facts{}, true, true},
		{"custom role cannot read own", Owner, custom, own, false, false},
		{"custom role cannot write own", Owner, custom, own, true, false},
		{"custom role reads shared", OwnerOrShared, custom, Facts{Owner: "p9", Shared: true}, false, true},
		{"empty owner is nobody's", Owner, &auth.Identity{Roles: []string{"member"}}, Facts{}, false, false},
		{"anonymous refused", Anyone, nil, Facts{}, false, false},
	}
	for _, c := range cases {
		if got := Allowed(c.rule, c.id, c.f, c.writing); got != c.want {
			t.Errorf("%s: got %v want %v", c.name, got, c.want)
		}
	}
}
