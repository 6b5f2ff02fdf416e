package ovs

import (
	"context"
	"maps"
	"reflect"
	"sync"
)

// EventKind says what happened to an interface.
type EventKind int

// The kinds of InterfaceEvent.
const (
	InterfaceAdded EventKind = iota + 1
	InterfaceUpdated
	InterfaceDeleted
)

func (k EventKind) String() string {
	switch k {
	case InterfaceAdded:
		return "added"
	case InterfaceUpdated:
		return "updated"
	case InterfaceDeleted:
		return "deleted"
	}
	return "unknown"
}

// InterfaceEvent reports a change of one interface in OVSDB.
type InterfaceEvent struct {
	Kind EventKind
	// Interface is the new state; for InterfaceDeleted the last one seen.
	Interface InterfaceState
	// Old is the previous state of an InterfaceUpdated.
	Old InterfaceState
}

// WatchInterfaces delivers interface events from OVSDB's monitor, starting
// with an InterfaceAdded for every interface that exists already, so a
// consumer that applies events in order always holds the current state. An
// interface plugged by a VIF driver shows as InterfaceAdded (iface-id set,
// Ofport maybe still 0), then InterfaceUpdated once OVS assigns its ofport;
// unplugging shows as InterfaceDeleted. Events are queued without bound, so
// a slow consumer never stalls the monitor or loses an event.
//
// The channel is closed when ctx ends or the connection drops; after a
// drop, connect again and start over from a new watch.
func (c *Client) WatchInterfaces(ctx context.Context) <-chan InterfaceEvent {
	w := &watcher{wake: make(chan struct{}, 1), known: map[string]InterfaceState{}}
	out := make(chan InterfaceEvent)
	c.mu.Lock()
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	// Events the monitor delivers meanwhile may repeat what the listing
	// shows; observe drops the repeats.
	for _, s := range c.Interfaces() {
		w.observe(nil, &s)
	}
	go func() {
		defer close(out)
		defer func() {
			c.mu.Lock()
			delete(c.watchers, w)
			c.mu.Unlock()
		}()
		for {
			for {
				ev, ok := w.pop()
				if !ok {
					break
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				case <-c.ovs.DisconnectNotify():
					return
				}
			}
			select {
			case <-w.wake:
			case <-ctx.Done():
				return
			case <-c.ovs.DisconnectNotify():
				return
			}
		}
	}()
	return out
}

// watcher turns row changes into events relative to what its consumer has
// been told, so repeats are dropped and nothing is reported twice.
type watcher struct {
	wake  chan struct{} // has an element when queue may be non-empty
	mu    sync.Mutex
	queue []InterfaceEvent
	known map[string]InterfaceState // by UUID: what the consumer was told
}

// observe records a change from old to cur (either may be nil).
func (w *watcher) observe(old, cur *InterfaceState) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var uuid string
	if cur != nil {
		uuid = cur.UUID
	} else {
		uuid = old.UUID
	}
	told, known := w.known[uuid]
	switch {
	case cur == nil && known:
		delete(w.known, uuid)
		w.queue = append(w.queue, InterfaceEvent{Kind: InterfaceDeleted, Interface: told})
	case cur == nil:
		return
	case !known:
		w.known[uuid] = *cur
		w.queue = append(w.queue, InterfaceEvent{Kind: InterfaceAdded, Interface: *cur})
	case !sameInterfaceState(told, *cur):
		w.known[uuid] = *cur
		w.queue = append(w.queue, InterfaceEvent{Kind: InterfaceUpdated, Interface: *cur, Old: told})
	default:
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) pop() (InterfaceEvent, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return InterfaceEvent{}, false
	}
	ev := w.queue[0]
	w.queue[0] = InterfaceEvent{}
	w.queue = w.queue[1:]
	return ev, true
}

func sameInterfaceState(a, b InterfaceState) bool {
	return maps.Equal(a.ExternalIDs, b.ExternalIDs) && maps.Equal(a.Options, b.Options) &&
		reflect.DeepEqual(withoutMaps(a), withoutMaps(b))
}

func withoutMaps(s InterfaceState) InterfaceState {
	s.ExternalIDs, s.Options = nil, nil
	return s
}
