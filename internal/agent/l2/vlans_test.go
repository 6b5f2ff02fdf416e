package l2

import (
	"fmt"
	"slices"
	"testing"
)

func TestLocalVLANs(t *testing.T) {
	l := newLocalVLANs()
	l.recover(map[string]string{
		LocalVLANKey("net-a"): "5",
		LocalVLANKey("net-b"): "5",    // recorded twice: the first (by key) keeps it
		LocalVLANKey("net-c"): "4095", // out of range: re-allocated
		LocalVLANKey("net-d"): "x",
		"other-key":           "1",
	})
	if v, _ := l.get("net-a"); v != 5 {
		t.Errorf("net-a = %d, want its recorded 5", v)
	}
	// New allocations take the lowest free VLANs, around the recorded one.
	got := map[string]uint16{}
	for _, net := range []string{"net-b", "net-c", "net-d", "net-e", "net-f"} {
		got[net], _ = l.get(net)
	}
	vals := []uint16{}
	for _, v := range got {
		vals = append(vals, v)
	}
	slices.Sort(vals)
	if !slices.Equal(vals, []uint16{1, 2, 3, 4, 6}) {
		t.Errorf("allocated %v, want 1-4 and 6 (5 is net-a's)", got)
	}
	// Records are fixed up: changed and new ones set, none deleted yet.
	set, del := l.changes()
	if len(del) != 0 || set[LocalVLANKey("net-a")] != "" || set[LocalVLANKey("net-b")] == "" || set[LocalVLANKey("net-e")] == "" {
		t.Errorf("changes: set %v, del %v", set, del)
	}
	l.saved()
	// Releasing frees the VLAN for the next network and drops the record.
	l.release(map[string]bool{"net-a": true})
	if _, del := l.changes(); len(del) != 5 {
		t.Errorf("records to delete after release: %v", del)
	}
	if v, _ := l.get("net-z"); v != 1 {
		t.Errorf("net-z = %d, want the freed 1", v)
	}
	// All 4094 taken: no more.
	for i := 0; i < 4094; i++ {
		l.get(fmt.Sprintf("filler-%d", i))
	}
	if _, ok := l.get("one-too-many"); ok {
		t.Error("allocated a 4095th local VLAN")
	}
}
