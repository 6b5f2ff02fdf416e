// Package subnetpool owns subnet pools (Neutron's subnet_allocation and
// subnetpool-prefix-ops extensions): their prefixes, prefix lengths, default
// pools per IP version and sharing, and the allocation of subnet prefixes
// from a pool for the subnet code, serialized per pool so that two subnets
// never receive overlapping prefixes, even from several servers.
package subnetpool

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/ipam"
	"github.com/neutrino-sdn/neutrino/internal/policy"
	"github.com/neutrino-sdn/neutrino/internal/resource"
	"github.com/neutrino-sdn/neutrino/internal/service"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Plugin carries the subnet pool semantics.
type Plugin struct {
	svc   *service.Service
	pools *resource.Resource
}

// New returns the subnet pool semantics without installing hooks; tests and
// other areas use it to reach AllocatePrefix and DefaultPool.
func New(svc *service.Service) *Plugin {
	return &Plugin{svc: svc, pools: svc.Registry().ByPlural("subnetpools")}
}

// Register installs the subnetpools hooks and member actions.
func Register(svc *service.Service) *Plugin {
	p := New(svc)
	svc.SetHooks("subnetpools", &service.Hooks{
		Facts:      p.facts,
		PreCreate:  p.preCreate,
		PostCreate: p.postCreate,
		PreUpdate:  p.preUpdate,
		PreDelete:  p.preDelete,
		Show:       p.show,
		Actions: map[string]service.Action{
			"add_prefixes":    p.addPrefixes,
			"remove_prefixes": p.removePrefixes,
		},
	})
	return p
}

// facts makes shared pools visible to every project.
func (p *Plugin) facts(_ context.Context, _ *store.Tx, _ *service.Call, obj resource.Object) (policy.Facts, error) {
	shared, _ := obj["shared"].(bool)
	return policy.Facts{Shared: shared}, nil
}

func (p *Plugin) preCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object, given map[string]bool) error {
	prefixes, err := parsePrefixes(obj["prefixes"])
	if err != nil {
		return err
	}
	version, err := poolVersion(prefixes)
	if err != nil {
		return err
	}
	lens, err := ipam.ResolvePrefixLens(version, intPtr(obj["min_prefixlen"]), intPtr(obj["max_prefixlen"]), intPtr(obj["default_prefixlen"]))
	if err != nil {
		return ipamFault(err)
	}
	obj["prefixes"] = prefixStrings(ipam.CompactPrefixes(prefixes))
	obj["ip_version"] = int64(version)
	setLens(obj, lens)
	obj["address_scope_id"] = nil
	return nil
}

// postCreate claims the default slot of the pool's IP version; the row
// references the pool, so it is written once the pool exists.
func (p *Plugin) postCreate(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	if isDefault, _ := obj["is_default"].(bool); isDefault {
		return claimDefault(ctx, tx, obj)
	}
	return nil
}

func (p *Plugin) preUpdate(ctx context.Context, tx *store.Tx, c *service.Call, old, obj, changes resource.Object) error {
	version := int(int64Of(old["ip_version"]))
	if _, ok := changes["prefixes"]; ok {
		oldPrefixes, err := storedPrefixes(old)
		if err != nil {
			return err
		}
		newPrefixes, err := parsePrefixes(changes["prefixes"])
		if err != nil {
			return err
		}
		// Neutron lets prefixes only grow through an update; removing
		// them is remove_prefixes, which checks they are unused.
		if !covers(newPrefixes, oldPrefixes) {
			return illegalPrefixUpdate("Existing prefixes must be a subset of the new prefixes")
		}
		if version, err = poolVersion(newPrefixes); err != nil {
			return err
		}
		obj["prefixes"] = prefixStrings(ipam.CompactPrefixes(newPrefixes))
		obj["ip_version"] = int64(version)
	}
	lens := ipam.PrefixLens{
		Min:     int(int64Of(obj["min_prefixlen"])),
		Max:     int(int64Of(obj["max_prefixlen"])),
		Default: int(int64Of(obj["default_prefixlen"])),
	}
	if err := ipam.ValidatePrefixLens(version, lens); err != nil {
		return ipamFault(err)
	}
	wasDefault, _ := old["is_default"].(bool)
	isDefault, _ := obj["is_default"].(bool)
	switch {
	case isDefault && !wasDefault:
		return claimDefault(ctx, tx, obj)
	case !isDefault && wasDefault:
		if _, err := tx.Exec(ctx, `DELETE FROM default_subnetpools WHERE subnetpool_id = ?`, obj["id"]); err != nil {
			return fmt.Errorf("release default subnet pool %v: %w", obj["id"], err)
		}
	}
	return nil
}

func (p *Plugin) preDelete(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object) error {
	id, _ := obj["id"].(string)
	// Locked first, so a subnet allocated concurrently is either seen
	// below or finds the pool gone.
	if err := lockPool(ctx, tx, id); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM subnets WHERE subnetpool_id = ?`, id).Scan(&n); err != nil {
		return fmt.Errorf("count subnets of subnet pool %s: %w", id, err)
	}
	if n > 0 {
		return fault.New(http.StatusBadRequest, "SubnetPoolDeleteError",
			"Unable to delete subnet pool: Subnet pool has existing allocations.")
	}
	return nil
}

// show presents prefix lengths as strings, as Neutron does (clients accept
// both; Tempest compares them with strings).
func (p *Plugin) show(_ context.Context, _ *store.Tx, _ *service.Call, obj resource.Object) error {
	for _, k := range []string{"min_prefixlen", "max_prefixlen", "default_prefixlen"} {
		if n, ok := obj[k].(int64); ok {
			obj[k] = strconv.FormatInt(n, 10)
		}
	}
	return nil
}

// addPrefixes is PUT /subnetpools/{id}/add_prefixes: the new prefixes are
// merged into the pool's, as an update that only grows the pool.
func (p *Plugin) addPrefixes(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object, body map[string]any) (any, error) {
	add, err := operationPrefixes(body)
	if err != nil {
		return nil, err
	}
	cur, err := storedPrefixes(obj)
	if err != nil {
		return nil, err
	}
	all := append(cur, add...)
	version, err := poolVersion(all)
	if err != nil {
		return nil, err
	}
	obj["prefixes"] = prefixStrings(ipam.CompactPrefixes(all))
	obj["ip_version"] = int64(version)
	if err := tx.Update(ctx, p.pools, obj); err != nil {
		return nil, fmt.Errorf("add prefixes to subnet pool %v: %w", obj["id"], err)
	}
	return map[string]any{"prefixes": obj["prefixes"]}, nil
}

// removePrefixes is PUT /subnetpools/{id}/remove_prefixes: prefixes are
// taken out of the pool unless a subnet of the pool overlaps them.
func (p *Plugin) removePrefixes(ctx context.Context, tx *store.Tx, c *service.Call, obj resource.Object, body map[string]any) (any, error) {
	remove, err := operationPrefixes(body)
	if err != nil {
		return nil, err
	}
	id, _ := obj["id"].(string)
	if err := lockPool(ctx, tx, id); err != nil {
		return nil, err
	}
	// Re-read under the lock: the pool may have changed since it was loaded.
	fresh, err := tx.Get(ctx, p.pools, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, err
	}
	for k := range obj {
		delete(obj, k)
	}
	for k, v := range fresh {
		obj[k] = v
	}
	cur, err := storedPrefixes(obj)
	if err != nil {
		return nil, err
	}
	if !anyOverlap(cur, remove) {
		return map[string]any{"prefixes": obj["prefixes"]}, nil
	}
	used, err := poolSubnets(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	for _, s := range used {
		if anyOverlap([]netip.Prefix{s.cidr}, remove) {
			return nil, illegalPrefixUpdate("One or more the prefixes to be removed is in use by a subnet")
		}
	}
	obj["prefixes"] = prefixStrings(ipam.CompactPrefixes(difference(cur, remove)))
	if err := tx.Update(ctx, p.pools, obj); err != nil {
		return nil, fmt.Errorf("remove prefixes from subnet pool %s: %w", id, err)
	}
	return map[string]any{"prefixes": obj["prefixes"]}, nil
}

// operationPrefixes reads the body of add_prefixes and remove_prefixes.
func operationPrefixes(body map[string]any) ([]netip.Prefix, error) {
	list, ok := body["prefixes"].([]any)
	if !ok || len(list) == 0 {
		return nil, fault.BadRequest("Request body contains invalid data")
	}
	return parsePrefixes(list)
}

// claimDefault makes obj the default pool of its IP version; the table's
// key refuses a second default even from a concurrent request.
func claimDefault(ctx context.Context, tx *store.Tx, obj resource.Object) error {
	version := int64Of(obj["ip_version"])
	err := tx.Savepoint(ctx, func() error {
		_, err := tx.Exec(ctx, `INSERT INTO default_subnetpools (ip_version, subnetpool_id) VALUES (?, ?)`, version, obj["id"])
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		return fault.InvalidInput("A default subnetpool for this IP family has already been set. Only one default may exist per IP family.")
	}
	if err != nil {
		return fmt.Errorf("mark subnet pool %v default: %w", obj["id"], err)
	}
	return nil
}

// lockPool takes the pool's row lock until the transaction ends, without
// changing its revision: prefix allocations, prefix removal and deletion of
// one pool run one at a time, across servers. SQLite serializes writers
// anyway; on PostgreSQL the later transaction waits and then reads what the
// earlier one committed.
func lockPool(ctx context.Context, tx *store.Tx, id string) error {
	res, err := tx.Exec(ctx, `UPDATE subnetpools SET revision_number = revision_number WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("lock subnet pool %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("lock subnet pool %s: %w", id, err)
	}
	if n == 0 {
		return notFound(id)
	}
	return nil
}

func notFound(id string) error {
	return fault.NotFound("SubnetPoolNotFound", "Subnet pool %s could not be found.", id)
}

func illegalPrefixUpdate(msg string) error {
	return fault.New(http.StatusBadRequest, "IllegalSubnetPoolPrefixUpdate", "Illegal update to prefixes: %s.", msg)
}

// ipamFault turns an IPAM error into the Neutron error the API returns.
// SubnetAllocationError is a 500 in Neutron (it has no HTTP mapping); an
// exhausted or occupied pool is a conflict, not a server failure, so it is
// a 409 here with Neutron's type and message.
func ipamFault(err error) error {
	err = ipam.Fault("prefixes", err)
	if fe, ok := fault.As(err); ok && fe.Type == ipam.TypeSubnetAllocationError {
		fe.Status = http.StatusConflict
	}
	return err
}

// parsePrefixes reads a list of CIDR strings; host bits are dropped, as
// Neutron's IPSet does.
func parsePrefixes(v any) ([]netip.Prefix, error) {
	list, _ := v.([]any)
	out := make([]netip.Prefix, 0, len(list))
	for _, e := range list {
		s, _ := e.(string)
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fault.BadRequest("Invalid input for prefixes. Reason: '%v' is not a valid IP subnet.", e)
		}
		out = append(out, pfx.Masked())
	}
	return out, nil
}

func storedPrefixes(obj resource.Object) ([]netip.Prefix, error) {
	out, err := parsePrefixes(obj["prefixes"])
	if err != nil {
		return nil, fmt.Errorf("subnet pool %v has malformed stored prefixes: %w", obj["id"], err)
	}
	return out, nil
}

// poolVersion checks that prefixes are not empty and of one IP version,
// and returns it.
func poolVersion(prefixes []netip.Prefix) (int, error) {
	if len(prefixes) == 0 {
		return 0, fault.New(http.StatusBadRequest, ipam.TypeEmptySubnetPoolPrefixList, "Empty subnet pool prefix list.")
	}
	v4 := prefixes[0].Addr().Is4()
	for _, pfx := range prefixes[1:] {
		if pfx.Addr().Is4() != v4 {
			return 0, fault.New(http.StatusBadRequest, ipam.TypePrefixVersionMismatch, "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
		}
	}
	if v4 {
		return 4, nil
	}
	return 6, nil
}

func prefixStrings(ps []netip.Prefix) []any {
	out := make([]any, len(ps))
	for i, pfx := range ps {
		out[i] = pfx.String()
	}
	return out
}

// covers reports whether every address of inner lies in outer.
func covers(outer, inner []netip.Prefix) bool {
	for _, in := range inner {
		var same []netip.Prefix
		for _, o := range outer {
			if o.Addr().Is4() == in.Addr().Is4() {
				same = append(same, o)
			}
		}
		// A prefix lies in the free space of outer (nothing used) exactly
		// when outer covers it.
		if len(same) == 0 || ipam.CheckSpecificPrefix(same, nil, in) != nil {
			return false
		}
	}
	return true
}

func anyOverlap(a, b []netip.Prefix) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Overlaps(y) {
				return true
			}
		}
	}
	return false
}

// difference returns the addresses of from not in remove, as prefixes
// (not compacted).
func difference(from, remove []netip.Prefix) []netip.Prefix {
	out := from
	for _, r := range remove {
		var next []netip.Prefix
		for _, pfx := range out {
			next = append(next, subtractPrefix(pfx, r)...)
		}
		out = next
	}
	return out
}

// subtractPrefix returns pfx without r, splitting pfx in halves down to r's
// length where they overlap: at most one prefix per bit of r.
func subtractPrefix(pfx, r netip.Prefix) []netip.Prefix {
	if !pfx.Overlaps(r) {
		return []netip.Prefix{pfx}
	}
	if r.Bits() <= pfx.Bits() {
		return nil // r covers pfx
	}
	lo := netip.PrefixFrom(pfx.Addr(), pfx.Bits()+1)
	hi := netip.PrefixFrom(lastAddr(lo).Next(), pfx.Bits()+1)
	return append(subtractPrefix(lo, r), subtractPrefix(hi, r)...)
}

// lastAddr is the highest address of a masked prefix.
func lastAddr(pfx netip.Prefix) netip.Addr {
	b := pfx.Addr().AsSlice()
	for i := pfx.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func setLens(obj resource.Object, l ipam.PrefixLens) {
	obj["min_prefixlen"] = int64(l.Min)
	obj["max_prefixlen"] = int64(l.Max)
	obj["default_prefixlen"] = int64(l.Default)
}

func int64Of(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case string: // as shown, should a presented object come back
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

func intPtr(v any) *int {
	n, ok := v.(int64)
	if !ok {
		return nil
	}
	i := int(n)
	return &i
}
