package bench

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
)

// startFleetMQ runs FleetMQ's broker inside the test process on a free
// loopback port, with the defaults fleetmq-broker uses, until the test ends.
// In-process keeps the smoke test cheap enough for every CI run: no build,
// no child process.
func startFleetMQ(tb testing.TB) (*broker.Server, string) {
	tb.Helper()
	cfg := config.Default()
	cfg.Listeners = nil
	srv, err := broker.New(cfg, broker.Options{})
	if err != nil {
		tb.Fatalf("creating the broker: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listening on 127.0.0.1: %v", err)
	}
	srv.Serve("bench", ln)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("shutting the broker down: %v", err)
		}
	})
	return srv, ln.Addr().String()
}

// TestWorkloadsAgainstFleetMQ is the CI smoke test of the load tool against
// our own broker: every workload at every QoS, a few hundred messages each,
// delivered and accounted for. It checks the tool's counts against the
// broker's own counters, so that a tool that miscounted (or a broker that
// stopped routing) fails here rather than in a benchmark table. It asserts
// no timing.
func TestWorkloadsAgainstFleetMQ(t *testing.T) {
	srv, addr := startFleetMQ(t)
	const messages, clients = 300, 3
	for _, wl := range Workloads {
		for _, qos := range []byte{0, 1, 2} {
			t.Run(fmt.Sprintf("%s/qos%d", wl, qos), func(t *testing.T) {
				st := srv.Stats()
				receivedBefore := st.MessagesReceived[qos].Load()
				sentBefore := st.MessagesSent[qos].Load()
				res, err := Run(context.Background(), Config{
					Addr:             addr,
					Workload:         wl,
					QoS:              qos,
					Clients:          clients,
					SharedPublishers: 2,
					Messages:         messages,
					Duration:         time.Minute, // the count ends the run
				})
				checkDelivery(t, res, err, messages)
				wantExpected := map[Workload]uint64{FanIn: messages, FanOut: clients * messages, Pairs: messages, Shared: messages}[wl]
				if res.Expected != wantExpected {
					t.Errorf("expected deliveries %d, want %d", res.Expected, wantExpected)
				}
				if got := uint64(st.MessagesReceived[qos].Load() - receivedBefore); got != res.Published {
					t.Errorf("broker received %d QoS %d messages, the tool published %d", got, qos, res.Published)
				}
				// The broker counts every PUBLISH it wrote; the tool counts
				// distinct ones, so redeliveries would make the broker's
				// count higher, never lower.
				if got := uint64(st.MessagesSent[qos].Load() - sentBefore); got < res.Delivered {
					t.Errorf("broker sent %d QoS %d messages, the tool counted %d distinct deliveries", got, qos, res.Delivered)
				}
			})
		}
	}
}

// TestFixedRateAgainstFleetMQ runs the fixed-rate mode, the one behind the
// latency figures, against our broker: every message arrives and a latency
// distribution is recorded.
func TestFixedRateAgainstFleetMQ(t *testing.T) {
	_, addr := startFleetMQ(t)
	const messages = 200
	res, err := Run(context.Background(), Config{
		Addr: addr, Workload: FanOut, QoS: 1, Clients: 2,
		Messages: messages, Duration: time.Minute, Rate: 1000,
	})
	checkDelivery(t, res, err, messages)
	if res.Delivered != 2*messages {
		t.Errorf("delivered %d, want %d (each message to both subscribers)", res.Delivered, 2*messages)
	}
}

// TestProxyProtocolAgainstFleetMQ runs the tool with -proxy-protocol
// against a broker listener that expects the header, as behind a load
// balancer: every connection is accepted and every message delivered.
// Without the header the broker would close each connection unserved.
func TestProxyProtocolAgainstFleetMQ(t *testing.T) {
	srv, _ := startFleetMQ(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening on 127.0.0.1: %v", err)
	}
	if err := srv.ServeListener(config.Listener{Name: "lb", ProxyProtocol: true}, ln); err != nil {
		_ = ln.Close()
		t.Fatalf("serving a proxyProtocol listener: %v", err)
	}
	const messages = 2000
	res, err := Run(context.Background(), Config{
		Addr: ln.Addr().String(), Workload: Pairs, QoS: 1, Clients: 4,
		Messages: messages, Duration: time.Minute, ProxyProtocol: true,
	})
	checkDelivery(t, res, err, messages)
}

// BenchmarkFleetMQ measures delivered messages/s of each workload at QoS 1
// against an in-process broker, as a quick local check between full `make
// bench` runs. The broker, the tool and the benchmark share one process,
// so the figure is only comparable with itself.
func BenchmarkFleetMQ(b *testing.B) {
	_, addr := startFleetMQ(b)
	for _, wl := range Workloads {
		b.Run(string(wl), func(b *testing.B) {
			res, err := Run(context.Background(), Config{
				Addr: addr, Workload: wl, QoS: 1,
				Messages: uint64(max(b.N, 100)), Duration: 30 * time.Second,
			})
			if err != nil {
				b.Fatalf("run failed: %v", err)
			}
			if res.Lost != 0 {
				b.Fatalf("%d of %d QoS 1 deliveries lost", res.Lost, res.Expected)
			}
			b.ReportMetric(res.MessagesPerSec, "delivered/s")
			b.ReportMetric(res.P99Micros, "p99-µs")
		})
	}
}
