package ipam

import (
	"math/big"
	"math/bits"
	"net/netip"
)

// u128 is an unsigned 128-bit integer used for address arithmetic; an IPv4
// address occupies the low 32 bits.
type u128 struct{ hi, lo uint64 }

func u128From(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var u u128
	for i := 0; i < 8; i++ {
		u.hi = u.hi<<8 | uint64(b[i])
		u.lo = u.lo<<8 | uint64(b[i+8])
	}
	return u
}

// addr converts u back to an address of the given family (4 or 6). For
// IPv4 only the low 32 bits are used.
func (u u128) addr(version int) netip.Addr {
	if version == 4 {
		v := uint32(u.lo)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	var b [16]byte
	for i := 7; i >= 0; i-- {
		b[i] = byte(u.hi >> (8 * (7 - i)))
		b[i+8] = byte(u.lo >> (8 * (7 - i)))
	}
	return netip.AddrFrom16(b)
}

func (u u128) cmp(v u128) int {
	switch {
	case u.hi < v.hi:
		return -1
	case u.hi > v.hi:
		return 1
	case u.lo < v.lo:
		return -1
	case u.lo > v.lo:
		return 1
	}
	return 0
}

func (u u128) isZero() bool { return u.hi == 0 && u.lo == 0 }

// add returns u+v and whether it overflowed 128 bits.
func (u u128) add(v u128) (u128, bool) {
	lo, c := bits.Add64(u.lo, v.lo, 0)
	hi, c := bits.Add64(u.hi, v.hi, c)
	return u128{hi, lo}, c != 0
}

// sub returns u-v and whether it borrowed (u < v).
func (u u128) sub(v u128) (u128, bool) {
	lo, b := bits.Sub64(u.lo, v.lo, 0)
	hi, b := bits.Sub64(u.hi, v.hi, b)
	return u128{hi, lo}, b != 0
}

func (u u128) add64(n uint64) (u128, bool) { return u.add(u128{lo: n}) }

func (u u128) sub64(n uint64) (u128, bool) { return u.sub(u128{lo: n}) }

// big returns u as a big.Int.
func (u u128) big() *big.Int {
	z := new(big.Int).SetUint64(u.hi)
	z.Lsh(z, 64)
	return z.Or(z, new(big.Int).SetUint64(u.lo))
}

// ones returns a value with the low n bits set (0 <= n <= 128).
func ones(n int) u128 {
	switch {
	case n <= 0:
		return u128{}
	case n < 64:
		return u128{lo: 1<<uint(n) - 1}
	case n < 128:
		return u128{hi: 1<<uint(n-64) - 1, lo: ^uint64(0)}
	}
	return u128{^uint64(0), ^uint64(0)}
}

func (u u128) and(v u128) u128 { return u128{u.hi & v.hi, u.lo & v.lo} }
func (u u128) or(v u128) u128  { return u128{u.hi | v.hi, u.lo | v.lo} }
func (u u128) not() u128       { return u128{^u.hi, ^u.lo} }

// prefixRange returns the first and last address of p as integers.
func prefixRange(p netip.Prefix) (first, last u128) {
	p = p.Masked()
	host := p.Addr().BitLen() - p.Bits()
	first = u128From(p.Addr())
	last = first.or(ones(host))
	return first, last
}

func versionOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}
