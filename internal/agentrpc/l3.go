package agentrpc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
	"github.com/neutrino-sdn/neutrino/internal/outbox"
	"github.com/neutrino-sdn/neutrino/internal/port"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// The l3 role: the routers scheduled to a host's l3 agent, whole, and the
// notifications that replace one of them when it, its ports, its routes
// or its floating IPs change. The scheduler records its own moves; the
// hooks here record API changes. A floating IP status comes back from the
// agent through floatingip_status.

// routerPortOwners are the device owners of the ports in a router's
// namespace.
var routerPortOwners = []string{port.OwnerRouterInterface, port.OwnerRouterGateway}

func isRouterPort(p resource.Object) bool {
	return str(p["device_id"]) != "" && slices.Contains(routerPortOwners, str(p["device_owner"]))
}

// registerL3 installs the hooks that tell routers' hosts of changes.
func (s *Server) registerL3() {
	s.svc.SetHooks("routers", &service.Hooks{PostUpdate: s.routerUpdated, PreDelete: s.routerDeleting})
	s.svc.SetHooks("floatingips", &service.Hooks{
		PostCreate: s.fipCreated, PreUpdate: s.fipUpdating, PostUpdate: s.fipUpdated, PostDelete: s.fipDeleted,
	})
	s.svc.SetHooks("ports", &service.Hooks{
		PostCreate: s.routerPortChanged, PostDelete: s.routerPortChanged,
		PostUpdate: func(ctx context.Context, tx *store.Tx, c *service.Call, old, p resource.Object) error {
			if err := s.routerPortChanged(ctx, tx, c, old); err != nil {
				return err
			}
			if old["device_id"] == p["device_id"] && old["device_owner"] == p["device_owner"] {
				return nil
			}
			return s.routerPortChanged(ctx, tx, c, p)
		},
	})
	s.svc.SetHooks("networks", &service.Hooks{PostUpdate: func(ctx context.Context, tx *store.Tx, _ *service.Call, _, n resource.Object) error {
		return s.routersOnNetworkChanged(ctx, tx, str(n["id"]))
	}})
	s.svc.SetHooks("subnets", &service.Hooks{PostUpdate: func(ctx context.Context, tx *store.Tx, _ *service.Call, _, sub resource.Object) error {
		return s.routersOnNetworkChanged(ctx, tx, str(sub["network_id"]))
	}})
}

func (s *Server) routerUpdated(ctx context.Context, tx *store.Tx, _ *service.Call, _, r resource.Object) error {
	return s.record(tx, outbox.RouterChanged(ctx, tx, str(r["id"])))
}

// routerDeleting runs while the router's agent is still known.
func (s *Server) routerDeleting(ctx context.Context, tx *store.Tx, _ *service.Call, r resource.Object) error {
	return s.record(tx, outbox.RouterChanged(ctx, tx, str(r["id"])))
}

func (s *Server) routerPortChanged(ctx context.Context, tx *store.Tx, _ *service.Call, p resource.Object) error {
	if !isRouterPort(p) {
		return nil
	}
	return s.record(tx, outbox.RouterChanged(ctx, tx, str(p["device_id"])))
}

// routersOnNetworkChanged tells the routers with a port on a network that
// it (its MTU, segment) or one of its subnets (gateway) changed.
func (s *Server) routersOnNetworkChanged(ctx context.Context, tx *store.Tx, netID string) error {
	ports, err := tx.List(ctx, s.ports, store.Where{"network_id": {netID}, "device_owner": anyOf(routerPortOwners)})
	if err != nil {
		return err
	}
	var ids []string
	for _, p := range ports {
		ids = append(ids, str(p["device_id"]))
	}
	for _, id := range uniq(ids) {
		if err := outbox.RouterChanged(ctx, tx, id); err != nil {
			return err
		}
	}
	return s.record(tx, nil)
}

func (s *Server) fipCreated(ctx context.Context, tx *store.Tx, _ *service.Call, f resource.Object) error {
	return s.record(tx, outbox.RouterChanged(ctx, tx, str(f["router_id"])))
}

// fipUpdating marks a floating IP that loses its association DOWN: no
// agent serves it any more (Neutron's server does so on the agent's
// next report).
func (s *Server) fipUpdating(_ context.Context, _ *store.Tx, _ *service.Call, _, f, _ resource.Object) error {
	if str(f["router_id"]) == "" {
		f["status"] = msg.StatusDown
	}
	return nil
}

func (s *Server) fipUpdated(ctx context.Context, tx *store.Tx, _ *service.Call, old, f resource.Object) error {
	if err := outbox.RouterChanged(ctx, tx, str(old["router_id"])); err != nil {
		return err
	}
	if old["router_id"] == f["router_id"] {
		return s.record(tx, nil)
	}
	return s.record(tx, outbox.RouterChanged(ctx, tx, str(f["router_id"])))
}

func (s *Server) fipDeleted(ctx context.Context, tx *store.Tx, _ *service.Call, f resource.Object) error {
	return s.record(tx, outbox.RouterChanged(ctx, tx, str(f["router_id"])))
}

func anyOf(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// l3Agent returns the id of the host's l3 agent, or "".
func (v *view) l3Agent(ctx context.Context, host string) (string, error) {
	found, err := v.tx.List(ctx, v.s.agents, store.Where{"agent_type": {msg.AgentTypeL3}, "host": {host}})
	if err != nil || len(found) == 0 {
		return "", err
	}
	return found[0]["id"].(string), nil
}

// hostedRouters returns which of the routers (all when ids is nil) the
// host's l3 agent hosts, sorted.
func (v *view) hostedRouters(ctx context.Context, host string, ids []string) ([]string, error) {
	agentID, err := v.l3Agent(ctx, host)
	if err != nil || agentID == "" {
		return nil, err
	}
	hosted, err := queryStrings(ctx, v.tx, `SELECT router_id FROM router_l3_agents WHERE agent_id = ? ORDER BY router_id`, agentID)
	if err != nil || ids == nil {
		return hosted, err
	}
	return slices.DeleteFunc(hosted, func(id string) bool { return !slices.Contains(ids, id) }), nil
}

func (v *view) l3State(ctx context.Context, host string) (*msg.L3State, error) {
	ids, err := v.hostedRouters(ctx, host, nil)
	if err != nil {
		return nil, err
	}
	routers, err := v.routers(ctx, ids)
	if err != nil {
		return nil, err
	}
	return &msg.L3State{Routers: routers}, nil
}

// l3Part adds the named routers to u: whole when the host's agent hosts
// them, deleted otherwise.
func (v *view) l3Part(ctx context.Context, host string, ids []string) (*msg.L3Update, error) {
	ids = uniq(ids)
	hosted, err := v.hostedRouters(ctx, host, ids)
	if err != nil {
		return nil, err
	}
	routers, err := v.routers(ctx, hosted)
	if err != nil {
		return nil, err
	}
	u := &msg.L3Update{Routers: routers}
	for _, id := range ids {
		if !slices.ContainsFunc(routers, func(r msg.Router) bool { return r.ID == id }) {
			u.DeletedRouters = append(u.DeletedRouters, id)
		}
	}
	return u, nil
}

// listIn lists the objects of r whose column takes one of values, in one
// query (none when values is empty).
func (v *view) listIn(ctx context.Context, r *resource.Resource, column string, values []string) ([]resource.Object, error) {
	if len(values) == 0 {
		return nil, nil
	}
	return v.tx.List(ctx, r, store.Where{column: anyOf(uniq(values))})
}

// routers reads routers whole, with a fixed number of queries whatever
// their number: routers, their ports, those ports' networks and subnets,
// and their floating IPs.
func (v *view) routers(ctx context.Context, ids []string) ([]msg.Router, error) {
	reg := v.s.svc.Registry()
	objs, err := v.listIn(ctx, reg.ByPlural("routers"), "id", ids)
	if err != nil {
		return nil, err
	}
	ports, err := v.listIn(ctx, v.s.ports, "device_id", ids)
	if err != nil {
		return nil, err
	}
	var netIDs, subnetIDs []string
	for _, p := range ports {
		netIDs = append(netIDs, str(p["network_id"]))
		for _, f := range port.FixedIPsOf(p) {
			subnetIDs = append(subnetIDs, f.SubnetID)
		}
	}
	nets, err := v.listIn(ctx, v.s.nets, "id", netIDs)
	if err != nil {
		return nil, err
	}
	subs, err := v.listIn(ctx, v.s.subnets, "id", subnetIDs)
	if err != nil {
		return nil, err
	}
	fips, err := v.listIn(ctx, reg.ByPlural("floatingips"), "router_id", ids)
	if err != nil {
		return nil, err
	}
	netByID, subByID := byID(nets), byID(subs)
	out := make([]msg.Router, 0, len(objs))
	for _, r := range objs {
		id := str(r["id"])
		up, _ := r["admin_state_up"].(bool)
		m := msg.Router{ID: id, ProjectID: str(r["project_id"]), AdminStateUp: up, Revision: int64Of(r["revision_number"]),
			Interfaces: []msg.RouterPort{}, Routes: []msg.HostRoute{}, FloatingIPs: []msg.FloatingIP{}}
		if gw, _ := r["external_gateway_info"].(map[string]any); gw != nil {
			m.EnableSNAT, _ = gw["enable_snat"].(bool)
		}
		for _, p := range ports {
			if p["device_id"] != id || !isRouterPort(p) {
				continue
			}
			rp := routerPortMsg(p, netByID[str(p["network_id"])], subByID)
			if p["device_owner"] == port.OwnerRouterGateway {
				if p["id"] == r["gw_port_id"] {
					m.Gateway = &rp
				}
				continue
			}
			m.Interfaces = append(m.Interfaces, rp)
		}
		for _, e := range listOf(r["routes"]) {
			rt, _ := e.(map[string]any)
			m.Routes = append(m.Routes, msg.HostRoute{Destination: str(rt["destination"]), Nexthop: str(rt["nexthop"])})
		}
		slices.SortFunc(m.Routes, func(a, b msg.HostRoute) int {
			if c := strings.Compare(a.Destination, b.Destination); c != 0 {
				return c
			}
			return strings.Compare(a.Nexthop, b.Nexthop)
		})
		for _, f := range fips {
			if f["router_id"] != id || str(f["port_id"]) == "" {
				continue
			}
			m.FloatingIPs = append(m.FloatingIPs, msg.FloatingIP{
				ID: str(f["id"]), FloatingIPAddress: str(f["floating_ip_address"]), FixedIPAddress: str(f["fixed_ip_address"]),
				PortID: str(f["port_id"]), FloatingNetworkID: str(f["floating_network_id"]),
				Status: str(f["status"]), Revision: int64Of(f["revision_number"]),
			})
		}
		out = append(out, m)
	}
	return out, nil
}

func byID(objs []resource.Object) map[string]resource.Object {
	m := make(map[string]resource.Object, len(objs))
	for _, o := range objs {
		m[str(o["id"])] = o
	}
	return m
}

// routerPortMsg is a router port with its network (nil if gone) and the
// subnets of its addresses.
func routerPortMsg(p, net resource.Object, subnets map[string]resource.Object) msg.RouterPort {
	up, _ := p["admin_state_up"].(bool)
	rp := msg.RouterPort{ID: str(p["id"]), MAC: str(p["mac_address"]), AdminStateUp: up, NetworkID: str(p["network_id"]),
		Status: str(p["status"]), Revision: int64Of(p["revision_number"]), FixedIPs: []msg.RouterIP{}}
	if net != nil {
		nm := networkMsg(net)
		rp.MTU, rp.Segment = nm.MTU, nm.Segment
	}
	for _, f := range port.FixedIPsOf(p) {
		ip := msg.RouterIP{SubnetID: f.SubnetID, IPAddress: f.IP.String(), IPVersion: 4}
		if f.IP.Is6() {
			ip.IPVersion = 6
		}
		if sub := subnets[f.SubnetID]; sub != nil {
			ip.CIDR, ip.GatewayIP = str(sub["cidr"]), str(sub["gateway_ip"])
		}
		rp.FixedIPs = append(rp.FixedIPs, ip)
	}
	slices.SortFunc(rp.FixedIPs, func(a, b msg.RouterIP) int {
		if c := strings.Compare(a.SubnetID, b.SubnetID); c != 0 {
			return c
		}
		x, _ := netip.ParseAddr(a.IPAddress)
		y, _ := netip.ParseAddr(b.IPAddress)
		return x.Compare(y)
	})
	return rp
}

// floatingIPStatus sets the status of floating IPs the reporting host's
// l3 agent configured (ACTIVE) or not (DOWN), for floating IPs whose
// router that agent hosts. Status is the agent's report, not a change
// the agent must hear of: no notification.
func (s *Server) floatingIPStatus(ctx context.Context, raw json.RawMessage) (any, error) {
	req, err := bus.Decode[msg.FloatingIPStatus](raw)
	if err != nil {
		return nil, err
	}
	if err := msg.CheckVersion(req.Version); err != nil {
		return nil, err
	}
	fips := s.svc.Registry().ByPlural("floatingips")
	reply := msg.FloatingIPStatusReply{Version: msg.Version}
	err = s.svc.DB().Tx(ctx, func(tx *store.Tx) error {
		reply.Unknown = reply.Unknown[:0]
		hostOf := map[string]string{}
		set := func(ids []string, status string) error {
			for _, id := range uniq(ids) {
				f, err := tx.Get(ctx, fips, id)
				if isNotFound(err) {
					reply.Unknown = append(reply.Unknown, id)
					continue
				}
				if err != nil {
					return err
				}
				routerID := str(f["router_id"])
				host, ok := hostOf[routerID]
				if !ok && routerID != "" {
					hosts, err := outbox.RouterHosts(ctx, tx, routerID)
					if err != nil {
						return err
					}
					if len(hosts) > 0 {
						host = hosts[0]
					}
					hostOf[routerID] = host
				}
				// A floating IP that lost its router may still be reported
				// DOWN by the agent that served it.
				if host != req.Host && !(status == msg.StatusDown && routerID == "") {
					reply.Unknown = append(reply.Unknown, id)
					continue
				}
				if f["status"] == status {
					continue
				}
				f["status"] = status
				if _, err := s.svc.UpdateInTx(ctx, tx, fips, f); err != nil {
					return err
				}
			}
			return nil
		}
		if err := set(req.Active, msg.StatusActive); err != nil {
			return err
		}
		return set(slices.DeleteFunc(slices.Clone(req.Down), func(id string) bool { return slices.Contains(req.Active, id) }), msg.StatusDown)
	})
	if err != nil {
		return nil, fmt.Errorf("floating IP status from %s: %w", req.Host, err)
	}
	return reply, nil
}
