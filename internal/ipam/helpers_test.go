package ipam

import (
	"errors"
	"net/netip"
	"testing"

	"pgregory.net/rapid"
)

func addr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func pool(s, e string) Pool        { return Pool{addr(s), addr(e)} }

// wantErr checks err against an expected Neutron type and message; an
// empty typ means no error.
func wantErr(t *testing.T, err error, typ, msg string) {
	t.Helper()
	if typ == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want *Error %s: %q", err, typ, msg)
	}
	if e.Type != typ || e.Message != msg {
		t.Fatalf("got %s: %q\nwant %s: %q", e.Type, e.Message, typ, msg)
	}
}

// genAddr draws an address of the given family, biased towards the edges
// of the address space.
func genAddr(t *rapid.T, v4 bool, label string) netip.Addr {
	if v4 {
		var b [4]byte
		for i := range b {
			b[i] = rapid.SampledFrom([]byte{0, 1, 0x7f, 0x80, 0xfe, 0xff, byte(rapid.Uint8().Draw(t, label+"b"))}).Draw(t, label)
		}
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	for i := range b {
		b[i] = rapid.SampledFrom([]byte{0, 1, 0x7f, 0x80, 0xfe, 0xff, byte(rapid.Uint8().Draw(t, label+"b"))}).Draw(t, label)
	}
	return netip.AddrFrom16(b)
}

func bitLen(v4 bool) int {
	if v4 {
		return 32
	}
	return 128
}
