// Package segment owns network segments: the type drivers (flat, vlan,
// vxlan, gre, geneve) that validate provider attributes, allocate
// segmentation ids for tenant networks from configured ranges, and compute
// each network type's MTU. The database's unique (type, physical network,
// id) key keeps two networks from sharing a segment across server replicas.
package segment

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/neutrino-sdn/neutrino/internal/fault"
	"github.com/neutrino-sdn/neutrino/internal/store"
)

// Network types.
const (
	Flat   = "flat"
	VLAN   = "vlan"
	VXLAN  = "vxlan"
	GRE    = "gre"
	Geneve = "geneve"
)

// Range is an inclusive range of segmentation ids.
type Range struct{ Min, Max int64 }

// Config is the type drivers' configuration (Neutron's ml2 options).
type Config struct {
	// TenantNetworkTypes are tried in order for networks without provider attributes.
	TenantNetworkTypes []string
	// FlatNetworks lists physical networks usable for flat networks; "*" allows any.
	FlatNetworks []string
	// VLANRanges maps physical networks to tenant-allocatable VLAN ranges;
	// a physnet listed with no ranges is usable by admins only.
	VLANRanges                           map[string][]Range
	VXLANRanges, GRERanges, GeneveRanges []Range
	// PhysnetMTU is the MTU of the underlying physical network (global_physnet_mtu).
	PhysnetMTU int64
}

// DefaultConfig mirrors a DevStack-style ML2 setup.
func DefaultConfig() Config {
	return Config{
		TenantNetworkTypes: []string{VXLAN},
		FlatNetworks:       []string{"*"},
		VLANRanges:         map[string][]Range{"physnet1": {{1000, 2999}}},
		VXLANRanges:        []Range{{1, 1000}},
		GRERanges:          []Range{{1, 1000}},
		GeneveRanges:       []Range{{1, 1000}},
		PhysnetMTU:         1500,
	}
}

// ParseRanges parses "1:1000,2000:2100".
func ParseRanges(s string) ([]Range, error) {
	var out []Range
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, ok := strings.Cut(part, ":")
		if !ok {
			hi = lo
		}
		a, err1 := strconv.ParseInt(lo, 10, 64)
		b, err2 := strconv.ParseInt(hi, 10, 64)
		if err1 != nil || err2 != nil || a > b || a < 0 {
			return nil, fmt.Errorf("invalid range %q: want MIN:MAX", part)
		}
		out = append(out, Range{a, b})
	}
	return out, nil
}

// Segment is one network segment.
type Segment struct {
	NetworkType     string
	PhysicalNetwork string // "" for tunnels
	SegmentationID  int64  // 0 for flat
}

// Manager validates and allocates segments.
type Manager struct{ cfg Config }

// New returns a segment manager.
func New(cfg Config) *Manager { return &Manager{cfg: cfg} }

// maxID is the largest segmentation id per type.
func maxID(t string) int64 {
	switch t {
	case VLAN:
		return 4094
	case VXLAN, Geneve:
		return 1<<24 - 1
	case GRE:
		return 1<<32 - 1
	}
	return 0
}

// MTU is the largest MTU a network of this type can carry.
func (m *Manager) MTU(t string) int64 {
	mtu := m.cfg.PhysnetMTU
	switch t {
	case VXLAN, Geneve:
		return mtu - 50 // outer IPv4 20 + UDP 8 + VXLAN/Geneve 8 + inner Ethernet 14
	case GRE:
		return mtu - 42
	}
	return mtu
}

// Validate checks admin-given provider attributes. segID < 0 means not given.
func (m *Manager) Validate(netType, physnet string, segID int64) error {
	bad := func(format string, args ...any) error { return fault.InvalidInput(format, args...) }
	switch netType {
	case Flat:
		if physnet == "" {
			return bad("physical_network required for flat provider network")
		}
		if segID >= 0 {
			return bad("segmentation_id specified for flat network")
		}
		if !slices.Contains(m.cfg.FlatNetworks, "*") && !slices.Contains(m.cfg.FlatNetworks, physnet) {
			return bad("physical_network '%s' unknown for flat provider network", physnet)
		}
	case VLAN:
		if physnet == "" {
			return bad("physical_network required for VLAN provider network")
		}
		if _, ok := m.cfg.VLANRanges[physnet]; !ok {
			return bad("physical_network '%s' unknown for VLAN provider network", physnet)
		}
		if segID >= 0 && (segID < 1 || segID > 4094) {
			return bad("segmentation_id out of range (1 through 4094)")
		}
	case VXLAN, GRE, Geneve:
		if physnet != "" {
			return bad("provider:physical_network specified for %s network", netType)
		}
		if segID >= 0 && (segID < 1 || segID > maxID(netType)) {
			return bad("segmentation_id out of range (1 through %d)", maxID(netType))
		}
	default:
		return bad("network_type value '%s' not supported", netType)
	}
	return nil
}

func (m *Manager) tenantRanges(t, physnet string) []Range {
	switch t {
	case VXLAN:
		return m.cfg.VXLANRanges
	case GRE:
		return m.cfg.GRERanges
	case Geneve:
		return m.cfg.GeneveRanges
	case VLAN:
		return m.cfg.VLANRanges[physnet]
	}
	return nil
}

// Allocate stores a segment for network netID. For provider networks seg
// is complete (or lacks only a VLAN id); for tenant networks seg is zero and
// the first tenant network type with a free id is used.
func (m *Manager) Allocate(ctx context.Context, tx *store.Tx, netID string, seg Segment, segGiven bool) (Segment, error) {
	if seg.NetworkType == "" {
		for _, t := range m.cfg.TenantNetworkTypes {
			physnet := ""
			if t == VLAN {
				for p := range m.cfg.VLANRanges {
					physnet = p
					break
				}
			}
			s, err := m.allocateFree(ctx, tx, netID, t, physnet)
			if err == nil {
				return s, nil
			}
			if !errors.Is(err, errExhausted) {
				return Segment{}, err
			}
		}
		return Segment{}, fault.New(http.StatusServiceUnavailable, "NoNetworkAvailable",
			"Unable to create the network. No tenant network is available for allocation.")
	}
	if seg.NetworkType == VLAN && !segGiven {
		s, err := m.allocateFree(ctx, tx, netID, VLAN, seg.PhysicalNetwork)
		if errors.Is(err, errExhausted) {
			return Segment{}, fault.New(http.StatusServiceUnavailable, "NoNetworkAvailable",
				"Unable to create the network. No tenant network is available for allocation.")
		}
		return s, err
	}
	if err := insert(ctx, tx, netID, seg); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return Segment{}, inUse(seg)
		}
		return Segment{}, err
	}
	return seg, nil
}

func inUse(seg Segment) error {
	switch seg.NetworkType {
	case Flat:
		return fault.Conflict("FlatNetworkInUse", "Unable to create the flat network. Physical network %s is in use.", seg.PhysicalNetwork)
	case VLAN:
		return fault.Conflict("VlanIdInUse", "Unable to create the network. The VLAN %d on physical network %s is in use.", seg.SegmentationID, seg.PhysicalNetwork)
	}
	return fault.Conflict("TunnelIdInUse", "Unable to create the network. The tunnel ID %d is in use.", seg.SegmentationID)
}

var errExhausted = errors.New("segment range exhausted")

func insert(ctx context.Context, tx *store.Tx, netID string, seg Segment) error {
	return tx.Savepoint(ctx, func() error {
		_, err := tx.Exec(ctx, `INSERT INTO segments (id, network_id, network_type, physical_network, segmentation_id) VALUES (?, ?, ?, ?, ?)`,
			uuid.NewString(), netID, seg.NetworkType, seg.PhysicalNetwork, seg.SegmentationID)
		return err
	})
}

// Contention handling of allocateFree.
const (
	// allocateAttempts bounds the inserts one allocation tries.
	allocateAttempts = 10
	// allocateSpread is how many of the lowest free ids a transaction that
	// lost a race chooses from at random, so that racing server replicas
	// stop picking the same id.
	allocateSpread = 64
)

// allocateFree takes the lowest free id in the type's tenant ranges. It
// reads only allocated ids (never walks the whole range) and retries when a
// concurrent writer takes the same id, then with a random one of the lowest
// free ids.
func (m *Manager) allocateFree(ctx context.Context, tx *store.Tx, netID, t, physnet string) (Segment, error) {
	ranges := m.tenantRanges(t, physnet)
	for attempt := 0; attempt < allocateAttempts; attempt++ {
		used, err := usedIDs(ctx, tx, t, physnet)
		if err != nil {
			return Segment{}, err
		}
		free := freeIDs(ranges, used, allocateSpread)
		if len(free) == 0 {
			return Segment{}, errExhausted
		}
		id := free[0]
		if attempt > 0 {
			id = free[rand.IntN(len(free))]
		}
		seg := Segment{NetworkType: t, PhysicalNetwork: physnet, SegmentationID: id}
		err = insert(ctx, tx, netID, seg)
		if err == nil {
			return seg, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return Segment{}, err
		}
	}
	return Segment{}, fmt.Errorf("segment: allocating a %s id kept conflicting", t)
}

func usedIDs(ctx context.Context, tx *store.Tx, t, physnet string) ([]int64, error) {
	rows, err := tx.Query(ctx, `SELECT segmentation_id FROM segments WHERE network_type = ? AND physical_network = ? ORDER BY segmentation_id`, t, physnet)
	if err != nil {
		return nil, fmt.Errorf("segment: read allocations: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("segment: read allocations: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// freeIDs returns up to limit of the lowest ids in ranges not in used
// (sorted ascending); the work is bounded by len(used) + limit.
func freeIDs(ranges []Range, used []int64, limit int) []int64 {
	var out []int64
	for _, r := range ranges {
		i, _ := slices.BinarySearch(used, r.Min)
		for id := r.Min; id <= r.Max && len(out) < limit; id++ {
			for i < len(used) && used[i] < id {
				i++
			}
			if i < len(used) && used[i] == id {
				continue
			}
			out = append(out, id)
		}
	}
	return out
}

// firstFree returns the lowest id in ranges not in used (sorted ascending).
func firstFree(ranges []Range, used []int64) (int64, bool) {
	if free := freeIDs(ranges, used, 1); len(free) > 0 {
		return free[0], true
	}
	return 0, false
}

// ForNetwork returns the segments of a network.
func ForNetwork(ctx context.Context, tx *store.Tx, netID string) ([]Segment, error) {
	rows, err := tx.Query(ctx, `SELECT network_type, physical_network, segmentation_id FROM segments WHERE network_id = ? ORDER BY id`, netID)
	if err != nil {
		return nil, fmt.Errorf("segment: read segments of %s: %w", netID, err)
	}
	defer rows.Close()
	var out []Segment
	for rows.Next() {
		var s Segment
		if err := rows.Scan(&s.NetworkType, &s.PhysicalNetwork, &s.SegmentationID); err != nil {
			return nil, fmt.Errorf("segment: read segments of %s: %w", netID, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
