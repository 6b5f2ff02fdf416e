package ipam

import (
	"fmt"
	"math/rand/v2"
	"net"
)

// DefaultBaseMAC is Neutron's default base_mac.
const DefaultBaseMAC = "fa:16:3e:00:00:00"

// RandomMAC generates a port MAC address from base with Neutron's base_mac
// rule: the first three octets are kept, the fourth too when it is not 00,
// and the rest are random. base must be a 6-octet unicast MAC (a multicast
// base would generate multicast addresses, which ValidateMAC refuses).
// The caller retries on a collision within the network.
func RandomMAC(base string, rng *rand.Rand) (net.HardwareAddr, error) {
	b, err := net.ParseMAC(base)
	if err != nil || len(b) != 6 {
		return nil, fmt.Errorf("ipam: invalid base_mac %q", base)
	}
	if b[0]&1 != 0 {
		return nil, fmt.Errorf("ipam: base_mac %q is a multicast address", base)
	}
	r := rng.Uint32()
	mac := net.HardwareAddr{b[0], b[1], b[2], byte(r >> 16), byte(r >> 8), byte(r)}
	if b[3] != 0 {
		mac[3] = b[3]
	}
	return mac, nil
}

// ValidateMAC parses a port's mac_address: a 6-octet MAC in any form
// net.ParseMAC accepts ("fa:16:3e:..", "FA-16-3E-..", "fa16.3e..").
// Like Neutron it refuses 00:00:00:00:00:00 and ff:ff:ff:ff:ff:ff; it also
// refuses every other multicast (group bit set) address, which Neutron
// accepts. The error is attribute-level "'x' is not a valid MAC address".
// The result prints in Neutron's canonical lowercase colon form.
func ValidateMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 || hasSpace(s) {
		return nil, badAttr("'%s' is not a valid MAC address", s)
	}
	if mac[0]&1 != 0 || (mac[0]|mac[1]|mac[2]|mac[3]|mac[4]|mac[5]) == 0 {
		return nil, badAttr("'%s' is not a valid MAC address", s)
	}
	return mac, nil
}
