package subnetpool

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Quota units of a pool's default_quota, as Neutron counts them: IPv4
// quotas are in addresses (/32s), IPv6 quotas in /64s.
const (
	quotaUnitV4 = 32
	quotaUnitV6 = 64
)

// AllocatePrefix chooses the prefix of a new subnet from pool poolID, for
// the subnet code to store in the same transaction as the subnet row (with
// subnetpool_id set), which keeps the pool locked until then.
//
// cidr "" asks for any free prefix of length prefixLen (0: the pool's
// default_prefixlen), chosen best-fit as Neutron does; otherwise cidr must
// lie in the pool's free space. ipVersion, when not 0, must be the pool's.
// The pool must be visible to c (else SubnetPoolNotFound); prefix lengths
// outside the pool's bounds are Min/MaxPrefixSubnetAllocationError (400);
// no room is SubnetAllocationError (409); a pool with a default_quota
// refuses what would take c.Project past it (SubnetPoolQuotaExceeded, 409).
// Acting for another project, pass a Call whose Project is the subnet's.
func (p *Plugin) AllocatePrefix(ctx context.Context, tx *store.Tx, c *service.Call, poolID string, ipVersion int, cidr string, prefixLen int) (netip.Prefix, error) {
	// Lock before reading, so concurrent allocators see each other's subnets.
	if err := lockPool(ctx, tx, poolID); err != nil {
		return netip.Prefix{}, err
	}
	pool, err := p.svc.Load(ctx, tx, c, p.pools, poolID)
	if err != nil {
		return netip.Prefix{}, err
	}
	poolVer := int(int64Of(pool["ip_version"]))
	var want netip.Prefix
	if cidr != "" {
		if want, err = netip.ParsePrefix(cidr); err != nil {
			return netip.Prefix{}, fault.BadRequest("Invalid input for cidr. Reason: '%s' is not a valid IP subnet.", cidr)
		}
		want = want.Masked()
		ipVersion = versionOf(want.Addr())
		prefixLen = want.Bits()
	}
	if ipVersion != 0 && ipVersion != poolVer {
		return netip.Prefix{}, fault.New(http.StatusBadRequest, "BadRequest",
			"Bad subnets request: Cannot allocate IPv%d subnet from IPv%d subnet pool.", ipVersion, poolVer)
	}
	lens := ipam.PrefixLens{
		Min:     int(int64Of(pool["min_prefixlen"])),
		Max:     int(int64Of(pool["max_prefixlen"])),
		Default: int(int64Of(pool["default_prefixlen"])),
	}
	if prefixLen == 0 && !want.IsValid() {
		prefixLen = lens.Default
	}
	if err := ipam.ValidateRequestedPrefixLen(prefixLen, lens); err != nil {
		return netip.Prefix{}, ipamFault(err)
	}
	subnets, err := poolSubnets(ctx, tx, poolID)
	if err != nil {
		return netip.Prefix{}, err
	}
	if err := checkQuota(pool, subnets, c.Project, prefixLen); err != nil {
		return netip.Prefix{}, err
	}
	prefixes, err := storedPrefixes(pool)
	if err != nil {
		return netip.Prefix{}, err
	}
	used := make([]netip.Prefix, len(subnets))
	for i, s := range subnets {
		used[i] = s.cidr
	}
	if want.IsValid() {
		if err := ipam.CheckSpecificPrefix(prefixes, used, want); err != nil {
			return netip.Prefix{}, ipamFault(err)
		}
		return want, nil
	}
	got, err := ipam.BestFitPrefix(prefixes, used, prefixLen)
	if err != nil {
		return netip.Prefix{}, ipamFault(err)
	}
	return got, nil
}

// DefaultPool returns the id of the default subnet pool of ipVersion, for
// subnets created with use_default_subnetpool.
func (p *Plugin) DefaultPool(ctx context.Context, tx *store.Tx, ipVersion int) (string, error) {
	var id string
	err := tx.QueryRow(ctx, `SELECT subnetpool_id FROM default_subnetpools WHERE ip_version = ?`, ipVersion).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fault.New(http.StatusBadRequest, "BadRequest",
			"Bad subnets request: No default subnetpool found for IPv%d.", ipVersion)
	}
	if err != nil {
		return "", fmt.Errorf("read default subnet pool for IPv%d: %w", ipVersion, err)
	}
	return id, nil
}

// poolSubnet is one subnet allocated from a pool.
type poolSubnet struct {
	cidr    netip.Prefix
	project string
}

// poolSubnets lists the prefixes taken from a pool: the cidrs of the
// subnets that name it.
func poolSubnets(ctx context.Context, tx *store.Tx, poolID string) ([]poolSubnet, error) {
	rows, err := tx.Query(ctx, `SELECT cidr, project_id FROM subnets WHERE subnetpool_id = ?`, poolID)
	if err != nil {
		return nil, fmt.Errorf("list subnets of subnet pool %s: %w", poolID, err)
	}
	defer rows.Close()
	var out []poolSubnet
	for rows.Next() {
		var cidr sql.NullString
		var project string
		if err := rows.Scan(&cidr, &project); err != nil {
			return nil, fmt.Errorf("list subnets of subnet pool %s: %w", poolID, err)
		}
		pfx, err := netip.ParsePrefix(cidr.String)
		if err != nil {
			continue // a subnet without a cidr takes nothing
		}
		out = append(out, poolSubnet{cidr: pfx.Masked(), project: project})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list subnets of subnet pool %s: %w", poolID, err)
	}
	return out, nil
}

// checkQuota applies the pool's default_quota to project's subnets from
// it. As in Neutron, a quota of 0 (or none) means no limit.
func checkQuota(pool resource.Object, subnets []poolSubnet, project string, prefixLen int) error {
	quota, _ := pool["default_quota"].(int64)
	if quota <= 0 {
		return nil
	}
	unit := quotaUnitV4
	if int64Of(pool["ip_version"]) == 6 {
		unit = quotaUnitV6
	}
	units := func(bits int) float64 { return math.Pow(2, float64(unit-bits)) }
	used := 0.0
	for _, s := range subnets {
		if s.project == project {
			used += units(s.cidr.Bits())
		}
	}
	if used+units(prefixLen) > float64(quota) {
		return fault.Conflict("SubnetPoolQuotaExceeded", "Per-project subnet pool prefix quota exceeded.")
	}
	return nil
}

func versionOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}
