package secgroup

import "strconv"

// ProtocolNumber returns the IP protocol number of a rule's stored
// protocol (a name Neutron accepts, or a number 0-255 as a string); false
// for "" (any protocol) or anything else.
func ProtocolNumber(stored string) (int, bool) {
	if n, ok := protocolNumber(stored); ok {
		return n, true
	}
	n, err := strconv.Atoi(stored)
	if err != nil || n < 0 || n > 255 {
		return 0, false
	}
	return n, true
}
