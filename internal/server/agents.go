package server

import (
	"context"
	"fmt"
	"sync"

	"github.com/neutrino-sdn/neutrino/internal/agentrpc"
	"github.com/neutrino-sdn/neutrino/internal/bus"
	"github.com/neutrino-sdn/neutrino/internal/metadata"
)

// busSide is the server's end of the bus to the agents.
type busSide struct {
	// nats is the embedded NATS server, nil with an external one.
	nats *bus.Embedded
	conn *bus.Conn
	rpc  *agentrpc.Server
	// url is where agents connect.
	url string
}

// connectBus starts the embedded NATS server (or connects to nats.url)
// and serves the agents' RPC methods on it.
func (s *Server) connectBus() error {
	b := &busSide{}
	var err error
	if s.cfg.NATS.URL != "" {
		b.url = s.cfg.NATS.URL
		if b.conn, err = bus.Connect(s.cfg.NATS.URL, "neutrino-server", s.log); err != nil {
			return fmt.Errorf("server: %w", err)
		}
	} else {
		if b.nats, err = bus.StartEmbedded(bus.EmbeddedOptions{Listen: s.cfg.NATS.Listen}); err != nil {
			return fmt.Errorf("server: %w", err)
		}
		b.url = b.nats.ClientURL
		if b.conn, err = bus.ConnectEmbedded(b.nats, "neutrino-server", s.log); err != nil {
			b.nats.Shutdown()
			return fmt.Errorf("server: %w", err)
		}
	}
	if b.rpc, err = agentrpc.Register(s.Service, b.conn, agentrpc.Options{Log: s.log}); err != nil {
		b.conn.Close()
		if b.nats != nil {
			b.nats.Shutdown()
		}
		return fmt.Errorf("server: %w", err)
	}
	if _, err := metadata.NewRegistry(s.Service).HandleLookups(b.conn); err != nil {
		b.rpc.Close()
		b.conn.Close()
		if b.nats != nil {
			b.nats.Shutdown()
		}
		return fmt.Errorf("server: %w", err)
	}
	s.bus = b
	s.background = append(s.background, b.rpc.Run)
	return nil
}

// NATS returns the embedded NATS server (nil with an external one); an
// agent in the same process connects with bus.ConnectEmbedded.
func (s *Server) NATS() *bus.Embedded { return s.bus.nats }

// NATSURL is where agents on other hosts connect ("" when the embedded
// server listens for in-process clients only).
func (s *Server) NATSURL() string { return s.bus.url }

// Agents returns the server side of the agents' RPC and notifications.
func (s *Server) Agents() *agentrpc.Server { return s.bus.rpc }

// runBackground starts the background loops; the returned function stops
// them and waits until they have.
func (s *Server) runBackground() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, fn := range s.background {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(ctx)
		}()
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// closeBus stops serving agents and closes the bus.
func (s *Server) closeBus() {
	s.bus.rpc.Close()
	s.bus.conn.Close()
	if s.bus.nats != nil {
		s.bus.nats.Shutdown()
	}
}
