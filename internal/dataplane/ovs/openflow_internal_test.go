package ovs

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestParseFlowLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Flow
	}{
		{
			" cookie=0x5, duration=0.005s, table=0, n_packets=3, n_bytes=180, priority=10,ip,nw_src=10.0.0.1 actions=drop",
			Flow{Cookie: 5, Table: 0, Packets: 3, Bytes: 180, Priority: 10, Match: "ip,nw_src=10.0.0.1", Actions: "drop"},
		},
		{
			" cookie=0x6, duration=1.5s, table=1, n_packets=0, n_bytes=0, idle_timeout=30, idle_age=1, priority=20,arp actions=NORMAL",
			Flow{Cookie: 6, Table: 1, IdleTimeout: 30, Priority: 20, Match: "arp", Actions: "NORMAL"},
		},
		{
			" cookie=0x0, duration=2s, table=3, n_packets=0, n_bytes=0, priority=0 actions=resubmit(,1)",
			Flow{Table: 3, Actions: "resubmit(,1)"},
		},
		{ // OpenFlow's default priority is not printed; nor is an empty match
			" cookie=0x0, duration=2s, table=0, n_packets=0, n_bytes=0, actions=NORMAL",
			Flow{Priority: 32768, Actions: "NORMAL"},
		},
		{
			" cookie=0xffffffffffffffff, duration=2s, table=254, n_packets=0, n_bytes=0, hard_timeout=5, priority=1,ct_state=+new+trk,tcp,tp_dst=22 actions=conjunction(1,2/3),ct(commit,zone=NXM_NX_REG6[0..15])",
			Flow{Cookie: ^uint64(0), Table: 254, HardTimeout: 5, Priority: 1, Match: "ct_state=+new+trk,tcp,tp_dst=22", Actions: "conjunction(1,2/3),ct(commit,zone=NXM_NX_REG6[0..15])"},
		},
	} {
		got, err := parseFlowLine(tc.line)
		if err != nil || got != tc.want {
			t.Errorf("parseFlowLine(%q)\n got %+v, %v\nwant %+v", tc.line, got, err, tc.want)
		}
	}
	if _, err := parseFlowLine(" cookie=zz, table=0 actions=drop"); err == nil {
		t.Error("bad cookie parsed")
	}
}

func TestFlowString(t *testing.T) {
	f := Flow{Table: 2, Priority: 100, Cookie: 0xab, Match: "in_port=1", Actions: "output:2", IdleTimeout: 10}
	if got, want := f.String(), "table=2,priority=100,cookie=0xab,idle_timeout=10,in_port=1 actions=output:2"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := (Flow{}).String(), "table=0,priority=0,cookie=0x0 actions=drop"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := DeleteCookie(5, ^uint64(0)).String(), "delete cookie=0x5/0xffffffffffffffff"; got != want {
		t.Errorf("DeleteCookie = %q, want %q", got, want)
	}
}

// A fake switch: the watch answers its echo request, and reports again
// after the switch drops the connection and takes a new one.
func TestWatchFlowLossAgainstFakeSwitch(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "br.mgmt")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := &OpenFlow{bridge: "br-fake", target: "unix:" + sock}
	lost := o.WatchFlowLoss(ctx)

	serve := func() {
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if typ, _, _, err := readOFMessage(conn); err != nil || typ != ofptHello {
			t.Fatalf("first message: type %d, %v", typ, err)
		}
		conn.Write([]byte{0x05, ofptHello, 0, 8, 0, 0, 0, 1})
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatal("no report after connecting")
		}
		conn.Write([]byte{0x05, ofptEchoRequest, 0, 12, 0, 0, 0, 42, 'p', 'i', 'n', 'g'})
		typ, _, msg, err := readOFMessage(conn)
		if err != nil || typ != ofptEchoReply || string(msg[4:]) != string([]byte{0, 0, 0, 42, 'p', 'i', 'n', 'g'}) {
			t.Fatalf("echo reply: type %d %x, %v", typ, msg, err)
		}
	}
	serve()
	serve() // the watch reconnects after the drop and reports again
	cancel()
	for range lost {
	}
}
