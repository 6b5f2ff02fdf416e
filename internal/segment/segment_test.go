package segment

import (
	"slices"
	"testing"
)

func TestFirstFree(t *testing.T) {
	cases := []struct {
		ranges []Range
		used   []int64
		want   int64
		ok     bool
	}{
		{[]Range{{1, 10}}, nil, 1, true},
		{[]Range{{1, 10}}, []int64{1, 2, 3}, 4, true},
		{[]Range{{1, 3}}, []int64{1, 2, 3}, 0, false},
		{[]Range{{1, 3}, {100, 101}}, []int64{1, 2, 3, 100}, 101, true},
		{[]Range{{5, 10}}, []int64{1, 2, 5, 7}, 6, true},
	}
	for _, c := range cases {
		got, ok := firstFree(c.ranges, c.used)
		if got != c.want || ok != c.ok {
			t.Errorf("firstFree(%v, %v) = %d,%v want %d,%v", c.ranges, c.used, got, ok, c.want, c.ok)
		}
	}
}

func TestFreeIDs(t *testing.T) {
	got := freeIDs([]Range{{1, 4}, {10, 1 << 24}}, []int64{2, 3, 10, 12}, 4)
	if !slices.Equal(got, []int64{1, 4, 11, 13}) {
		t.Errorf("freeIDs = %v, want [1 4 11 13]", got)
	}
	if got := freeIDs([]Range{{1, 2}}, []int64{1, 2}, 4); len(got) != 0 {
		t.Errorf("freeIDs of a full range = %v", got)
	}
}

func TestValidate(t *testing.T) {
	m := New(DefaultConfig())
	ok := []struct {
		t, p string
		id   int64
	}{{Flat, "public", -1}, {VLAN, "physnet1", 100}, {VLAN, "physnet1", -1}, {VXLAN, "", 5000}, {GRE, "", -1}}
	for _, c := range ok {
		if err := m.Validate(c.t, c.p, c.id); err != nil {
			t.Errorf("Validate(%s,%s,%d): %v", c.t, c.p, c.id, err)
		}
	}
	bad := []struct {
		t, p string
		id   int64
	}{{Flat, "", -1}, {Flat, "public", 3}, {VLAN, "physnet1", 4095}, {VLAN, "nope", 5}, {VXLAN, "physnet1", 5}, {VXLAN, "", 1 << 24}, {"bogus", "", -1}}
	for _, c := range bad {
		if err := m.Validate(c.t, c.p, c.id); err == nil {
			t.Errorf("Validate(%s,%s,%d) accepted", c.t, c.p, c.id)
		}
	}
}
