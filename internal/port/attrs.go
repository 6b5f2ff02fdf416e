package port

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
	"github.com/neutrino-sdn/neutrino/internal/resource"
)

// checkPairs validates the port's allowed_address_pairs when validate is
// set (they were given), filling in the port's MAC where a pair has none,
// and refuses pairs on a port without port security.
func (p *Plugin) checkPairs(obj resource.Object, validate bool) error {
	pairs := listOf(obj["allowed_address_pairs"])
	if validate {
		if len(pairs) > p.maxAddressPairs {
			return fault.New(http.StatusBadRequest, "AllowedAddressPairExhausted",
				"The number of allowed address pair exceeds the maximum %d.", p.maxAddressPairs)
		}
		mac, _ := obj["mac_address"].(string)
		seen := map[string]bool{}
		out := make([]any, 0, len(pairs))
		for _, e := range pairs {
			m, _ := e.(map[string]any)
			ip, _ := m["ip_address"].(string)
			if err := validatePairAddress(ip); err != nil {
				return err
			}
			pairMAC, hasMAC := m["mac_address"].(string)
			key := fmt.Sprintf("%v|%s", m["mac_address"], ip)
			if seen[key] {
				shown := "None"
				if hasMAC {
					shown = pairMAC
				}
				return fault.New(http.StatusBadRequest, "DuplicateAddressPairInRequest",
					"Request contains duplicate address pair: mac_address %s ip_address %s.", shown, ip)
			}
			seen[key] = true
			if !hasMAC {
				pairMAC = mac
			}
			out = append(out, map[string]any{"ip_address": ip, "mac_address": pairMAC})
		}
		obj["allowed_address_pairs"] = out
		pairs = out
	}
	if psec, _ := obj["port_security_enabled"].(bool); !psec && len(pairs) > 0 {
		return fault.Conflict("AddressPairAndPortSecurityRequired",
			"Port Security must be enabled in order to have allowed address pairs on a port.")
	}
	return nil
}

// validatePairAddress accepts an IP address or a CIDR, as Neutron's
// allowed address pair validator does, but no multicast.
func validatePairAddress(s string) error {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || strings.TrimSpace(s) != s {
			return fault.BadRequest("'%s' is not a valid IP subnet", s)
		}
		if p.Masked().Addr().IsMulticast() {
			return fault.BadRequest("'%s' is a multicast subnet", s)
		}
		return nil
	}
	a, err := ipam.ParseIP(s)
	if err != nil {
		return fault.BadRequest("%s", err.Error())
	}
	if a.IsMulticast() {
		return fault.BadRequest("'%s' is a multicast IP address", s)
	}
	return nil
}

// DHCP options Neutron lets carry an empty value.
var blankDHCPOpts = map[string]bool{"router": true, "classless-static-route": true}

const (
	dhcpOptNameMaxLen  = 64
	dhcpOptValueMaxLen = 255
)

// mergeDHCPOpts validates extra_dhcp_opts from a request and applies them
// to the port's current options as Neutron does: an option (by name and
// IP version, 4 by default) is replaced, one with a null value is removed.
func mergeDHCPOpts(current, given []any) ([]any, error) {
	type key struct {
		name    string
		version int64
	}
	order := []key{}
	byKey := map[key]map[string]any{}
	for _, e := range current {
		m, _ := e.(map[string]any)
		name, _ := m["opt_name"].(string)
		v, _ := m["ip_version"].(int64)
		k := key{name, v}
		if _, dup := byKey[k]; !dup {
			order = append(order, k)
		}
		byKey[k] = m
	}
	for _, e := range given {
		m, _ := e.(map[string]any)
		name, _ := m["opt_name"].(string)
		if name == "" || len(name) > dhcpOptNameMaxLen || strings.ContainsAny(name, "\r\n") {
			return nil, fault.BadRequest("Invalid input for extra_dhcp_opts. Reason: '%s' is not a valid option name.", name)
		}
		raw, hasValue := m["opt_value"]
		if !hasValue {
			return nil, fault.BadRequest("Invalid input for extra_dhcp_opts. Reason: option '%s' has no opt_value.", name)
		}
		version := int64(4)
		if v, ok := m["ip_version"].(int64); ok {
			if v != 4 && v != 6 {
				return nil, fault.BadRequest("Invalid input for extra_dhcp_opts. Reason: %d is not in [4, 6].", v)
			}
			version = v
		}
		k := key{name, version}
		if raw == nil {
			delete(byKey, k)
			continue
		}
		value, _ := raw.(string)
		if (value == "" && !blankDHCPOpts[name]) || len(value) > dhcpOptValueMaxLen || strings.ContainsAny(value, "\r\n") {
			return nil, fault.BadRequest("Invalid input for extra_dhcp_opts. Reason: '%s' is not a valid value for option '%s'.", value, name)
		}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = map[string]any{"opt_name": name, "opt_value": value, "ip_version": version}
	}
	out := make([]any, 0, len(byKey))
	for _, k := range order {
		if m, ok := byKey[k]; ok {
			out = append(out, m)
			delete(byKey, k) // a key listed twice in order appears once
		}
	}
	return out, nil
}
