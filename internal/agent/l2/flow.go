package l2

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Flow is one OpenFlow flow in ovs-ofctl syntax. Match never contains the
// table, priority or cookie; together with Table and Priority it is the
// flow's identity (OpenFlow replaces a flow added with the same table,
// priority and match).
type Flow struct {
	Table    Table
	Priority uint16
	// Match is the comma-separated match fields, "" for match-all.
	Match string
	// Actions are the instructions, e.g. "mod_vlan_vid:3,goto_table:10".
	Actions string
	// Cookie is set when the flow is installed (see Cookie).
	Cookie uint64
}

// FlowKey identifies a flow within a bridge.
type FlowKey struct {
	Table    Table
	Priority uint16
	Match    string
}

// Key returns the flow's identity.
func (f Flow) Key() FlowKey { return FlowKey{f.Table, f.Priority, f.Match} }

// matchPart renders table, priority, cookie and match.
func (f Flow) matchPart() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table=%d,priority=%d", f.Table, f.Priority)
	if f.Cookie != 0 {
		fmt.Fprintf(&b, ",cookie=%#x", f.Cookie)
	}
	if f.Match != "" {
		b.WriteString(",")
		b.WriteString(f.Match)
	}
	return b.String()
}

// String renders the flow as ovs-ofctl add-flow takes it.
func (f Flow) String() string {
	return f.matchPart() + ",actions=" + f.Actions
}

// Cookies: the upper 48 bits identify one run of the agent, the lower 16
// bits the table the flow lives in. A restarted agent installs its whole
// state under a new run and then deletes every flow of other runs, so flows
// it did not reproduce disappear and the others are replaced in place.
const (
	cookieRunShift = 16
	cookieTableBit = 1<<cookieRunShift - 1
	// CookieRunMask masks the run part of a cookie.
	CookieRunMask uint64 = ^uint64(cookieTableBit)
)

// Cookie is the cookie of flows in table t installed by run.
func Cookie(run uint64, t Table) uint64 { return run<<cookieRunShift | uint64(t) }

// CookieRun is the run part of a cookie.
func CookieRun(cookie uint64) uint64 { return cookie >> cookieRunShift }

// FlowSet is the flows of one bridge by identity.
type FlowSet map[FlowKey]Flow

// Sorted returns the flows ordered by table, descending priority, match:
// the order ovs-ofctl shows, and a stable order for tests and bundles.
func (s FlowSet) Sorted() []Flow {
	out := make([]Flow, 0, len(s))
	for _, f := range s {
		out = append(out, f)
	}
	sortFlows(out)
	return out
}

// Diff returns what turns the installed set into s: flows to add (new, or
// with other actions or cookie) and flows to delete.
func (s FlowSet) Diff(installed FlowSet) (add, del []Flow) {
	for k, f := range s {
		if old, ok := installed[k]; !ok || old.Actions != f.Actions || old.Cookie != f.Cookie {
			add = append(add, f)
		}
	}
	for k, f := range installed {
		if _, ok := s[k]; !ok {
			del = append(del, f)
		}
	}
	sortFlows(add)
	sortFlows(del)
	return add, del
}

func sortFlows(fs []Flow) {
	sort.Slice(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		return a.Match < b.Match
	})
}

// hex renders n as OpenFlow field values are shown.
func hex(n uint64) string { return "0x" + strconv.FormatUint(n, 16) }
