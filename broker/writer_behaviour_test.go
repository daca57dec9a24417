package broker_test

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// The tests below cover the two ways a connection's output is written (see
// broker/writer.go): by the reader that routed a message, without
// blocking, and by a writer goroutine when the socket is full, the fan-out
// is wide, or output keeps coming.

// A fan-out wider than one reader writes itself reaches every subscriber,
// every message, in order, at QoS 0 and 1 alike.
func TestWideFanOutReachesEverySubscriber(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	const perQoS, messages = 24, 40
	var subs []*v5Client
	for qos := range byte(2) {
		for range perQoS {
			s := connectV5(t, b.Addr, uniqueID(fmt.Sprintf("wide-q%d", qos)))
			s.sub(qos, "wide/t")
			subs = append(subs, s)
		}
	}
	pub := connectV5(t, b.Addr, uniqueID("wide-pub"))
	for i := range messages {
		pub.publish(&paho.Publish{Topic: "wide/t", QoS: byte(i % 2), Payload: fmt.Appendf(nil, "m%03d", i)})
	}
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(func() {
			for i := range messages {
				s.expectNext("wide/t", fmt.Sprintf("m%03d", i))
			}
		})
	}
	wg.Wait()
}

// Messages larger than the subscriber's socket takes at once leave in
// pieces: what the routing reader could not write goes to a writer
// goroutine, the bytes arrive intact, and the messages routed meanwhile
// follow in order.
func TestLargeMessagesToSlowSocketArriveWholeAndInOrder(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	sub := dialRaw(t, b.Addr, packet.V311)
	// A small receive buffer keeps the broker's side from taking it all
	// at once (smaller still would make TCP crawl).
	if err := sub.nc.(*net.TCPConn).SetReadBuffer(32 << 10); err != nil {
		t.Fatalf("set read buffer: %v", err)
	}
	sub.connect(rawConnect(packet.V311, "big-sub"))
	sub.subscribe(1, 0, rawSub("big/t", 1))

	// Six of 900 KiB are more than the kernel buffers for one loopback
	// socket (4 MiB at most), so some writes must end short.
	pub := connectV5(t, b.Addr, uniqueID("big-pub"))
	const large, small = 6, 20
	payloads := make([][]byte, 0, large+small)
	for i := range large {
		p := make([]byte, 900<<10)
		for j := range p {
			p[j] = byte(i + j*7 + j/251)
		}
		payloads = append(payloads, p)
	}
	for i := range small {
		payloads = append(payloads, fmt.Appendf(nil, "small-%02d", i))
	}
	for i, p := range payloads {
		pub.publish(&paho.Publish{Topic: "big/t", QoS: byte(i % 2), Payload: p})
	}

	for i, want := range payloads {
		p := sub.expectPublish()
		if !bytes.Equal(p.Payload, want) {
			t.Fatalf("message %d arrived with %d bytes, not the %d published (or with other content)", i, len(p.Payload), len(want))
		}
		if p.QoS == 1 {
			sub.ack(packet.PUBACK, p.PacketID)
		}
	}
}
