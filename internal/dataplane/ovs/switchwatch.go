package ovs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// OpenFlow message types the watch speaks (the same in every version).
const (
	ofptHello       = 0
	ofptEchoRequest = 2
	ofptEchoReply   = 3
	ofpHeaderLen    = 8
	// ofpVersion15 is the highest version offered; the hello's version
	// bitmap lets the switch pick any of 1.0-1.5 it allows.
	ofpVersion15 = 0x06
)

const (
	// watchRetryMin and watchRetryMax pace reconnection while the bridge
	// is unreachable (ovs-vswitchd down or the bridge missing).
	watchRetryMin = 20 * time.Millisecond
	watchRetryMax = time.Second
)

// WatchFlowLoss reports each time the bridge's flow tables start out empty:
// once when the watch first reaches the bridge, then every time it reaches
// it again after losing it — ovs-vswitchd restarted, or the bridge was
// deleted and created again. The agent pushes its flows on every report.
//
// It holds an OpenFlow connection to the bridge's management socket open
// (answering echo requests), so a restart shows the instant the socket
// closes; only while the bridge is unreachable does it retry, backing off
// from 20 ms to 1 s. Reports are coalesced; the channel closes when ctx
// ends.
func (o *OpenFlow) WatchFlowLoss(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		retry := watchRetryMin
		for ctx.Err() == nil {
			conn, err := o.dialSwitch(ctx)
			if err != nil {
				select {
				case <-ctx.Done():
					return
				case <-time.After(retry):
				}
				retry = min(retry*2, watchRetryMax)
				continue
			}
			retry = watchRetryMin
			select {
			case out <- struct{}{}:
			default:
			}
			holdSwitchConn(ctx, conn)
		}
	}()
	return out
}

// dialSwitch connects to the management socket and exchanges hellos.
func (o *OpenFlow) dialSwitch(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", o.target[len("unix:"):])
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	hello := make([]byte, ofpHeaderLen+8)
	hello[0], hello[1] = ofpVersion15, ofptHello
	binary.BigEndian.PutUint16(hello[2:], uint16(len(hello)))
	// One hello element: type 1 (version bitmap), length 8, versions 1-6.
	binary.BigEndian.PutUint16(hello[8:], 1)
	binary.BigEndian.PutUint16(hello[10:], 8)
	binary.BigEndian.PutUint32(hello[12:], 0x7e)
	if _, err := conn.Write(hello); err != nil {
		conn.Close()
		return nil, err
	}
	typ, _, _, err := readOFMessage(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if typ != ofptHello {
		conn.Close()
		return nil, fmt.Errorf("ovs: %s answered the hello with message type %d", o.bridge, typ)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// holdSwitchConn answers echo requests until the connection closes or ctx
// ends, and closes it.
func holdSwitchConn(ctx context.Context, conn net.Conn) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	for {
		typ, version, msg, err := readOFMessage(conn)
		if err != nil {
			return
		}
		if typ == ofptEchoRequest {
			msg[0], msg[1] = version, ofptEchoReply
			if _, err := conn.Write(msg); err != nil {
				return
			}
		}
	}
}

// readOFMessage reads one OpenFlow message and returns its type, version
// and bytes.
func readOFMessage(r io.Reader) (typ, version byte, msg []byte, err error) {
	header := make([]byte, ofpHeaderLen)
	if _, err := io.ReadFull(r, header); err != nil {
		return 0, 0, nil, err
	}
	length := int(binary.BigEndian.Uint16(header[2:]))
	if length < ofpHeaderLen {
		return 0, 0, nil, errors.New("ovs: OpenFlow message shorter than its header")
	}
	msg = make([]byte, length)
	copy(msg, header)
	if _, err := io.ReadFull(r, msg[ofpHeaderLen:]); err != nil {
		return 0, 0, nil, err
	}
	return header[1], header[0], msg, nil
}
