package l2

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"time"
)

// WatchSwitch keeps an OpenFlow connection to a bridge's management socket
// open and calls restarted each time it is re-established after a loss:
// ovs-vswitchd restarted (or the bridge was re-created), so its flow tables
// are empty and must be pushed again at once. The kernel closes the socket
// the moment ovs-vswitchd dies, so this costs no polling. It returns when
// ctx ends.
func WatchSwitch(ctx context.Context, socket string, restarted func()) {
	lost := false
	for ctx.Err() == nil {
		conn, err := (&net.Dialer{}).DialContext(ctx, "unix", socket)
		if err != nil {
			lost = true
			sleepCtx(ctx, 50*time.Millisecond)
			continue
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		established := holdOpenFlow(conn, func() {
			if lost {
				restarted()
			}
		})
		stop()
		conn.Close()
		if established {
			lost = true
		} else {
			// Refused (e.g. OpenFlow 1.4 disabled on the bridge): the
			// programming fails loudly anyway; don't spin.
			sleepCtx(ctx, time.Second)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// OpenFlow message types used to keep a connection open.
const (
	ofptHello       = 0
	ofptError       = 1
	ofptEchoRequest = 2
	ofptEchoReply   = 3
	ofVersion14     = 5
)

// holdOpenFlow says hello and answers echo requests until the connection
// ends. It calls up once the switch has said hello, and reports whether it
// did.
func holdOpenFlow(conn net.Conn, up func()) (established bool) {
	hello := []byte{ofVersion14, ofptHello, 0, 8, 0, 0, 0, 1}
	if _, err := conn.Write(hello); err != nil {
		return false
	}
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(conn, hdr); err != nil {
			return established
		}
		n := int(binary.BigEndian.Uint16(hdr[2:4]))
		if n < 8 {
			return established
		}
		body := make([]byte, n-8)
		if _, err := io.ReadFull(conn, body); err != nil {
			return established
		}
		switch hdr[1] {
		case ofptHello:
			if !established {
				established = true
				up()
			}
		case ofptError:
			if !established {
				return false
			}
		case ofptEchoRequest:
			reply := append([]byte{hdr[0], ofptEchoReply, hdr[2], hdr[3], hdr[4], hdr[5], hdr[6], hdr[7]}, body...)
			if _, err := conn.Write(reply); err != nil {
				return established
			}
		}
	}
}
