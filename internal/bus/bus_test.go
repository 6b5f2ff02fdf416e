package bus

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

type echoReq struct{ N int }
type echoRes struct{ Double int }

func TestRPCQueueGroupAndNotifications(t *testing.T) {
	e, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	if e.ClientURL == "" {
		t.Fatal("no client URL")
	}
	// Two "servers": each request must be answered exactly once.
	var served atomic.Int32
	for i := 0; i < 2; i++ {
		srv, err := ConnectEmbedded(e, "server", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		if _, err := srv.Handle("echo", func(_ context.Context, raw json.RawMessage) (any, error) {
			served.Add(1)
			req, err := Decode[echoReq](raw)
			if err != nil {
				return nil, err
			}
			if req.N < 0 {
				return nil, errors.New("negative")
			}
			return echoRes{Double: 2 * req.N}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := srv.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	agent, err := Connect(e.ClientURL, "agent", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	ctx := context.Background()
	for i := 1; i <= 10; i++ {
		var res echoRes
		if err := agent.Call(ctx, "echo", echoReq{N: i}, &res); err != nil || res.Double != 2*i {
			t.Fatalf("call %d: %v %v", i, res, err)
		}
	}
	if served.Load() != 10 {
		t.Fatalf("10 calls served %d times", served.Load())
	}
	var re *RemoteError
	if err := agent.Call(ctx, "echo", echoReq{N: -1}, nil); !errors.As(err, &re) {
		t.Fatalf("remote error not reported: %v", err)
	}
	got := make(chan string, 1)
	unsub, err := agent.Subscribe("neutrino.notify.host.h1", func(_ string, data []byte) { got <- string(data) })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	if err := agent.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	pub, _ := ConnectEmbedded(e, "pub", nil)
	defer pub.Close()
	if err := pub.Publish("neutrino.notify.host.h1", map[string]int{"rev": 3}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != `{"rev":3}` {
			t.Fatalf("notification %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("notification not delivered")
	}
}

func TestEmbeddedOnATakenPortFailsAtOnce(t *testing.T) {
	e, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	addr := e.ClientURL[len("nats://"):]
	start := time.Now()
	if _, err := StartEmbedded(EmbeddedOptions{Listen: addr}); err == nil {
		t.Fatal("a second embedded NATS on the same address started")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("failing took %v", d)
	}
}
