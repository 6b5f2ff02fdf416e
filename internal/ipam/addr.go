package ipam

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

// ParseIP parses an IP address as Neutron's ip_address validator does:
// IPv4 must be plain dotted decimal (a leading zero gets "is not an
// accepted IP address, '10.0.0.1' is recommended"), IPv6 may take any
// RFC 4291 form but no zone, and whitespace is never allowed. The error is
// attribute-level (Type TypeBadRequest, Message the bare reason).
func ParseIP(s string) (netip.Addr, error) {
	if hasSpace(s) {
		return netip.Addr{}, badAttr("'%s' is not a valid IP address", s)
	}
	a, err := netip.ParseAddr(s)
	if err == nil && a.Zone() == "" {
		return a, nil
	}
	if rec, ok := zeroFilledIPv4(s); ok {
		return netip.Addr{}, badAttr("'%s' is not an accepted IP address, '%s' is recommended", s, rec)
	}
	return netip.Addr{}, badAttr("'%s' is not a valid IP address", s)
}

// zeroFilledIPv4 recognises dotted-decimal IPv4 with leading zeros in some
// octet and returns the canonical form Neutron recommends.
func zeroFilledIPv4(s string) (string, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return "", false
	}
	var b [4]byte
	for i, p := range parts {
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return "", false
		}
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil {
			return "", false
		}
		b[i] = byte(n)
	}
	return netip.AddrFrom4(b).String(), true
}

func hasSpace(s string) bool {
	return strings.IndexFunc(s, unicode.IsSpace) >= 0
}

// IPVersion is 4 for an IPv4 address and 6 otherwise (IPv4-mapped IPv6
// addresses are IPv6, as in Neutron).
func IPVersion(a netip.Addr) int { return versionOf(a) }

// ValidateIPVersion checks that value (an address or a prefix, as the user
// wrote it) is of ipVersion, with Neutron's message "<name> '<value>' does
// not match the ip_version '<n>'". Unparsable values are reported the same
// way.
func ValidateIPVersion(name, value string, ipVersion int) error {
	var a netip.Addr
	if p, err := netip.ParsePrefix(value); err == nil {
		a = p.Addr()
	} else if x, err := netip.ParseAddr(value); err == nil {
		a = x
	}
	if !a.IsValid() || versionOf(a) != ipVersion {
		return invalidInput("%s '%s' does not match the ip_version '%d'", name, value, ipVersion)
	}
	return nil
}

// SortKey returns a fixed-width lowercase hexadecimal key for a: 8 digits
// for IPv4 and 32 for IPv6 (IPv4-mapped IPv6 included). Keys of one family
// sort bytewise in address order, so a database column holding them can be
// range-scanned and searched for gaps. The zone, if any, is dropped.
func SortKey(a netip.Addr) string {
	if a.Is4() {
		b := a.As4()
		return hex.EncodeToString(b[:])
	}
	b := a.As16()
	return hex.EncodeToString(b[:])
}

// ParseSortKey is the inverse of SortKey. It accepts exactly 8 or 32
// lowercase hexadecimal digits.
func ParseSortKey(key string) (netip.Addr, error) {
	if len(key) != 8 && len(key) != 32 {
		return netip.Addr{}, fmt.Errorf("ipam: sort key %q: want 8 or 32 hex digits", key)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return netip.Addr{}, fmt.Errorf("ipam: sort key %q: not lowercase hex", key)
		}
	}
	b, _ := hex.DecodeString(key)
	a, _ := netip.AddrFromSlice(b)
	return a, nil
}
