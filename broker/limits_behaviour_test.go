package broker_test

// Behaviour tests of the per-session limits and of isolation between
// clients: queues are bounded, drops are counted, and one stuck reader
// holds up nobody else.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
)

// offlineSubscriber makes a persistent v5 session subscribed to filter at
// QoS 1 and disconnects it; it returns the client id to resume with.
func offlineSubscriber(t *testing.T, b *testBroker, filter string) string {
	t.Helper()
	id := uniqueID("offline")
	c := connectV5(t, b.Addr, id, sessionExpiry(60))
	c.sub(1, filter)
	_ = c.Disconnect(&paho.Disconnect{})
	eventually(t, "the broker to see the subscriber go", func() bool { return b.Stats().ClientsConnected.Load() == 0 })
	return id
}

func TestMaxQueuedMessagesDropsAndCounts(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(c *config.Config, _ *broker.Options) { c.Limits.MaxQueuedMessages = 5 })
	id := offlineSubscriber(t, b, "queue/t")
	pub := connectV5(t, b.Addr, uniqueID("queue-pub"))
	for i := range 8 {
		pub.pub("queue/t", 1, false, fmt.Sprint(i))
	}
	if n := b.Stats().DroppedQueueFull.Load(); n != 3 {
		t.Fatalf("DroppedQueueFull = %d, want 3", n)
	}
	// The oldest five were kept, in order; the newest were dropped.
	sub := connectV5(t, b.Addr, id, resume, sessionExpiry(60))
	for i := range 5 {
		sub.expectNext("queue/t", fmt.Sprint(i))
	}
	fence(t, pub, sub, "queue/t")
}

func TestMaxQueuedBytesDropsAndCounts(t *testing.T) {
	t.Parallel()
	// Each message counts its topic and payload: 4 + 20 bytes.
	b := startBroker(t, func(c *config.Config, _ *broker.Options) { c.Limits.MaxQueuedBytes = 100 })
	id := offlineSubscriber(t, b, "qb/t")
	pub := connectV5(t, b.Addr, uniqueID("qb-pub"))
	for i := range 6 {
		pub.pub("qb/t", 1, false, fmt.Sprintf("%020d", i))
	}
	if n := b.Stats().DroppedQueueFull.Load(); n != 2 {
		t.Fatalf("DroppedQueueFull = %d, want 2", n)
	}
	sub := connectV5(t, b.Addr, id, resume, sessionExpiry(60))
	for i := range 4 {
		sub.expectNext("qb/t", fmt.Sprintf("%020d", i))
	}
	fence(t, pub, sub, "qb/t")
}

func TestSlowSubscriberDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(c *config.Config, _ *broker.Options) { c.Limits.MaxQueuedMessages = 100 })

	// The slow subscriber never reads: with a tiny receive buffer its
	// socket fills after a few packets and the broker's writes to it stall.
	slow := dialRaw(t, b.Addr, packet.V311)
	if err := slow.nc.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatalf("set read buffer: %v", err)
	}
	slow.connect(rawConnect(packet.V311, "slow"))
	slow.subscribe(1, 0, rawSub("flood/t", 0))

	fast := connectV5(t, b.Addr, uniqueID("fast"))
	fast.sub(0, "flood/t")
	pub := connectV5(t, b.Addr, uniqueID("flood-pub"))

	// 12 MB, well beyond what the kernel buffers for the slow socket plus
	// its queue limit. The fast subscriber is waited for every 50
	// messages so that only the slow one can fall behind.
	const total, window = 1500, 50
	payload := bytes.Repeat([]byte("x"), 8<<10)
	for i := 0; i < total; i += window {
		for j := i; j < i+window; j++ {
			copy(payload, fmt.Sprintf("%08d", j))
			// QoS 1: each publish waits for its PUBACK, so a publisher
			// held up by the slow subscriber would stop here.
			pub.publish(&paho.Publish{Topic: "flood/t", QoS: 1, Payload: payload})
		}
		for j := i; j < i+window; j++ {
			if p := fast.recv(); string(p.Payload[:8]) != fmt.Sprintf("%08d", j) {
				t.Fatalf("fast subscriber got message %s, want %08d", p.Payload[:8], j)
			}
		}
	}
	// The slow subscriber's queue filled up while the others went on.
	if n := b.Stats().DroppedQueueFull.Load(); n == 0 {
		t.Fatal("DroppedQueueFull = 0: the slow subscriber was never behind")
	}
	// It is still connected and gets its messages, oldest first, once it reads.
	if p := slow.expectPublish(); string(p.Payload[:8]) != "00000000" {
		t.Fatalf("slow subscriber's first message is %s, want 00000000", p.Payload[:8])
	}
}

// A client that publishes QoS 1 without ever reading its PUBACKs is pushed
// back by TCP once a bounded number of acknowledgements waits for it: the
// broker stops reading it instead of queueing without end. Others are
// served meanwhile, and once the client reads, every acknowledgement
// arrives, in order.
func TestUnreadAcknowledgementsPushBackOnThePublisher(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	flooder := dialRaw(t, b.Addr, packet.V311)
	tc := flooder.nc.(*net.TCPConn)
	// Small socket buffers on the client's side, so that the kernel holds
	// few of the acknowledgements and few of the unread publishes.
	if err := tc.SetReadBuffer(4096); err != nil {
		t.Fatalf("set read buffer: %v", err)
	}
	if err := tc.SetWriteBuffer(16 << 10); err != nil {
		t.Fatalf("set write buffer: %v", err)
	}
	flooder.connect(rawConnect(packet.V311, "ack-flood"))

	// Publishes of one size with packet ids 1..65535 over and over, so that
	// acknowledgements can be counted and checked by position.
	const chunk = 1024
	const maxMessages = 3_000_000 // acknowledgements the broker may queue plus every socket buffer (up to 4 MiB each) are far fewer
	pkt := func(i int) []byte {
		p := &packet.Publish{Topic: []byte("ackflood/t"), QoS: 1, PacketID: uint16(i%65535 + 1), Payload: []byte("0123456789abcdef")}
		out, err := p.Encode(nil, packet.V311)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		return out
	}
	size := len(pkt(0))
	written := 0 // bytes the broker's socket took
	var blocked bool
	for written/size < maxMessages && !blocked {
		first := written / size
		buf := make([]byte, 0, chunk*size)
		for i := range chunk {
			buf = append(buf, pkt(first+i)...)
		}
		_ = tc.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := tc.Write(buf)
		written += n
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("write: %v", err)
			}
			blocked = true
		}
	}
	if !blocked {
		t.Fatalf("the broker read %d publishes from a client that reads none of its acknowledgements and never pushed back", written/size)
	}
	t.Logf("pushed back after %d publishes (%d bytes, %d-byte packets)", written/size, written, size)

	// Everyone else is served while the flooder is held.
	pub := connectV5(t, b.Addr, uniqueID("ackflood-other-pub"))
	sub := connectV5(t, b.Addr, uniqueID("ackflood-other-sub"))
	sub.sub(1, "other/t")
	pub.pub("other/t", 1, false, "served")
	sub.expectNext("other/t", "served")

	// The flooder reads now, with a receive buffer that lets TCP move the
	// backlog quickly: it finishes the publish it was cut off in and gets
	// an acknowledgement for every publish, in order.
	if err := tc.SetReadBuffer(4 << 20); err != nil {
		t.Fatalf("set read buffer: %v", err)
	}
	want := written / size
	if rest := written % size; rest != 0 {
		_ = tc.SetWriteDeadline(time.Time{})
		tail := pkt(want)[rest:]
		go func() { _, _ = tc.Write(tail) }()
		want++
	}
	_ = tc.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReaderSize(tc, 64<<10)
	var ack [4]byte
	for i := range want {
		if _, err := io.ReadFull(r, ack[:]); err != nil {
			t.Fatalf("acknowledgement %d of %d: %v", i+1, want, err)
		}
		if id := uint16(i%65535 + 1); ack != [4]byte{byte(packet.PUBACK) << 4, 2, byte(id >> 8), byte(id)} {
			t.Fatalf("acknowledgement %d is % x, want PUBACK for packet id %d", i+1, ack, id)
		}
	}
}
