package l2

import (
	"sort"
	"strconv"
	"strings"
)

// localVLANKeyPrefix prefixes the br-int external_ids keys that record each
// network's local VLAN ("neutrino-local-vlan:<network id>" = "<vlan>"), so
// a restarted agent (or one whose ovs-vswitchd restarted) keeps every
// network on the VLAN its flows already use.
const localVLANKeyPrefix = "neutrino-local-vlan:"

// LocalVLANKey is the br-int external_ids key holding a network's local VLAN.
func LocalVLANKey(networkID string) string { return localVLANKeyPrefix + networkID }

// localVLANs allocates node-local VLANs (1-4094) to networks.
type localVLANs struct {
	byNet  map[string]uint16
	inUse  map[uint16]string
	stored map[string]uint16 // as recorded in OVSDB
}

func newLocalVLANs() *localVLANs {
	return &localVLANs{byNet: map[string]uint16{}, inUse: map[uint16]string{}, stored: map[string]uint16{}}
}

// recover takes the allocations recorded in br-int's external_ids. It keeps
// the first network of a VLAN recorded twice (the other gets a new one).
func (l *localVLANs) recover(externalIDs map[string]string) {
	keys := make([]string, 0, len(externalIDs))
	for k := range externalIDs {
		if strings.HasPrefix(k, localVLANKeyPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		net := strings.TrimPrefix(k, localVLANKeyPrefix)
		v, err := strconv.Atoi(externalIDs[k])
		l.stored[net] = uint16(v)
		if err != nil || v < 1 || v > 4094 {
			continue
		}
		if _, taken := l.inUse[uint16(v)]; taken {
			continue
		}
		if _, has := l.byNet[net]; has {
			continue
		}
		l.byNet[net] = uint16(v)
		l.inUse[uint16(v)] = net
	}
}

// get returns the network's VLAN, allocating the lowest free one; ok is
// false when all 4094 are taken.
func (l *localVLANs) get(net string) (uint16, bool) {
	if v, ok := l.byNet[net]; ok {
		return v, true
	}
	for v := uint16(1); v <= 4094; v++ {
		if _, taken := l.inUse[v]; !taken {
			l.byNet[net] = v
			l.inUse[v] = net
			return v, true
		}
	}
	return 0, false
}

// release frees the VLANs of networks not in keep.
func (l *localVLANs) release(keep map[string]bool) {
	for net, v := range l.byNet {
		if !keep[net] {
			delete(l.byNet, net)
			delete(l.inUse, v)
		}
	}
}

// changes returns the external_ids edits that make OVSDB record exactly
// the current allocations.
func (l *localVLANs) changes() (set map[string]string, del []string) {
	for net, v := range l.byNet {
		if l.stored[net] != v {
			if set == nil {
				set = map[string]string{}
			}
			set[LocalVLANKey(net)] = strconv.Itoa(int(v))
		}
	}
	for net := range l.stored {
		if _, ok := l.byNet[net]; !ok {
			del = append(del, LocalVLANKey(net))
		}
	}
	sort.Strings(del)
	return set, del
}

// saved records that OVSDB now holds the current allocations.
func (l *localVLANs) saved() {
	l.stored = make(map[string]uint16, len(l.byNet))
	for net, v := range l.byNet {
		l.stored[net] = v
	}
}
