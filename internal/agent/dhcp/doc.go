// Package dhcp owns the dhcp role of the agent: for every network the
// server schedules to this host's DHCP agent, a qdhcp-<network id>
// namespace holding the network's DHCP port, plugged into the integration
// bridge as Nova's VIF driver plugs a VM (a veth pair, so the l2 role
// wires it like any port), and an in-process DHCPv4 server there that
// gives each known MAC its port's fixed address with the subnet's options
// (mask, router, DNS servers, MTU, host routes as option 121, lease time,
// domain name and the port's extra DHCP options). Unknown MACs get no
// answer. Port and subnet changes swap the server's lease table
// atomically; a network leaving the host takes its namespace, veth, OVS
// port and server with it. DHCPv6 is not served.
//
// The answers are a pure function of the desired state (BuildTable and
// Respond); the Role reconciles namespaces, links and servers with it.
package dhcp
