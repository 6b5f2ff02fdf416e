package ipam

import (
	"iter"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestRandomCandidateEdges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	if a := RandomCandidate(nil, rng); a.IsValid() {
		t.Fatalf("no pools: %v", a)
	}
	if a := RandomCandidate([]Pool{pool("10.0.0.9", "10.0.0.2")}, rng); a.IsValid() {
		t.Fatalf("malformed pool: %v", a)
	}
	single := []Pool{pool("10.0.0.7", "10.0.0.7")}
	for range 10 {
		if a := RandomCandidate(single, rng); a != addr("10.0.0.7") {
			t.Fatalf("single: %v", a)
		}
	}
	whole := []Pool{pool("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}
	whole4 := []Pool{pool("0.0.0.0", "255.255.255.255")}
	// Overlapping pools whose sizes overflow 128 bits still give an
	// address of the pools.
	twice := append(slices.Clone(whole), whole[0], pool("10.0.0.9", "10.0.0.1"))
	for range 100 {
		if a := RandomCandidate(twice, rng); !a.Is6() {
			t.Fatalf("saturated: %v", a)
		}
		if a := RandomCandidate(whole, rng); !a.Is6() {
			t.Fatalf("whole v6: %v", a)
		}
		if a := RandomCandidate(whole4, rng); !a.Is4() {
			t.Fatalf("whole v4: %v", a)
		}
	}
}

// Every candidate lies in some pool, for pools of any size.
func TestRandomCandidateInPools(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v4 := rapid.Bool().Draw(t, "v4")
		n := rapid.IntRange(1, 4).Draw(t, "n")
		var pools []Pool
		for range n {
			a, b := genAddr(t, v4, "a"), genAddr(t, v4, "b")
			if b.Less(a) {
				a, b = b, a
			}
			pools = append(pools, Pool{a, b})
		}
		rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 0))
		for range 20 {
			c := RandomCandidate(pools, rng)
			if !slices.ContainsFunc(pools, func(p Pool) bool { return p.Contains(c) }) {
				t.Fatalf("candidate %v not in %v", c, pools)
			}
		}
	})
}

// Candidates are uniform over all addresses: pools of 1 and 3 addresses get
// 1/4 and 3/4 of the picks, and every address about the same share.
func TestRandomCandidateUniform(t *testing.T) {
	pools := []Pool{pool("10.0.0.1", "10.0.0.1"), pool("10.0.0.10", "10.0.0.12")}
	rng := rand.New(rand.NewPCG(7, 7))
	count := map[netip.Addr]int{}
	const draws = 40000
	for range draws {
		count[RandomCandidate(pools, rng)]++
	}
	if len(count) != 4 {
		t.Fatalf("picked %v", count)
	}
	for a, c := range count {
		if c < draws/4-draws/40 || c > draws/4+draws/40 {
			t.Errorf("%v picked %d times of %d", a, c, draws)
		}
	}
	// Huge pools: a /64 next to a 2-address pool is practically never the
	// small one, and halves of the /64 are hit evenly.
	big := []Pool{pool("2001:db8::1", "2001:db8::2"), pool("2001:db8:0:1::", "2001:db8:0:1:ffff:ffff:ffff:ffff")}
	low := 0
	for range 10000 {
		c := RandomCandidate(big, rng)
		if big[0].Contains(c) {
			t.Fatalf("picked small pool %v", c)
		}
		if c.As16()[8] < 0x80 {
			low++
		}
	}
	if low < 4700 || low > 5300 {
		t.Errorf("lower half of /64 picked %d of 10000", low)
	}
}

func seq(addrs ...string) iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		for _, s := range addrs {
			if !yield(addr(s)) {
				return
			}
		}
	}
}

func TestFirstFree(t *testing.T) {
	v4 := []Pool{pool("10.0.0.2", "10.0.0.5"), pool("10.0.0.10", "10.0.0.11")}
	for _, tc := range []struct {
		name  string
		pools []Pool
		alloc []string
		want  string
	}{
		{"empty", v4, nil, "10.0.0.2"},
		{"gap at start", v4, []string{"10.0.0.3"}, "10.0.0.2"},
		{"gap in middle", v4, []string{"10.0.0.2", "10.0.0.3", "10.0.0.5"}, "10.0.0.4"},
		{"first pool full", v4, []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}, "10.0.0.10"},
		{"outside entries skipped", v4, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.7", "10.0.0.10"}, "10.0.0.11"},
		{"duplicates", v4, []string{"10.0.0.2", "10.0.0.2", "10.0.0.3"}, "10.0.0.4"},
		{"all full", v4, []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.10", "10.0.0.11"}, ""},
		{"other family skipped", v4, []string{"10.0.0.2", "2001:db8::3"}, "10.0.0.3"},
		{"unsorted pools", []Pool{v4[1], v4[0]}, []string{"10.0.0.2"}, "10.0.0.3"},
		{"no pools", nil, nil, ""},
		{"end of space", []Pool{pool("255.255.255.254", "255.255.255.255")}, []string{"255.255.255.254", "255.255.255.255"}, ""},
		{"end of v6 space", []Pool{pool("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
			[]string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"v6 /64", []Pool{pool("2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff")}, []string{"2001:db8::1", "2001:db8::2"}, "2001:db8::3"},
		{"overlapping pools", []Pool{pool("10.0.0.2", "10.0.0.5"), pool("10.0.0.4", "10.0.0.8")},
			[]string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}, "10.0.0.6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := FirstFree(tc.pools, seq(tc.alloc...))
			if tc.want == "" {
				if ok {
					t.Fatalf("got %v, want none", got)
				}
				return
			}
			if !ok || got != addr(tc.want) {
				t.Fatalf("got %v %v, want %s", got, ok, tc.want)
			}
		})
	}
}

// FirstFree stops reading at the first gap: only allocated entries before
// it are consumed, whatever the pool size.
func TestFirstFreeReadsOnlyUpToGap(t *testing.T) {
	pools := []Pool{pool("2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff")}
	read := 0
	allocated := func(yield func(netip.Addr) bool) {
		a := addr("2001:db8::1")
		for i := 0; i < 1000000; i++ {
			if i == 500 { // leave a hole
				a = a.Next()
			}
			read++
			if !yield(a) {
				return
			}
			a = a.Next()
		}
	}
	got, ok := FirstFree(pools, allocated)
	if !ok || got != addr("2001:db8::1f5") {
		t.Fatalf("got %v %v", got, ok)
	}
	if read != 501 {
		t.Fatalf("read %d entries", read)
	}
}

// FirstFree agrees with a brute-force scan of small pools.
func TestFirstFreeProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 4).Draw(t, "n")
		var pools []Pool
		for range n {
			s := rapid.IntRange(0, 40).Draw(t, "s")
			e := s + rapid.IntRange(-1, 6).Draw(t, "len")
			pools = append(pools, Pool{netip.AddrFrom4([4]byte{10, 0, 0, byte(s)}), netip.AddrFrom4([4]byte{10, 0, 0, byte(max(e, 0))})})
		}
		allocSet := map[int]bool{}
		for _, x := range rapid.SliceOf(rapid.IntRange(0, 50)).Draw(t, "alloc") {
			allocSet[x] = true
		}
		var alloc []netip.Addr
		for x := 0; x <= 50; x++ {
			if allocSet[x] {
				alloc = append(alloc, netip.AddrFrom4([4]byte{10, 0, 0, byte(x)}))
			}
		}
		var want netip.Addr
		for x := 0; x <= 50 && !want.IsValid(); x++ {
			a := netip.AddrFrom4([4]byte{10, 0, 0, byte(x)})
			if !allocSet[x] && slices.ContainsFunc(pools, func(p Pool) bool { return p.Contains(a) }) {
				want = a
			}
		}
		got, ok := FirstFree(pools, slices.Values(alloc))
		if ok != want.IsValid() || (ok && got != want) {
			t.Fatalf("FirstFree(%v, %v) = %v %v, want %v", pools, alloc, got, ok, want)
		}
	})
}
