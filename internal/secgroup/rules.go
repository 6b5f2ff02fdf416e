package secgroup

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
)

// Ethertypes a rule may have.
const (
	ipv4 = "IPv4"
	ipv6 = "IPv6"
)

// Protocol names and numbers the rules treat specially.
const (
	protoICMP       = "icmp"
	protoICMPv6     = "ipv6-icmp"
	protoICMPv6Old  = "icmpv6" // legacy alias of ipv6-icmp
	protoNumICMP    = 1
	protoNumICMPv6  = 58
	portRangeLowest = 1
	portRangeTop    = 65535
)

// protocolNames lists the protocol names Neutron accepts, in Neutron's
// order (its error messages list them so).
func protocolNames() []string {
	return []string{"ah", "dccp", "egp", "esp", "gre", "hopopt", "icmp", "igmp", "ip", "ipip",
		"ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route",
		"ospf", "pgm", "rsvp", "sctp", "tcp", "udp", "udplite", "vrrp"}
}

// protocolNumber returns the IP protocol number of a protocol name.
func protocolNumber(name string) (int, bool) {
	switch name {
	case "ah":
		return 51, true
	case "dccp":
		return 33, true
	case "egp":
		return 8, true
	case "esp":
		return 50, true
	case "gre":
		return 47, true
	case "hopopt", "ip":
		return 0, true
	case "icmp":
		return protoNumICMP, true
	case "igmp":
		return 2, true
	case "ipip":
		return 4, true
	case "ipv6-encap":
		return 41, true
	case "ipv6-frag":
		return 44, true
	case "ipv6-icmp", "icmpv6":
		return protoNumICMPv6, true
	case "ipv6-nonxt":
		return 59, true
	case "ipv6-opts":
		return 60, true
	case "ipv6-route":
		return 43, true
	case "ospf":
		return 89, true
	case "pgm":
		return 113, true
	case "rsvp":
		return 46, true
	case "sctp":
		return 132, true
	case "tcp":
		return 6, true
	case "udp":
		return 17, true
	case "udplite":
		return 136, true
	case "vrrp":
		return 112, true
	}
	return 0, false
}

// protocolName is the name Neutron gives a protocol number, if any (for 0,
// "ip", as Neutron's reverse map ends up with).
func protocolName(num int) (string, bool) {
	if num == 0 {
		return "ip", true
	}
	for _, n := range protocolNames() {
		if v, _ := protocolNumber(n); v == num && n != protoICMPv6Old {
			return n, true
		}
	}
	return "", false
}

// hasPorts reports whether a protocol number carries port numbers (dccp,
// sctp, tcp, udp, udplite).
func hasPorts(num int) bool {
	switch num {
	case 33, 132, 6, 17, 136:
		return true
	}
	return false
}

// ipv6Only reports whether a protocol (name or number, as stored) exists
// only over IPv6, so that an IPv4 rule for it is refused.
func ipv6Only(proto string) bool {
	switch proto {
	case "ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route",
		"41", "44", "58", "59", "60", "43":
		return true
	}
	return false
}

func invalid(typ, format string, args ...any) *fault.Error {
	return fault.New(http.StatusBadRequest, typ, format, args...)
}

// pyRepr renders a value the way Neutron's messages show it.
func pyRepr(v any) string {
	if v == nil {
		return "None"
	}
	return fmt.Sprint(v)
}

func invalidProtocol(v any) *fault.Error {
	vals := []string{"None"}
	for _, n := range append([]string{"any"}, protocolNames()...) {
		vals = append(vals, "'"+n+"'")
	}
	return invalid("SecurityGroupRuleInvalidProtocol",
		"Security group rule protocol %s not supported. Only protocol values (%s) and integer representations [0 to 255] are supported.",
		pyRepr(v), strings.Join(vals, ", "))
}

// integral returns v as an integer when it is one (a JSON number or a
// string of digits).
func integral(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// convertProtocol turns a requested protocol into the stored form: nil for
// any protocol, a lowercase name, or a decimal number 0-255 as a string.
func convertProtocol(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if n, ok := integral(v); ok {
		if n < 0 || n > 255 {
			return nil, invalidProtocol(v)
		}
		return strconv.FormatInt(n, 10), nil
	}
	s, ok := v.(string)
	if !ok {
		return nil, invalidProtocol(v)
	}
	s = strings.ToLower(s)
	if s == "any" {
		return nil, nil
	}
	if _, ok := protocolNumber(s); !ok {
		return nil, invalidProtocol(v)
	}
	return s, nil
}

// convertPort checks one end of a port range (0-65535).
func convertPort(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if n, ok := integral(v); ok && n >= 0 && n <= portRangeTop {
		return n, nil
	}
	return nil, invalid("SecurityGroupInvalidPortValue", "Invalid value for port %s", pyRepr(v))
}

// convertEthertype accepts IPv4 and IPv6 in any letter case.
func convertEthertype(v any) (any, error) {
	if s, ok := v.(string); ok {
		for _, e := range []string{ipv4, ipv6} {
			if strings.EqualFold(s, e) {
				return e, nil
			}
		}
	}
	return nil, invalid("SecurityGroupRuleInvalidEtherType",
		"Security group rule for ethertype '%s' not supported. Allowed values are ['IPv4', 'IPv6'].", pyRepr(v))
}

// convertPrefix parses remote_ip_prefix. A bare address becomes a host
// prefix; host bits are kept, as the plain security-group extension does.
func convertPrefix(v any) (any, error) {
	s, ok := v.(string)
	if v == nil || ok && s == "" {
		return nil, nil
	}
	bad := invalid("InvalidCIDR", "Invalid CIDR %s given as IP prefix.", pyRepr(v))
	if !ok {
		return nil, bad
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil || a.Zone() != "" {
			return nil, bad
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return p.String(), nil
}

// convertRule converts the attributes Neutron converts on input, in place.
func convertRule(obj resource.Object) error {
	for _, c := range []struct {
		attr string
		conv func(any) (any, error)
	}{
		{"protocol", convertProtocol},
		{"port_range_min", convertPort},
		{"port_range_max", convertPort},
		{"ethertype", convertEthertype},
		{"remote_ip_prefix", convertPrefix},
	} {
		v, err := c.conv(obj[c.attr])
		if err != nil {
			return err
		}
		obj[c.attr] = v
	}
	return nil
}

// protocolOf returns the IP protocol number of a stored protocol.
func protocolOf(proto string) int {
	if n, ok := protocolNumber(proto); ok {
		return n
	}
	n, _ := strconv.Atoi(proto)
	return n
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func portOf(v any) (int64, bool) {
	n, ok := v.(int64)
	return n, ok
}

// validateRule applies Neutron's checks to a converted rule and puts it in
// canonical form: legacy IPv6 ICMP spellings become ipv6-icmp/58, and the
// full port range 1-65535 becomes no range.
func validateRule(obj resource.Object) error {
	ethertype := str(obj["ethertype"])
	proto := str(obj["protocol"])
	if ethertype == ipv6 {
		switch proto {
		case protoICMP, protoICMPv6Old:
			proto = protoICMPv6
		case strconv.Itoa(protoNumICMP):
			proto = strconv.Itoa(protoNumICMPv6)
		}
		if proto != "" {
			obj["protocol"] = proto
		}
	}
	lo, hasLo := portOf(obj["port_range_min"])
	hi, hasHi := portOf(obj["port_range_max"])
	if hasLo && hasHi && lo == portRangeLowest && hi == portRangeTop {
		obj["port_range_min"], obj["port_range_max"] = nil, nil
		hasLo, hasHi = false, false
	}
	if err := validatePorts(proto, lo, hasLo, hi, hasHi); err != nil {
		return err
	}
	if prefix := str(obj["remote_ip_prefix"]); prefix != "" {
		p, err := netip.ParsePrefix(prefix)
		if err != nil {
			return invalid("InvalidCIDR", "Invalid CIDR %s given as IP prefix.", prefix)
		}
		if (ethertype == ipv4) != p.Addr().Is4() {
			return invalid("SecurityGroupRuleParameterConflict", "Conflicting value ethertype %s for CIDR %s", ethertype, prefix)
		}
	}
	if ethertype == ipv4 && ipv6Only(proto) {
		return invalid("SecurityGroupEthertypeConflictWithProtocol", "Invalid ethertype %s for protocol %s.", ethertype, proto)
	}
	if obj["remote_ip_prefix"] != nil && obj["remote_group_id"] != nil {
		return invalid("SecurityGroupMultipleRemoteEntites", "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.")
	}
	return nil
}

// validatePorts checks a port range (or ICMP type and code) against the
// protocol.
func validatePorts(proto string, lo int64, hasLo bool, hi int64, hasHi bool) error {
	if !hasLo && !hasHi {
		return nil
	}
	if proto == "" {
		return invalid("SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given.")
	}
	num := protocolOf(proto)
	switch {
	case hasPorts(num):
		if hasLo && lo == 0 || hasHi && hi == 0 {
			return invalid("SecurityGroupInvalidPortValue", "Invalid value for port 0")
		}
		if !hasLo || !hasHi || lo > hi {
			return invalid("SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max")
		}
	case num == protoNumICMP || num == protoNumICMPv6:
		for _, f := range []struct {
			field, attr string
			v           int64
			set         bool
		}{{"type", "port_range_min", lo, hasLo}, {"code", "port_range_max", hi, hasHi}} {
			if f.set && (f.v < 0 || f.v > 255) {
				return invalid("SecurityGroupInvalidIcmpValue", "Invalid value for ICMP %s (%s) %d. It must be 0 to 255.", f.field, f.attr, f.v)
			}
		}
		if !hasLo && hasHi {
			return invalid("SecurityGroupMissingIcmpType", "ICMP code (port-range-max) %d is provided but ICMP type (port-range-min) is missing.", hi)
		}
	default:
		return invalid("SecurityGroupInvalidProtocolForPort", "Ports cannot be specified for protocol %d. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE.", num)
	}
	return nil
}

// ruleKey identifies what a rule matches, so that two rules matching the
// same traffic are recognised as duplicates whatever their spelling (tcp
// and 6, no prefix and 0.0.0.0/0).
func ruleKey(rule resource.Object) string {
	norm := func(v any) string {
		if v == nil {
			return "+"
		}
		return fmt.Sprint(v)
	}
	prefix := norm(rule["remote_ip_prefix"])
	if prefix == "0.0.0.0/0" || prefix == "::/0" {
		prefix = "+"
	}
	proto := "+"
	if p := str(rule["protocol"]); p != "" {
		num := protocolOf(p)
		name := p
		if _, isName := protocolNumber(p); !isName {
			if n, ok := protocolName(num); ok {
				name = n
			}
		}
		proto = name + "/" + strconv.Itoa(num)
	}
	return strings.Join([]string{
		norm(rule["direction"]), norm(rule["ethertype"]),
		norm(rule["port_range_max"]), norm(rule["port_range_min"]), proto,
		norm(rule["remote_group_id"]), prefix, norm(rule["security_group_id"]),
	}, "_")
}
