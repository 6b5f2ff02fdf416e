// Package bus owns the message bus between neutrino servers and agents:
// an embedded NATS server for the all-in-one and small clouds, the client
// connection (embedded in-process, or an external NATS cluster by URL),
// request/reply RPC from agents to any server replica through a queue group,
// and notifications fanned out from servers to the agents that care.
// Messages are JSON-encoded, versioned Go types from package bus/msg.
package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Embedded is a NATS server running inside this process.
type Embedded struct {
	srv *server.Server
	// ClientURL is nats://HOST:PORT for agents on other hosts ("" if not listening).
	ClientURL string
}

// EmbeddedOptions configure the embedded server.
type EmbeddedOptions struct {
	// Listen is HOST:PORT for remote agents; empty serves in-process clients only.
	Listen string
	// StoreDir is unused until JetStream is needed; kept for the state layout.
	StoreDir string
}

// StartEmbedded starts an embedded NATS server and waits until it accepts
// connections.
func StartEmbedded(opts EmbeddedOptions) (*Embedded, error) {
	o := &server.Options{ServerName: "neutrino", NoLog: true, NoSigs: true, DontListen: opts.Listen == ""}
	if opts.Listen != "" {
		host, port, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("bus: listen address %q: %w", opts.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("bus: listen port %q: %w", port, err)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		} else {
			// NATS reports a taken port only by never becoming ready;
			// say so at once instead.
			ln, err := net.Listen("tcp", opts.Listen)
			if err != nil {
				return nil, fmt.Errorf("bus: embedded NATS cannot listen on %s: %w", opts.Listen, err)
			}
			ln.Close()
		}
		o.Host, o.Port = host, p
	}
	s, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("bus: embedded NATS: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("bus: embedded NATS did not become ready within 10s")
	}
	e := &Embedded{srv: s}
	if opts.Listen != "" {
		e.ClientURL = s.ClientURL()
	}
	return e, nil
}

// Shutdown stops the embedded server.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Conn is a connection to the bus.
type Conn struct {
	nc  *nats.Conn
	log *slog.Logger
	// calls, once RegisterMetrics made it, times every Call.
	calls atomic.Pointer[prometheus.HistogramVec]
}

// Connect dials an external NATS at url (comma-separated for a cluster).
func Connect(url, name string, log *slog.Logger) (*Conn, error) {
	if log == nil {
		log = slog.Default()
	}
	nc, err := nats.Connect(url, options(name, log)...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect to %s: %w", url, err)
	}
	return &Conn{nc: nc, log: log}, nil
}

// ConnectEmbedded connects in-process to an embedded server.
func ConnectEmbedded(e *Embedded, name string, log *slog.Logger) (*Conn, error) {
	if log == nil {
		log = slog.Default()
	}
	nc, err := nats.Connect("", append(options(name, log), nats.InProcessServer(e.srv))...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect in-process: %w", err)
	}
	return &Conn{nc: nc, log: log}, nil
}

func options(name string, log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("bus disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("bus reconnected", "url", nc.ConnectedUrl()) }),
		// Without a handler nats.go prints asynchronous errors (such as a
		// closed in-process pipe at shutdown) to stderr.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Debug("bus asynchronous error", "subject", subject, "err", err)
		}),
	}
}

// OnReconnect registers fn to run after every reconnect; agents resync then,
// since notifications sent while they were away are lost.
func (c *Conn) OnReconnect(fn func()) {
	c.nc.SetReconnectHandler(func(nc *nats.Conn) {
		c.log.Info("bus reconnected", "url", nc.ConnectedUrl())
		fn()
	})
}

// Connected tells whether the connection is up now.
func (c *Conn) Connected() bool { return c.nc.IsConnected() }

// RegisterMetrics makes Call time its requests in
// neutrino_bus_request_duration_seconds (by method and result), registered
// with reg.
func (c *Conn) RegisterMetrics(reg prometheus.Registerer) error {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "neutrino", Subsystem: "bus", Name: "request_duration_seconds",
		Help:    "Duration of RPC requests to the servers over the bus, by method and result (ok, remote_error, no_server, timeout, error).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"method", "result"})
	if err := reg.Register(h); err != nil {
		return fmt.Errorf("bus: metrics: %w", err)
	}
	c.calls.Store(h)
	return nil
}

// callResult is the result label of a Call that ended with err.
func callResult(err error) string {
	var remote *RemoteError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &remote):
		return "remote_error"
	case errors.Is(err, nats.ErrNoResponders):
		return "no_server"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return "timeout"
	}
	return "error"
}

// Close drains subscriptions and closes the connection.
func (c *Conn) Close() {
	if err := c.nc.Drain(); err != nil {
		c.nc.Close()
	}
}

// Flush waits until the server has processed everything sent so far.
func (c *Conn) Flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	return c.nc.FlushWithContext(ctx)
}

// rpcSubject is the subject of an RPC method.
func rpcSubject(method string) string { return "neutrino.rpc." + method }

// serverQueue is the queue group all server replicas join, so each RPC is
// answered by exactly one of them.
const serverQueue = "neutrino-servers"

// RemoteError is an error returned by the RPC handler on the other side.
type RemoteError struct{ Message string }

func (e *RemoteError) Error() string { return "remote: " + e.Message }

type reply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Call sends an RPC request to any server replica and decodes the reply
// into out (which may be nil).
func (c *Conn) Call(ctx context.Context, method string, in, out any) (err error) {
	if h := c.calls.Load(); h != nil {
		start := time.Now()
		defer func() { h.WithLabelValues(method, callResult(err)).Observe(time.Since(start).Seconds()) }()
	}
	data, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("bus: encode %s request: %w", method, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	m, err := c.nc.RequestWithContext(ctx, rpcSubject(method), data)
	if err != nil {
		return fmt.Errorf("bus: call %s: %w", method, err)
	}
	var r reply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return fmt.Errorf("bus: decode %s reply: %w", method, err)
	}
	if r.Error != "" {
		return fmt.Errorf("bus: call %s: %w", method, &RemoteError{Message: r.Error})
	}
	if out != nil && len(r.Result) > 0 {
		if err := json.Unmarshal(r.Result, out); err != nil {
			return fmt.Errorf("bus: decode %s result: %w", method, err)
		}
	}
	return nil
}

// Handle serves an RPC method in the servers' queue group. fn receives the
// raw request, decodes it with Decode, and returns the result to encode.
func (c *Conn) Handle(method string, fn func(ctx context.Context, req json.RawMessage) (any, error)) (func(), error) {
	sub, err := c.nc.QueueSubscribe(rpcSubject(method), serverQueue, func(m *nats.Msg) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := fn(ctx, m.Data)
		var r reply
		if err != nil {
			c.log.Warn("rpc failed", "method", method, "err", err)
			r.Error = err.Error()
		} else if res != nil {
			data, merr := json.Marshal(res)
			if merr != nil {
				r.Error = "encode result: " + merr.Error()
			} else {
				r.Result = data
			}
		}
		out, _ := json.Marshal(r)
		if err := m.Respond(out); err != nil {
			c.log.Warn("rpc reply failed", "method", method, "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bus: serve %s: %w", method, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// Publish sends a notification on subject.
func (c *Conn) Publish(subject string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("bus: encode notification for %s: %w", subject, err)
	}
	if err := c.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("bus: publish %s: %w", subject, err)
	}
	return nil
}

// Subscribe delivers notifications on subject (wildcards allowed) to fn,
// one at a time in arrival order.
func (c *Conn) Subscribe(subject string, fn func(subject string, data []byte)) (func(), error) {
	sub, err := c.nc.Subscribe(subject, func(m *nats.Msg) { fn(m.Subject, m.Data) })
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe %s: %w", subject, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// Decode unmarshals an RPC request or notification body.
func Decode[T any](data []byte) (T, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("bus: decode %T: %w", v, err)
	}
	return v, nil
}
