package broker

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetmq/fleetmq/broker/packet"
	"github.com/fleetmq/fleetmq/broker/topic"
)

// subscriber is what the subscription trie points at: something a routed
// message can be handed to. Today that is a local session; the fleet will add
// peer links, whose interest enters the same trie.
type subscriber interface {
	// deliver hands one delivery over without blocking. It reports false
	// when the subscriber could not take it (gone, queue full, not allowed).
	// pw, if not nil, lets the calling reader do the write itself.
	deliver(d delivery, pw *pendingWrites) bool
	// online reports whether the subscriber can send right now; shared
	// subscription groups prefer online members.
	online() bool
}

// Inflight states of an outbound QoS 1/2 message.
const (
	awaitPuback  = iota // QoS 1 PUBLISH sent, waiting for PUBACK
	awaitPubrec         // QoS 2 PUBLISH sent, waiting for PUBREC
	awaitPubcomp        // PUBREL sent, waiting for PUBCOMP
)

type inflightMsg struct {
	d     delivery
	state uint8
	seq   uint64 // send order, so a resumed session resends in order [MQTT-4.6.0-1]
	// unsent marks a PUBLISH held back on resume because the client's
	// Receive Maximum had no room for it yet; popSendable resends it first.
	unsent bool
}

// subscriptionRecord is a session's own view of one subscription; the trie
// holds the routing copy.
type subscriptionRecord struct {
	opts topic.Options
}

// session is the MQTT session state of one client identifier: it outlives
// network connections for as long as its expiry interval allows.
//
// Everything below mu is guarded by it, including the write-side state of
// the attached conn (ctrl queue and writer flag): deliveries from any
// publisher's goroutine and the conn's writer meet here.
type session struct {
	srv      *Server
	clientID string

	isOnline atomic.Bool // mirrors conn != nil for lock-free reads by routing

	mu       sync.Mutex
	conn     *conn // nil while offline
	username string
	ended    bool // removed from the server; drop anything that still arrives

	subs map[string]subscriptionRecord // by full filter, $share prefix included

	queue       deliveryQueue // waiting for a send slot (or for the client to come back)
	queuedBytes int64

	inflight    map[uint16]*inflightMsg // outbound QoS 1/2 by packet id
	unsent      int                     // inflight entries marked unsent
	nextID      uint16
	sendSeq     uint64
	inboundQoS2 map[uint16]struct{} // inbound QoS 2 ids answered with PUBREC, awaiting PUBREL

	expiry      uint32      // Session Expiry Interval in seconds in force now
	expiryTimer *time.Timer // runs while offline with expiry > 0

	will      *Message // will of the last connection, while its delay runs
	willTimer *time.Timer
}

func newSession(srv *Server, clientID string) *session {
	return &session{srv: srv, clientID: clientID}
}

// online implements subscriber.
func (s *session) online() bool { return s.isOnline.Load() }

// deliver implements subscriber: it queues d and wakes the connection's
// writer. It never blocks on the network, so a slow subscriber cannot hold
// up the publisher or anybody else.
func (s *session) deliver(d delivery, pw *pendingWrites) bool {
	srv := s.srv
	lim := srv.limits()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Read under mu: an ACL reload swaps the authorizer and then filters
	// each session's queue under mu, so nothing checked against the old
	// ACL can be queued after that filter ran.
	acl := srv.authorizer()
	if s.ended {
		return false
	}
	if s.conn == nil && d.qos == 0 {
		// Offline sessions keep QoS 1 and 2 only, as Mosquitto does by
		// default; QoS 0 is "at most once" and may be dropped [MQTT-4.3.1].
		return false
	}
	// Every delivery is authorized, so a broad subscription only receives
	// what the ACL lets this client read.
	if acl != nil && !acl.CanRead(ClientInfo{ClientID: s.clientID, Username: s.username}, d.msg.Topic) {
		return false
	}
	size := d.msg.size()
	if s.queue.len() >= lim.MaxQueuedMessages || s.queuedBytes+size > lim.MaxQueuedBytes {
		srv.stats.DroppedQueueFull.Add(1)
		return false
	}
	s.queue.push(d)
	s.queuedBytes += size
	if s.conn != nil {
		s.conn.wakeWriterLocked(pw)
	}
	return true
}

// allocID returns a free outbound packet id. Callers hold mu and have checked
// that the inflight window has room, so a free id exists.
func (s *session) allocID() uint16 {
	for {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if _, used := s.inflight[s.nextID]; !used {
			return s.nextID
		}
	}
}

// popSendable moves messages that may be sent now from the queue to out,
// assigning packet ids to QoS 1/2 deliveries while the client's receive
// window allows [MQTT-4.9.0-2]. Callers hold mu.
func (s *session) popSendable(out []outbound, window int) []outbound {
	if s.unsent > 0 {
		out = s.popUnsent(out, window)
	}
	for s.queue.len() > 0 {
		d := *s.queue.peek()
		var id uint16
		if d.qos > 0 {
			if len(s.inflight) >= window {
				break
			}
			if s.inflight == nil {
				s.inflight = make(map[uint16]*inflightMsg)
			}
			id = s.allocID()
			state := uint8(awaitPuback)
			if d.qos == 2 {
				state = awaitPubrec
			}
			s.sendSeq++
			s.inflight[id] = &inflightMsg{d: d, state: state, seq: s.sendSeq}
		}
		s.queue.pop()
		s.queuedBytes -= d.msg.size()
		out = append(out, outbound{kind: outPublish, d: d, id: id})
	}
	return out
}

// resendInflight queues every unacknowledged outbound message for a resumed
// connection, in the order they were first sent: PUBLISH with DUP set, or
// PUBREL for QoS 2 messages already acknowledged with PUBREC [MQTT-4.4.0-1].
// PUBLISH beyond the new connection's window (the client may have lowered
// its Receive Maximum) is held back as unsent until acks make room
// [MQTT-3.3.4-9]. Callers hold mu.
func (s *session) resendInflight(c *conn) {
	s.unsent = 0
	if len(s.inflight) == 0 {
		return
	}
	ids := s.inflightBySeq(func(*inflightMsg) bool { return true })
	for i, id := range ids {
		m := s.inflight[id]
		m.unsent = false
		if m.state == awaitPubcomp {
			c.ctrl = append(c.ctrl, outbound{kind: outAck, typ: packet.PUBREL, id: id})
			continue
		}
		if i >= c.window {
			m.unsent = true
			s.unsent++
			continue
		}
		c.ctrl = append(c.ctrl, outbound{kind: outPublish, d: m.d, id: id, dup: true})
	}
}

// popUnsent resends, in their original order, the PUBLISH packets that
// resendInflight held back, as far as the window has room. Callers hold mu.
func (s *session) popUnsent(out []outbound, window int) []outbound {
	room := window - (len(s.inflight) - s.unsent)
	if room <= 0 {
		return out
	}
	ids := s.inflightBySeq(func(m *inflightMsg) bool { return m.unsent })
	for _, id := range ids[:min(room, len(ids))] {
		m := s.inflight[id]
		m.unsent = false
		s.unsent--
		out = append(out, outbound{kind: outPublish, d: m.d, id: id, dup: true})
	}
	return out
}

// inflightBySeq returns the ids of the inflight messages that keep selects,
// in the order they were first sent. Callers hold mu.
func (s *session) inflightBySeq(keep func(*inflightMsg) bool) []uint16 {
	ids := make([]uint16, 0, len(s.inflight))
	for id, m := range s.inflight {
		if keep(m) {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b uint16) int {
		return cmp.Compare(s.inflight[a].seq, s.inflight[b].seq)
	})
	return ids
}

// forgetUnsent clears m's unsent mark once the client has acknowledged it
// anyway. Callers hold mu.
func (s *session) forgetUnsent(m *inflightMsg) {
	if m.unsent {
		m.unsent = false
		s.unsent--
	}
}

// ack settles an outbound packet id after PUBACK, PUBREC or PUBCOMP that
// arrived on from. It returns whether the id was known in the state that
// the ack answers.
//
// An ack from a connection the session has moved on from (taken over, its
// reader not yet stopped) is not applied: the new connection was sent the
// message again and counts it against its own Receive Maximum until it
// acknowledges it itself [MQTT-3.3.4-9]. Freeing it early let the broker
// send that connection one message more than it allows.
func (s *session) ack(from *conn, typ packet.Type, id uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != from {
		return false
	}
	m, ok := s.inflight[id]
	if !ok {
		return false
	}
	if typ == packet.PUBACK && m.state == awaitPuback || typ == packet.PUBREC && m.state == awaitPubrec {
		s.forgetUnsent(m)
	}
	switch {
	case typ == packet.PUBACK && m.state == awaitPuback,
		typ == packet.PUBCOMP && m.state == awaitPubcomp:
		delete(s.inflight, id)
		if s.conn != nil && (s.queue.len() > 0 || s.unsent > 0) {
			s.conn.kickLocked()
		}
		return true
	case typ == packet.PUBREC && m.state == awaitPubrec:
		m.state = awaitPubcomp
		m.d = delivery{} // the message is no longer needed once PUBREC arrived
		return true
	}
	return false
}

// dropInflight forgets a QoS 2 message whose PUBREC carried an error code:
// the exchange ends there [MQTT-4.3.3-?: a PUBREC >= 0x80 ends the flow].
func (s *session) dropInflight(from *conn, id uint16) {
	s.mu.Lock()
	if m, ok := s.inflight[id]; ok && s.conn == from { // see ack
		s.forgetUnsent(m)
		delete(s.inflight, id)
	}
	if s.conn != nil && (s.queue.len() > 0 || s.unsent > 0) {
		s.conn.kickLocked()
	}
	s.mu.Unlock()
}

// deliveryQueue is a FIFO ring of deliveries. It shrinks back when drained
// so that an idle session costs almost nothing.
type deliveryQueue struct {
	buf        []delivery
	head, size int
}

func (q *deliveryQueue) len() int { return q.size }

func (q *deliveryQueue) push(d delivery) {
	if q.size == len(q.buf) {
		n := max(8, 2*len(q.buf))
		buf := make([]delivery, n)
		for i := range q.size {
			buf[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = d
	q.size++
}

func (q *deliveryQueue) peek() *delivery { return &q.buf[q.head] }

func (q *deliveryQueue) pop() {
	q.buf[q.head] = delivery{}
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	if q.size == 0 {
		q.head = 0
		if len(q.buf) > 64 {
			q.buf = nil // let a burst's backing array go
		}
	}
}

// drain empties the queue, calling fn for each delivery in order.
func (q *deliveryQueue) drain(fn func(d delivery)) {
	for q.size > 0 {
		fn(*q.peek())
		q.pop()
	}
}
