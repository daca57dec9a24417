package broker

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
)

// connectedPipe returns a broker and an MQTT 5 connection of it, past
// CONNECT with a session of client id, whose client end is clientSide.
func connectedPipe(t *testing.T, id string) (srv *Server, c *conn, clientSide net.Conn) {
	t.Helper()
	cfg := config.Default()
	cfg.Listeners = nil
	cfg.ApplyDefaults()
	srv, err := New(cfg, Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	brokerSide, clientSide := net.Pipe()
	t.Cleanup(func() { _ = clientSide.Close(); _ = brokerSide.Close() })
	c = newConn(srv, brokerSide, "test")
	c.version = packet.V5
	c.sess = newSession(srv, id)
	c.connected.Store(true)
	return srv, c, clientSide
}

// closeWith must not write a DISCONNECT while another goroutine holds the
// connection's writer role: that writer may be part-way through a packet,
// and bytes written in between would land inside it. The DISCONNECT is left
// to the writer, which sends it once its own write is whole.
func TestCloseWithLeavesTheDisconnectToTheWriter(t *testing.T) {
	_, c, clientSide := connectedPipe(t, "farewell")

	// A writer holds the role (as writeLoop does between its writes), and
	// the reader has queued an ack it has yet to send.
	c.sess.mu.Lock()
	c.writing = true
	c.ctrl = append(c.ctrl, outbound{kind: outAck, typ: packet.PUBACK, id: 7})
	c.sess.mu.Unlock()

	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(clientSide)
		got <- b
	}()
	closed := make(chan struct{})
	go func() {
		c.closeWith(packet.SessionTakenOver)
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("closeWith blocked while another goroutine held the writer role")
	}
	select {
	case b := <-got:
		t.Fatalf("closeWith wrote %x and closed the socket under the writer", b)
	default:
	}

	// The writer comes back for more and is told to say goodbye instead,
	// after the ack the client is owed.
	c.sess.mu.Lock()
	owed, next := c.takeLocked(nil)
	rc := c.farewell
	c.sess.mu.Unlock()
	if next != writeFarewell || rc != packet.SessionTakenOver || len(owed) != 1 {
		t.Fatalf("takeLocked after closeWith: next %d, reason %v, %d packets owed; want the DISCONNECT (%d) with %v after 1", next, rc, len(owed), writeFarewell, packet.SessionTakenOver)
	}
	c.sayFarewell(rc, owed)

	want, _ := (&packet.Ack{Type: packet.PUBACK, PacketID: 7}).Encode(nil, packet.V5)
	want, _ = (&packet.Disconnect{ReasonCode: packet.SessionTakenOver}).Encode(want, packet.V5)
	select {
	case b := <-got:
		if string(b) != string(want) {
			t.Fatalf("the client read %x, want exactly the PUBACK and the DISCONNECT %x", b, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the writer's DISCONNECT did not arrive, or the socket stayed open")
	}

	// The role stays taken for good: nothing else is written after it.
	c.sess.mu.Lock()
	defer c.sess.mu.Unlock()
	if !c.writing || !c.closing {
		t.Fatalf("after the DISCONNECT: writing %v, closing %v; want both true", c.writing, c.closing)
	}
}

// A takeover's closeWith marks the connection closed before it takes the
// session lock, and the reader, seeing its connection closed, may end
// (connEnded) in between. What the client is owed, its CONNACK above all,
// must still go out before the DISCONNECT: the concurrent script test saw
// a DISCONNECT 0x8E arrive with no CONNACK before it when connEnded
// dropped the queue.
func TestTheReaderEndingFirstLeavesTheFarewellItsPackets(t *testing.T) {
	srv, c, _ := connectedPipe(t, "owed")
	c.sess.mu.Lock()
	c.writing = true // the writer started for the CONNACK has not run yet
	c.ctrl = append(c.ctrl, outbound{kind: outPacket, pkt: &packet.Connack{}})
	c.sess.mu.Unlock()

	srv.connWG.Add(1)
	srv.connEnded(c) // the reader ends first
	c.closeWith(packet.SessionTakenOver)

	c.sess.mu.Lock()
	owed, next := c.takeLocked(nil)
	c.sess.mu.Unlock()
	if next != writeFarewell || len(owed) != 1 || owed[0].kind != outPacket {
		t.Fatalf("the writer is told %d with %d packets owed; want the farewell (%d) with the CONNACK", next, len(owed), writeFarewell)
	}
}

// After a takeover the old connection's reader may still handle a packet
// or two before it sees its connection closed. An ack among them must not
// settle the session's message: the new connection was sent it again and
// counts it against its own Receive Maximum until it acknowledges it
// itself. The concurrent script test saw the broker send one message more
// than a resumed client's Receive Maximum when such an ack freed a slot.
func TestAnAckFromATakenOverConnectionSettlesNothing(t *testing.T) {
	_, old, _ := connectedPipe(t, "moved")
	s := old.sess
	fresh := newConn(old.srv, nil, "test")
	s.mu.Lock()
	s.inflight = map[uint16]*inflightMsg{}
	s.inflight[1] = &inflightMsg{state: awaitPuback, seq: 1}
	s.inflight[2] = &inflightMsg{state: awaitPubrec, seq: 2}
	s.conn = fresh // taken over
	s.mu.Unlock()

	if s.ack(old, packet.PUBACK, 1) || s.ack(old, packet.PUBREC, 2) {
		t.Error("an ack from the taken-over connection was applied")
	}
	s.dropInflight(old, 2)
	s.mu.Lock()
	n := len(s.inflight)
	s.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d messages in flight after the old connection's acks; want both still owed to the new one", n)
	}
	if !s.ack(fresh, packet.PUBACK, 1) || !s.ack(fresh, packet.PUBREC, 2) {
		t.Error("the new connection's own acks were not applied")
	}
}
