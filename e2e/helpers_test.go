package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/neutrino-sdn/neutrino/internal/apitest"
)

// str formats a decoded JSON value as a string ("" for nil).
func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// num returns a decoded JSON number (float64 or json.Number) as an int64,
// or -1 when v is not a number.
func num(v any) int64 {
	switch x := v.(type) {
	case float64:
		return int64(x)
	case fmt.Stringer:
		if n, err := strconv.ParseInt(x.String(), 10, 64); err == nil {
			return n
		}
	case string:
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return n
		}
	}
	return -1
}

// strings returns a decoded JSON list of strings.
func stringList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, str(e))
	}
	return out
}

// sameStrings reports whether the JSON list v holds exactly want, in any order.
func sameStrings(v any, want ...string) bool {
	got := stringList(v)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	return slices.Equal(got, want)
}

// inPrefix reports whether addr is an address inside cidr.
func inPrefix(addr, cidr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	p, err := netip.ParsePrefix(cidr)
	return err == nil && p.Contains(a)
}

// inPool reports whether the address ip lies in [start, end].
func inPool(ip, start, end string) bool {
	a, errA := netip.ParseAddr(ip)
	s, errS := netip.ParseAddr(start)
	e, errE := netip.ParseAddr(end)
	return errA == nil && errS == nil && errE == nil && a.Compare(s) >= 0 && a.Compare(e) <= 0
}

// firstOf returns the first element of a JSON list, or nil.
func firstOf(l []any) any {
	if len(l) == 0 {
		return nil
	}
	return l[0]
}

// fixedIPs returns the ip_address of each entry of a fixed_ips list.
func fixedIPs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		if m, ok := e.(map[string]any); ok {
			out = append(out, str(m["ip_address"]))
		}
	}
	return out
}

// assertNothingLeft checks through the API that no resource a workflow
// creates is left on the server: no networks, subnets, ports, routers,
// floating IPs or RBAC policies, and no security groups but the
// per-project "default" ones Neutron creates by itself.
func assertNothingLeft(t *testing.T, n *Neutrino) {
	t.Helper()
	api := apitest.NewClient(t, n.URL, "")
	for _, c := range []struct{ path, key string }{
		{"networks", "networks"}, {"subnets", "subnets"}, {"ports", "ports"},
		{"routers", "routers"}, {"floatingips", "floatingips"},
		{"rbac-policies", "rbac_policies"}, {"security-groups", "security_groups"},
	} {
		for _, item := range listItems(t, api, "/v2.0/"+c.path, c.key) {
			if c.key == "security_groups" && item["name"] == "default" {
				continue
			}
			t.Errorf("left behind in %s: %v", c.path, item)
		}
	}
}

// listItems GETs a collection and returns the objects under key, failing
// the test unless the answer is 200 with that key (clients look for it).
func listItems(t *testing.T, api *apitest.Client, path, key string) []map[string]any {
	t.Helper()
	r := api.Do("GET", path, nil)
	if _, ok := r.Body[key].([]any); r.Status != 200 || !ok {
		t.Fatalf("GET %s: want 200 with a %q list, got %d %s", path, key, r.Status, r.Raw)
	}
	return r.Items(key)
}
