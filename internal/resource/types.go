package resource

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// A Type converts a decoded JSON value (or a query-string filter) into the
// canonical Go value stored for an attribute, rejecting what is invalid.
// Canonical values: string, bool, int64, nil, []any, map[string]any.
type Type interface {
	// Convert validates v (as decoded by encoding/json with UseNumber) and
	// returns its canonical form.
	Convert(v any) (any, error)
	// ParseFilter converts one query-string value into the canonical form.
	ParseFilter(s string) (any, error)
}

// invalid is a validation failure; the API turns it into a 400 naming the
// attribute.
type invalid struct{ msg string }

func (e *invalid) Error() string { return e.msg }

func invalidf(format string, args ...any) error { return &invalid{fmt.Sprintf(format, args...)} }

// StringType is a string, optionally bounded in length or restricted to a set.
type StringType struct {
	MaxLen int
	Enum   []string // allowed values, if any
}

func (t StringType) Convert(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, invalidf("'%v' is not a valid string", show(v))
	}
	if t.MaxLen > 0 && len(s) > t.MaxLen {
		return nil, invalidf("'%s' exceeds maximum length of %d", s, t.MaxLen)
	}
	if len(t.Enum) > 0 {
		for _, e := range t.Enum {
			if e == s {
				return s, nil
			}
		}
		return nil, invalidf("'%s' is not in %v", s, t.Enum)
	}
	return s, nil
}

func (t StringType) ParseFilter(s string) (any, error) { return s, nil }

// BoolType accepts JSON booleans and Neutron's string spellings.
type BoolType struct{}

func (BoolType) Convert(v any) (any, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		return BoolType{}.ParseFilter(b)
	case json.Number:
		if b == "0" || b == "1" {
			return b == "1", nil
		}
	}
	return nil, invalidf("'%v' cannot be converted to boolean", show(v))
}

func (BoolType) ParseFilter(s string) (any, error) {
	switch strings.ToLower(s) {
	case "true", "1", "yes", "on", "t", "y":
		return true, nil
	case "false", "0", "no", "off", "f", "n":
		return false, nil
	}
	return nil, invalidf("'%s' cannot be converted to boolean", s)
}

// IntType is an integer within [Min, Max].
type IntType struct {
	Min, Max int64
}

func (t IntType) Convert(v any) (any, error) {
	var n int64
	switch x := v.(type) {
	case json.Number:
		i, err := x.Int64()
		if err != nil {
			return nil, invalidf("'%s' is not an integer", x)
		}
		n = i
	case int64:
		n = x
	case int:
		n = int64(x)
	case float64:
		if x != math.Trunc(x) {
			return nil, invalidf("'%v' is not an integer", x)
		}
		n = int64(x)
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return nil, invalidf("'%s' is not an integer", x)
		}
		n = i
	default:
		return nil, invalidf("'%v' is not an integer", show(v))
	}
	if n < t.Min || n > t.Max {
		return nil, invalidf("'%d' is not in range %d through %d", n, t.Min, t.Max)
	}
	return n, nil
}

func (t IntType) ParseFilter(s string) (any, error) { return t.Convert(s) }

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

// UUIDType is a UUID, as Neutron accepts it (with or without dashes).
type UUIDType struct{}

func (UUIDType) Convert(v any) (any, error) {
	s, ok := v.(string)
	if !ok || !uuidPattern.MatchString(s) {
		return nil, invalidf("'%v' is not a valid UUID", show(v))
	}
	return strings.ToLower(s), nil
}

func (UUIDType) ParseFilter(s string) (any, error) { return s, nil }

// IPType is an IPv4 or IPv6 address, stored in canonical text form.
type IPType struct{}

func (IPType) Convert(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, invalidf("'%v' is not a valid IP address", show(v))
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return nil, invalidf("'%s' is not a valid IP address", s)
	}
	return a.Unmap().String(), nil
}

func (IPType) ParseFilter(s string) (any, error) { return s, nil }

// CIDRType is an IP network in CIDR notation. Host bits are rejected later
// by IPAM where Neutron rejects them; here only the syntax is checked.
type CIDRType struct{}

func (CIDRType) Convert(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, invalidf("'%v' is not a valid IP subnet", show(v))
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		// Neutron accepts a bare address as a host route.
		if a, aerr := netip.ParseAddr(s); aerr == nil {
			return netip.PrefixFrom(a, a.BitLen()).String(), nil
		}
		return nil, invalidf("'%s' is not a valid IP subnet", s)
	}
	return p.String(), nil
}

func (CIDRType) ParseFilter(s string) (any, error) { return s, nil }

// MACType is a unicast Ethernet MAC address, stored lowercase with colons.
type MACType struct{}

func (MACType) Convert(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, invalidf("'%v' is not a valid MAC address", show(v))
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return nil, invalidf("'%s' is not a valid MAC address", s)
	}
	if hw[0]&1 == 1 || hw.String() == "00:00:00:00:00:00" {
		return nil, invalidf("'%s' is not a valid MAC address", s)
	}
	return hw.String(), nil
}

func (MACType) ParseFilter(s string) (any, error) { return strings.ToLower(s), nil }

// Nullable wraps a type so that JSON null is accepted (stored as nil).
type Nullable struct{ Of Type }

func (t Nullable) Convert(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	return t.Of.Convert(v)
}

func (t Nullable) ParseFilter(s string) (any, error) {
	if s == "" || s == "None" || s == "null" {
		return nil, nil
	}
	return t.Of.ParseFilter(s)
}

// ListType is a JSON list whose items all have type Of.
type ListType struct {
	Of     Type
	Unique bool // reject duplicate items
	Max    int  // maximum number of items, if > 0
}

func (t ListType) Convert(v any) (any, error) {
	if v == nil {
		return []any{}, nil
	}
	items, ok := v.([]any)
	if !ok {
		return nil, invalidf("'%v' is not a list", show(v))
	}
	if t.Max > 0 && len(items) > t.Max {
		return nil, invalidf("the number of entries %d exceeds the maximum of %d", len(items), t.Max)
	}
	out := make([]any, 0, len(items))
	seen := map[string]bool{}
	for _, it := range items {
		c, err := t.Of.Convert(it)
		if err != nil {
			return nil, err
		}
		if t.Unique {
			k := fmt.Sprint(c)
			if seen[k] {
				return nil, invalidf("duplicate items in the list: '%s'", k)
			}
			seen[k] = true
		}
		out = append(out, c)
	}
	return out, nil
}

func (t ListType) ParseFilter(s string) (any, error) { return t.Of.ParseFilter(s) }

// DictType is a JSON object with named fields, each with its own type.
// Fields not listed are rejected.
type DictType struct {
	Fields   map[string]Type
	Required []string
}

func (t DictType) Convert(v any) (any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalidf("'%v' is not a dictionary", show(v))
	}
	out := make(map[string]any, len(m))
	for k, val := range m {
		ft, ok := t.Fields[k]
		if !ok {
			return nil, invalidf("unexpected key '%s' in %v", k, show(v))
		}
		c, err := ft.Convert(val)
		if err != nil {
			return nil, err
		}
		out[k] = c
	}
	for _, r := range t.Required {
		if _, ok := out[r]; !ok {
			return nil, invalidf("validation of dictionary's keys failed: expected keys %v, provided keys %v", t.Required, keys(m))
		}
	}
	return out, nil
}

func (t DictType) ParseFilter(s string) (any, error) {
	return nil, invalidf("filtering on a dictionary attribute is not supported")
}

// AnyType accepts any JSON value unchanged (normalising numbers).
type AnyType struct{}

func (AnyType) Convert(v any) (any, error)        { return Normalise(v), nil }
func (AnyType) ParseFilter(s string) (any, error) { return s, nil }

// Normalise turns json.Number into int64 (or float64) throughout a value
// decoded with UseNumber, in place, so decoded values carry the same Go
// types as validated ones.
func Normalise(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = Normalise(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = Normalise(x[k])
		}
	}
	return v
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func show(v any) any {
	if v == nil {
		return "None"
	}
	return v
}
