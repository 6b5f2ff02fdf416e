package port

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// What subnets need from the address table: who holds addresses on a
// subnet, freeing a subnet's addresses, and giving existing ports their
// address on a new auto-address subnet.

// SubnetHolder returns a port holding an address on the subnet whose
// device_owner is among owners (in) or not among them (!in), or "" when
// there is none. It stops at the first such port.
func SubnetHolder(ctx context.Context, tx *store.Tx, subnetID string, owners []string, in bool) (string, error) {
	q := `SELECT a.port_id FROM ipallocations a JOIN ports p ON p.id = a.port_id WHERE a.subnet_id = ?`
	args := []any{subnetID}
	if len(owners) > 0 {
		marks := strings.TrimSuffix(strings.Repeat("?,", len(owners)), ",")
		if in {
			q += ` AND p.device_owner IN (` + marks + `)`
		} else {
			q += ` AND (p.device_owner IS NULL OR p.device_owner NOT IN (` + marks + `))`
		}
		for _, o := range owners {
			args = append(args, o)
		}
	} else if in {
		return "", nil
	}
	var portID string
	err := tx.QueryRow(ctx, q+` LIMIT 1`, args...).Scan(&portID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read allocations of subnet %s: %w", subnetID, err)
	}
	return portID, nil
}

// AddressHolder returns the port holding address a on a network and its
// device_owner, or "" when the address is free.
func AddressHolder(ctx context.Context, tx *store.Tx, netID string, a netip.Addr) (portID, owner string, err error) {
	var o sql.NullString
	err = tx.QueryRow(ctx, `SELECT a.port_id, p.device_owner FROM ipallocations a JOIN ports p ON p.id = a.port_id WHERE a.network_id = ? AND a.ip_address = ?`,
		netID, a.String()).Scan(&portID, &o)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("read allocation of %s on network %s: %w", a, netID, err)
	}
	return portID, o.String, nil
}

// RouterInterfaceOwners lists Neutron's ROUTER_INTERFACE_OWNERS.
func RouterInterfaceOwners() []string {
	return []string{OwnerRouterInterface, OwnerHAReplicatedInterface, OwnerDVRInterface}
}

// AutoDeletedOwners lists Neutron's AUTO_DELETE_PORT_OWNERS.
func AutoDeletedOwners() []string {
	return []string{OwnerDHCP, OwnerDistributed, OwnerAgentGateway}
}

// ReleaseSubnet frees every address on the subnet and removes them from
// their ports' fixed_ips.
func (p *Plugin) ReleaseSubnet(ctx context.Context, tx *store.Tx, subnetID string) error {
	rows, err := tx.Query(ctx, `SELECT DISTINCT port_id FROM ipallocations WHERE subnet_id = ?`, subnetID)
	if err != nil {
		return fmt.Errorf("read allocations of subnet %s: %w", subnetID, err)
	}
	var portIDs []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("read allocations of subnet %s: %w", subnetID, err)
		}
		portIDs = append(portIDs, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read allocations of subnet %s: %w", subnetID, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM ipallocations WHERE subnet_id = ?`, subnetID); err != nil {
		return fmt.Errorf("release addresses of subnet %s: %w", subnetID, err)
	}
	for _, id := range portIDs {
		port, err := tx.Get(ctx, p.ports, id)
		if err != nil {
			return err
		}
		var kept []FixedIP
		for _, f := range FixedIPsOf(port) {
			if f.SubnetID != subnetID {
				kept = append(kept, f)
			}
		}
		port["fixed_ips"] = fixedIPsValue(kept)
		if err := tx.Update(ctx, p.ports, port); err != nil {
			return err
		}
	}
	return nil
}

// AddAutoAddresses gives every port of the subnet's network, router
// interfaces aside, its EUI-64 address on a new auto-address subnet, as
// Neutron does when such a subnet is created.
func (p *Plugin) AddAutoAddresses(ctx context.Context, tx *store.Tx, subnet resource.Object) error {
	s, err := SubnetFromObject(subnet)
	if err != nil {
		return err
	}
	if !s.AutoAddress() {
		return nil
	}
	ports, err := tx.List(ctx, p.ports, store.Where{"network_id": {s.NetworkID}})
	if err != nil {
		return err
	}
	for _, port := range ports {
		if isRouterInterfaceOrSNAT(deviceOwner(port)) {
			continue
		}
		portID, _ := port["id"].(string)
		mac, _ := port["mac_address"].(string)
		a, err := eui64(s, mac)
		if err != nil {
			return fmt.Errorf("port %s: %w", portID, err)
		}
		err = p.claim(ctx, tx, s, portID, a)
		if fe, ok := fault.As(err); ok && fe.Type == "IpAddressAlreadyAllocated" {
			continue // Neutron skips a port whose address is taken
		}
		if err != nil {
			return err
		}
		port["fixed_ips"] = fixedIPsValue(append(FixedIPsOf(port), FixedIP{SubnetID: s.ID, IP: a}))
		if err := tx.Update(ctx, p.ports, port); err != nil {
			return err
		}
	}
	return nil
}
