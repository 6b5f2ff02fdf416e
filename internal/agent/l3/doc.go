// Package l3 owns the l3 role of the agent: the dataplane of the routers
// the server schedules to this host. Each router gets a qrouter-<id>
// namespace with IP forwarding on; its interfaces (qr-…) and its gateway
// (qg-…) are veth pairs plugged into the integration bridge as Nova's VIF
// driver plugs a VM (package vif), so the l2 role wires them on their
// networks' local VLANs like any port; the gateway reaches the external
// network through br-int and the external network's bridge mapping.
// Addresses come from the router's ports, the default route from the
// external subnet's gateway, extra routes from the router's routes.
//
// NAT is nftables through netlink (no nft processes), one table per router
// namespace ("neutrino", family ip): SNAT of the internal subnets' traffic
// leaving through the gateway to the gateway address (enable_snat), and
// 1:1 floating IPs (DNAT of the floating IP to the fixed IP, SNAT of the
// fixed IP's traffic leaving through the gateway to the floating IP). A
// floating IP is also a /32 address on the gateway interface, so the
// router answers ARP for it, and a gratuitous ARP announces it when it is
// added or moves. A change of a router's NAT rebuilds that router's table
// only, atomically in one nftables transaction (other routers and the
// conntrack state of established connections are untouched); a floating
// IP that goes away or moves also has its conntrack entries flushed, so it
// stops at once. Nothing is rebuilt when nothing changed.
//
// What the namespace should hold is a pure function of the desired router
// (planRouter); the Role reconciles namespaces, veths, addresses, routes
// and tables with it and removes the namespaces of routers it no longer
// has.
package l3
