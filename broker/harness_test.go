package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
)

// testBroker is a broker on a free loopback port, stopped when the test ends.
type testBroker struct {
	*broker.Server
	Addr string // host:port
}

// startBroker runs a broker with the default config (anonymous allowed),
// adjusted by the given options.
func startBroker(t testing.TB, opts ...func(*config.Config, *broker.Options)) *testBroker {
	t.Helper()
	cfg := config.Default()
	cfg.Listeners = nil
	var bo broker.Options
	if os.Getenv("FLEETMQ_TEST_LOG") != "" {
		bo.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for _, o := range opts {
		o(cfg, &bo)
	}
	cfg.ApplyDefaults()
	srv, err := broker.New(cfg, bo)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv.Serve("test", ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &testBroker{Server: srv, Addr: ln.Addr().String()}
}

// URL returns the broker address as an mqtt:// URL.
func (b *testBroker) URL() string { return "tcp://" + b.Addr }

var clientSeq atomic.Int64

// uniqueID returns a client id unique within the test binary.
func uniqueID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, clientSeq.Add(1))
}

// eventually polls cond until it holds or the deadline passes. Tests use it
// for state that settles asynchronously; it bounds waiting, it does not
// measure speed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
