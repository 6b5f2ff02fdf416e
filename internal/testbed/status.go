package testbed

import (
	"context"
	"sync"

	"github.com/neutrino-sdn/neutrino/internal/bus/msg"
)

// Status stands in for the server that agent roles running on a bed
// report to (agent.StatusReporter and the l3 role's floating IP status):
// it keeps the last status reported of each port and floating IP.
type Status struct {
	mu  sync.Mutex
	up  map[string]bool
	fip map[string]string
}

// PortStatus records ports wired (up) or unwired (down).
func (s *Status) PortStatus(_ context.Context, up, down []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up == nil {
		s.up = map[string]bool{}
	}
	for _, id := range up {
		s.up[id] = true
	}
	for _, id := range down {
		delete(s.up, id)
	}
	return nil
}

// FloatingIPStatus records floating IPs configured (active) or not (down).
func (s *Status) FloatingIPStatus(_ context.Context, active, down []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fip == nil {
		s.fip = map[string]string{}
	}
	for _, id := range active {
		s.fip[id] = msg.StatusActive
	}
	for _, id := range down {
		s.fip[id] = msg.StatusDown
	}
	return nil
}

// PortUp tells whether port id was last reported up.
func (s *Status) PortUp(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up[id]
}

// FloatingIP is the status last reported of floating IP id, "" if none.
func (s *Status) FloatingIP(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fip[id]
}
