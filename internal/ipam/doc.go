// Package ipam owns neutrino's pure address logic: parsing and validating
// subnet CIDRs, gateways, allocation pools, host routes and DNS name
// servers the way Neutron does; the default gateway and allocation pools of
// a new subnet; pool sizes for network-ip-availability; sortable database
// keys for addresses; choosing a candidate address without scanning a
// subnet; IPv6 address modes and EUI-64 addresses; subnet pool prefix
// allocation; and MAC address generation and validation.
//
// Nothing here touches a database or holds state: the subnet and port code
// calls these functions inside its own transactions. Every address type is
// net/netip. Errors that a caller should hand to the API user are *Error
// values carrying Neutron's exception type name and message.
package ipam
