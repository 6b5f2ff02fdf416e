package dhcp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/neutrino-sdn/neutrino/internal/dataplane/netns"
)

// Server is a DHCPv4 server on one interface of one network namespace. It
// answers from its Table, which SetTable swaps atomically: changes apply
// to the next message without restarting anything.
type Server struct {
	ns, dev string
	conn    *net.UDPConn
	pc      *ipv4.PacketConn
	table   atomic.Pointer[Table]
	log     *slog.Logger
	done    chan struct{}
	once    sync.Once

	// answered counts replies sent, for tests and the role's stats.
	answered atomic.Int64
	// onReply, if set, hears of every reply sent (the role's metrics).
	onReply atomic.Pointer[func(Reply)]
}

// Listen opens UDP port 67 on interface dev inside namespace ns ("" for
// this process's own) and starts serving t. The socket is made on a thread
// inside the namespace and stays there; serving runs on a goroutine of its
// own until Close.
func Listen(ns, dev string, t *Table, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	var conn *net.UDPConn
	open := func() error {
		var err error
		conn, err = listenUDP(dev)
		return err
	}
	var err error
	if ns == "" {
		err = open()
	} else {
		err = netns.Do(ns, open)
	}
	if err != nil {
		return nil, fmt.Errorf("dhcp: listen on %s in namespace %q: %w", dev, ns, err)
	}
	s := &Server{ns: ns, dev: dev, conn: conn, pc: ipv4.NewPacketConn(conn), log: log, done: make(chan struct{})}
	s.table.Store(t)
	go s.serve()
	return s, nil
}

// listenUDP makes a UDP socket on :67 bound to dev that may broadcast, in
// the calling thread's network namespace.
func listenUDP(dev string) (*net.UDPConn, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "dhcp-"+dev)
	// FilePacketConn duplicates the descriptor; this one is closed either way.
	defer f.Close()
	// No SO_REUSEADDR: a second server on the same interface is a bug
	// that should fail here, not split the requests.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); err != nil {
		return nil, fmt.Errorf("SO_BROADCAST: %w", err)
	}
	if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev); err != nil {
		return nil, fmt.Errorf("SO_BINDTODEVICE %s: %w", dev, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: ServerPort}); err != nil {
		return nil, fmt.Errorf("bind :%d: %w", ServerPort, err)
	}
	c, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("socket to connection: %w", err)
	}
	return c.(*net.UDPConn), nil
}

// SetTable replaces the table the server answers from.
func (s *Server) SetTable(t *Table) { s.table.Store(t) }

// Table is the table the server answers from.
func (s *Server) Table() *Table { return s.table.Load() }

// Answered is the number of replies sent so far.
func (s *Server) Answered() int64 { return s.answered.Load() }

// OnReply makes fn hear of every reply sent from now on.
func (s *Server) OnReply(fn func(Reply)) { s.onReply.Store(&fn) }

// Close stops serving and closes the socket; it returns once the serving
// goroutine has ended.
func (s *Server) Close() {
	s.once.Do(func() { s.conn.Close() })
	<-s.done
}

func (s *Server) serve() {
	defer close(s.done)
	buf := make([]byte, 1500)
	for {
		n, _, err := s.conn.ReadFromUDP(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			s.log.Warn("dhcp: read failed", "netns", s.ns, "dev", s.dev, "err", err)
			continue
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			s.log.Debug("dhcp: unreadable message", "netns", s.ns, "err", err)
			continue
		}
		reply, ok := Respond(s.table.Load(), req)
		if !ok {
			s.log.Debug("dhcp: no answer", "netns", s.ns, "mac", req.ClientHWAddr.String(), "type", req.MessageType())
			continue
		}
		if err := s.send(reply); err != nil {
			s.log.Warn("dhcp: send failed", "netns", s.ns, "dev", s.dev, "to", reply.Dst, "err", err)
			continue
		}
		s.answered.Add(1)
		if fn := s.onReply.Load(); fn != nil {
			(*fn)(reply)
		}
		s.log.Debug("dhcp: answered", "netns", s.ns, "mac", req.ClientHWAddr.String(), "type", reply.Msg.MessageType(), "address", reply.Msg.YourIPAddr, "to", reply.Dst)
	}
}

// send sends a reply from its server address, which selects the source
// when the interface has addresses on several subnets.
func (s *Server) send(r Reply) error {
	var cm *ipv4.ControlMessage
	if r.Src.IsValid() {
		cm = &ipv4.ControlMessage{Src: r.Src.AsSlice()}
	}
	dst := &net.UDPAddr{IP: r.Dst.Addr().AsSlice(), Port: int(r.Dst.Port())}
	_, err := s.pc.WriteTo(r.Msg.ToBytes(), cm, dst)
	return err
}
