package broker_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// A client that publishes QoS 1 without ever reading its PUBACKs must not
// make the broker queue acknowledgements without end. Once the client's
// socket is full and a bounded number of acks wait, the broker stops
// reading that client, so TCP pushes back on it; other clients are served
// meanwhile; and once the client reads again it gets exactly one PUBACK per
// message it managed to send, in order.
//
// Not parallel: a million messages keep both cores busy for seconds (more
// under -race), which would slow the timing-sensitive tests beside it.
func TestClientThatDoesNotReadItsAcksIsPushedBack(t *testing.T) {
	b := startBroker(t)

	// A tiny receive window, so that the broker's PUBACKs back up quickly.
	d := net.Dialer{Timeout: rawWait, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	nc, err := d.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	flooder := &rawClient{t: t, nc: nc, v: packet.V311}
	if ack := flooder.connect(&packet.Connect{Version: packet.V311, ClientID: uniqueID("flooder"), CleanStart: true}); ack.ReasonCode != packet.Success {
		t.Fatalf("CONNECT refused: %v", ack.ReasonCode)
	}

	// Batches of QoS 1 PUBLISHes with ids 1, 2, ...; every packet has the
	// same length, so the bytes written say how many whole packets went.
	const batch = 512
	pub := packet.Publish{Topic: []byte("flood/x"), QoS: 1, PacketID: 1, Payload: []byte("p")}
	one, err := pub.Encode(nil, packet.V311)
	if err != nil {
		t.Fatal(err)
	}
	size := len(one)
	buf := make([]byte, 0, batch*size)
	var pending []byte // the unwritten rest of the current batch
	var written int64
	received := &b.Stats().MessagesReceived[1]
	// settled waits until the broker has handled nothing new for a second
	// and returns how many of the flooder's messages it handled.
	settled := func() int64 {
		handled := received.Load()
		for stable := 0; stable < 4; {
			time.Sleep(250 * time.Millisecond)
			if now := received.Load(); now == handled {
				stable++
			} else {
				handled, stable = now, 0
			}
		}
		return handled
	}
	const maxMessages = 4_000_000 // far more than socket buffers and the ack bound hold
	var messages int
	var handled int64
	for sent := 0; ; {
		if len(pending) == 0 {
			if sent >= maxMessages {
				t.Fatalf("the broker read %d QoS 1 messages from a client that reads none of its PUBACKs and never pushed back", sent)
			}
			buf = buf[:0]
			for i := range batch {
				pub.PacketID = uint16((sent+i)%65535 + 1)
				buf, _ = pub.Encode(buf, packet.V311)
			}
			pending, sent = buf, sent+batch
		}
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := nc.Write(pending)
		written += int64(n)
		pending = pending[n:]
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write after %d messages: %v", written/int64(size), err)
		}
		if err == nil {
			continue
		}
		// A write that blocked may only mean a busy broker (a loaded
		// machine, the race detector). Held back, the broker handles no
		// more of this client's messages although many wait in its socket;
		// a broker that merely fell behind catches up with all of them.
		messages = int(written / int64(size))
		if handled = settled(); handled < int64(messages) {
			break
		}
		t.Logf("a write blocked after %d messages, but the broker then handled them all: it was busy; flooding on", messages)
	}
	t.Logf("sent %d messages (%d bytes) before the client's writes blocked; the broker stopped at %d", messages, written, handled)

	// Everybody else is served while the flooder is held back.
	sub, _ := connectRaw(t, b.Addr, &packet.Connect{ClientID: uniqueID("bystander-sub"), CleanStart: true})
	sub.subscribe(1, 0, rawSub("other/#", 1))
	pubc, _ := connectRaw(t, b.Addr, &packet.Connect{ClientID: uniqueID("bystander-pub"), CleanStart: true})
	if rc := pubc.publish("other/x", 1, 7, "still served"); rc != packet.Success {
		t.Fatalf("bystander PUBACK %v", rc)
	}
	if p := sub.expectPublish(); string(p.Payload) != "still served" {
		t.Fatalf("bystander got %q", p.Payload)
	}

	// The flooder reads again: one PUBACK per whole message, in order.
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReaderSize(nc, 64<<10)
	ack := make([]byte, 4)
	for i := range messages {
		if _, err := io.ReadFull(r, ack); err != nil {
			t.Fatalf("PUBACK %d of %d: %v", i+1, messages, err)
		}
		want := uint16(i%65535 + 1)
		if ack[0] != 0x40 || ack[1] != 2 || uint16(ack[2])<<8|uint16(ack[3]) != want {
			t.Fatalf("packet %d after the pushback is % x; want PUBACK for id %d", i+1, ack, want)
		}
	}
	if got := received.Load() - 1; got != int64(messages) { // - 1: the bystander's
		t.Fatalf("the broker handled %d of the client's messages; it sent %d", got, messages)
	}
}
