package broker_test

import (
	"bytes"
	"fmt"
	"io"
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

// A client taken over while the broker is part-way through sending it a
// large message reads whole packets and then, if it keeps reading, the
// DISCONNECT 0x8E: never a DISCONNECT inside the message, never bytes of
// one message inside another. A client too slow to take the rest within the
// broker's last-write timeout is closed after a prefix of the message.
func TestTakeoverDuringALargeWriteKeepsPacketsWhole(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	id := uniqueID("farewell")
	victim := dialRaw(t, b.Addr, packet.V5)
	if err := victim.nc.(*net.TCPConn).SetReadBuffer(32 << 10); err != nil {
		t.Fatalf("set read buffer: %v", err)
	}
	victim.connect(&packet.Connect{Version: packet.V5, ClientID: id, CleanStart: true, KeepAlive: 30})
	victim.subscribe(1, 0, rawSub("farewell/t", 0))

	// More than the kernel buffers of one loopback socket (4 MiB at
	// most), so the broker is mid-way through writing when the takeover
	// comes. Each message is one repeated letter: a stray byte shows.
	const messages, size = 6, 900 << 10
	pub := connectV5(t, b.Addr, uniqueID("farewell-pub"))
	for i := range messages {
		pub.publish(&paho.Publish{Topic: "farewell/t", QoS: 1, Payload: bytes.Repeat([]byte{byte('a' + i)}, size)})
	}
	connectRaw(t, b.Addr, &packet.Connect{Version: packet.V5, ClientID: id, CleanStart: true, KeepAlive: 30})

	whole := 0
	for {
		p, err := victim.read(rawWait)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d whole messages: %v", whole, err)
		}
		switch p := p.(type) {
		case *packet.Publish:
			want := bytes.Repeat([]byte{byte('a' + whole)}, size)
			if !bytes.Equal(p.Payload, want) {
				t.Fatalf("message %d arrived with %d bytes, not %d bytes of %q: something was written inside it", whole, len(p.Payload), size, rune('a'+whole))
			}
			whole++
		case *packet.Disconnect:
			if p.ReasonCode != packet.SessionTakenOver {
				t.Fatalf("DISCONNECT reason %v, want %v", p.ReasonCode, packet.SessionTakenOver)
			}
			if rest, err := victim.read(rawWait); err != io.EOF {
				t.Fatalf("after the DISCONNECT: %v, %v; want the connection closed", rest, err)
			}
			t.Logf("%d whole messages, then DISCONNECT 0x8E", whole)
			return
		default:
			t.Fatalf("after %d whole messages: unexpected %s", whole, p.PacketType())
		}
	}
	// Closed without a DISCONNECT: what is left must be the start of the
	// next message, nothing else.
	t.Logf("%d whole messages, then closed after %d bytes of the next", whole, len(victim.buf))
	if len(victim.buf) > 0 {
		if victim.buf[0]>>4 != byte(packet.PUBLISH) {
			t.Fatalf("the connection ended inside a packet of type %#x, not a PUBLISH", victim.buf[0]>>4)
		}
		// Past its header, the message is nothing but its letter.
		letter := byte('a' + whole)
		if len(victim.buf) > 64 {
			if tail := victim.buf[len(victim.buf)-64:]; !bytes.Equal(tail, bytes.Repeat([]byte{letter}, 64)) {
				t.Fatalf("the truncated message ends in %x, not in %q", tail, letter)
			}
		}
	}
}
