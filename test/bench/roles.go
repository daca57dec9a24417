package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// Every payload starts with a stamp that lets the receiver attribute the
// message and time it; the rest of the payload is padding.
//
//	bytes 0-3    run tag (little endian), to ignore messages of other runs
//	bytes 4-7    publisher index
//	bytes 8-15   sequence number within that publisher, from 0
//	bytes 16-23  send time, monotonic ns since epoch
const stampSize = 24

// MinPayloadSize is the smallest payload the tool can send: the stamp.
const MinPayloadSize = stampSize

// subscriber is the reader side of one subscribing connection.
type subscriber struct {
	c     *conn
	tag   uint32
	group *receiverGroup
	hist  histogram
	pub   packet.Publish

	// Read by the coordinator while the run is going.
	received atomic.Uint64 // every PUBLISH of this run, duplicates included
	lastRecv atomic.Int64  // monotonic time of the latest one

	// Owned by the reader goroutine, read after it has stopped.
	duplicates uint64
	foreign    uint64 // messages not stamped by this run, or out of range
}

func (s *subscriber) handlePacket(fh packet.FixedHeader, body []byte, now int64) error {
	switch fh.Type {
	case packet.PUBLISH:
		if err := s.pub.Decode(fh, body, s.c.version); err != nil {
			return fmt.Errorf("decoding PUBLISH: %w", err)
		}
		s.record(s.pub.Payload, now)
		switch s.pub.QoS {
		case 1:
			return s.c.queueAck(packet.PUBACK, s.pub.PacketID)
		case 2:
			// Method A of the spec's QoS 2 receiver: the message counts as
			// delivered now; a redelivery before PUBREL shows up as a
			// duplicate in the seen set.
			return s.c.queueAck(packet.PUBREC, s.pub.PacketID)
		}
		return nil
	case packet.PUBREL:
		var rel packet.Ack
		if err := rel.Decode(fh, body, s.c.version); err != nil {
			return fmt.Errorf("decoding PUBREL: %w", err)
		}
		return s.c.queueAck(packet.PUBCOMP, rel.PacketID)
	case packet.DISCONNECT:
		return serverDisconnect(fh, body, s.c.version)
	}
	return nil
}

func (s *subscriber) record(payload []byte, now int64) {
	if len(payload) < stampSize || binary.LittleEndian.Uint32(payload) != s.tag {
		s.foreign++
		return
	}
	pub := binary.LittleEndian.Uint32(payload[4:])
	seq := binary.LittleEndian.Uint64(payload[8:])
	sent := int64(binary.LittleEndian.Uint64(payload[16:]))
	if int(pub) >= len(s.group.seen) || s.group.seen[pub] == nil {
		s.foreign++
		return
	}
	dup, ok := s.group.seen[pub].mark(seq)
	if !ok {
		s.foreign++
		return
	}
	if dup {
		s.duplicates++
	}
	s.hist.record(now - sent)
	s.received.Add(1)
	s.lastRecv.Store(now)
}

func (s *subscriber) endBatch() {}

// serverDisconnect turns a DISCONNECT from the broker into an error.
func serverDisconnect(fh packet.FixedHeader, body []byte, v packet.Version) error {
	var d packet.Disconnect
	if err := d.Decode(fh, body, v); err != nil {
		return fmt.Errorf("broker sent DISCONNECT (undecodable: %w)", err)
	}
	return fmt.Errorf("broker sent DISCONNECT: %w", d.ReasonCode)
}

// publisher sends one publisher's share of a run on its own goroutine; its
// connection's reader goroutine handles the acknowledgements.
type publisher struct {
	c       *conn
	index   uint32
	tag     uint32
	qos     byte
	quota   uint64  // messages to send at most
	rate    float64 // messages per second, 0 for full speed
	pub     packet.Publish
	payload []byte
	maxLen  int // upper bound of one encoded PUBLISH
	msgLen  int // length of the last encoded PUBLISH, guarded by c.wmu

	// Window of in-flight QoS 1/2 messages, guarded by mu. The reader
	// returns slots once per read batch, so the publisher wakes up to a
	// burst of free slots instead of one per acknowledgement.
	mu       sync.Mutex
	cond     sync.Cond
	window   int
	inflight int
	waiting  bool
	stopped  bool
	inUse    [65536 / 64]uint64 // packet identifiers in flight
	nextID   uint16
	freed    int // owned by the reader: slots to return at the end of the batch
	acked    atomic.Uint64
	rejected atomic.Uint64 // acknowledgements with an error reason code (v5)
	unknown  atomic.Uint64 // acknowledgements for identifiers not in flight

	sent    atomic.Uint64
	blocked atomic.Bool // a QoS 0 write was still blocked at the deadline
}

func newPublisher(c *conn, index, tag uint32, topic []byte, qos byte, quota uint64, rate float64, size, window int) *publisher {
	p := &publisher{
		c:       c,
		index:   index,
		tag:     tag,
		qos:     qos,
		quota:   quota,
		rate:    rate,
		payload: make([]byte, size),
		window:  window,
		nextID:  1,
	}
	p.cond.L = &p.mu
	binary.LittleEndian.PutUint32(p.payload, tag)
	binary.LittleEndian.PutUint32(p.payload[4:], index)
	for i := stampSize; i < size; i++ {
		p.payload[i] = byte('a' + i%26)
	}
	p.pub = packet.Publish{QoS: qos, Topic: topic, Payload: p.payload}
	// Fixed header (5) + topic length (2) + topic + packet id (2) +
	// properties length (up to 4) + payload.
	p.maxLen = maxFixedHeader + 2 + len(topic) + 2 + 4 + size
	return p
}

// stop makes run return at its next opportunity, even while it waits for
// window slots.
func (p *publisher) stop() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// acquire waits until at least one window slot is free and takes up to max
// of them. It returns 0 when the publisher was stopped.
func (p *publisher) acquire(max int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.inflight >= p.window && !p.stopped {
		p.waiting = true
		p.cond.Wait()
	}
	p.waiting = false
	if p.stopped {
		return 0
	}
	n := p.window - p.inflight
	if n > max {
		n = max
	}
	p.inflight += n
	return n
}

// allocID returns a packet identifier not in flight. The window is smaller
// than the identifier space, so the search always ends.
func (p *publisher) allocID() uint16 {
	for {
		id := p.nextID
		p.nextID++
		if p.nextID == 0 {
			p.nextID = 1 // 0 is not a valid packet identifier [MQTT-2.2.1-3]
		}
		w, bit := id/64, uint64(1)<<(id%64)
		if atomic.LoadUint64(&p.inUse[w])&bit == 0 {
			atomic.OrUint64(&p.inUse[w], bit)
			return id
		}
	}
}

// releaseID frees id and reports whether it was in flight.
func (p *publisher) releaseID(id uint16) bool {
	w, bit := id/64, uint64(1)<<(id%64)
	return atomic.AndUint64(&p.inUse[w], ^bit)&bit != 0
}

// outstanding returns the number of messages still awaiting their final
// acknowledgement.
func (p *publisher) outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight
}

// batchSize bounds how many messages are encoded between two flushes at
// full speed QoS 0, where no window paces the publisher.
const batchSize = 64

// run publishes until the quota is sent, the deadline passes or stop is
// called. At a fixed rate, the first message goes out at start. It returns
// the error that ended the connection, if any.
func (p *publisher) run(start time.Time, deadline time.Time) error {
	startNs := int64(start.Sub(epoch))
	deadlineNs := int64(deadline.Sub(epoch))
	var sent uint64
	defer func() { p.sent.Store(sent) }()
	pace := time.Sleep
	if p.rate > 0 {
		pc := newPacer()
		defer pc.release()
		pace = pc.sleep
	}
	for sent < p.quota {
		now := monoNow()
		if now >= deadlineNs {
			break
		}
		want := p.quota - sent
		if p.rate > 0 && now < startNs {
			pace(time.Duration(startNs - now)) // staggered start
			continue
		}
		if p.rate > 0 {
			// Messages due by now: the publisher catches up in one burst
			// after a late wake-up instead of drifting below the rate.
			due := uint64(float64(now-startNs)*p.rate/1e9) + 1
			if due <= sent {
				next := startNs + int64(float64(sent)*1e9/p.rate)
				if next > deadlineNs {
					next = deadlineNs
				}
				pace(time.Duration(next - now))
				continue
			}
			want = min(want, due-sent)
		}
		n := int(min(want, batchSize))
		if p.qos > 0 {
			n = p.acquire(int(min(want, uint64(p.window))))
			if n == 0 {
				break
			}
		} else {
			p.mu.Lock()
			stopped := p.stopped
			p.mu.Unlock()
			if stopped {
				break
			}
		}
		k, err := p.writeBatch(n, sent, monoNow())
		sent += uint64(k)
		p.sent.Store(sent)
		if err != nil {
			return p.endWith(err, &sent)
		}
	}
	p.c.wmu.Lock()
	err := p.c.bw.Flush()
	p.c.wmu.Unlock()
	if err != nil {
		return p.endWith(fmt.Errorf("publisher %d: flushing: %w", p.index, err), &sent)
	}
	return nil
}

// endWith handles the error that ended publishing. A QoS 0 stream has no
// flow control but TCP's, so a broker that has stopped reading leaves the
// publisher blocked in a write when the deadline passes: that ends the
// publishing phase normally, and the messages still in the write buffer
// (every PUBLISH of a stream has the same length) do not count as sent.
func (p *publisher) endWith(err error, sent *uint64) error {
	if p.qos != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	p.c.wmu.Lock()
	unsent := uint64(0)
	if p.msgLen > 0 {
		unsent = uint64((p.c.bw.Buffered() + p.msgLen - 1) / p.msgLen)
	}
	p.c.wmu.Unlock()
	*sent -= min(unsent, *sent)
	p.blocked.Store(true)
	return nil
}

// writeBatch encodes n messages with sequence numbers from seq, all stamped
// with now, and flushes them unless this is a full-speed QoS 0 stream, which
// the write buffer flushes by itself whenever it fills. It returns how many
// messages went into the write buffer.
func (p *publisher) writeBatch(n int, seq uint64, now int64) (int, error) {
	c := p.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	binary.LittleEndian.PutUint64(p.payload[16:], uint64(now))
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(p.payload[8:], seq+uint64(i))
		if p.qos > 0 {
			p.pub.PacketID = p.allocID()
		}
		if c.bw.Available() < p.maxLen {
			if err := c.bw.Flush(); err != nil {
				return i, fmt.Errorf("publisher %d: writing: %w", p.index, err)
			}
		}
		buf, err := p.pub.Encode(c.bw.AvailableBuffer(), c.version)
		if err != nil {
			return i, fmt.Errorf("publisher %d: encoding PUBLISH: %w", p.index, err)
		}
		p.msgLen = len(buf)
		if _, err := c.bw.Write(buf); err != nil {
			return i, fmt.Errorf("publisher %d: writing: %w", p.index, err)
		}
	}
	if p.qos == 0 && p.rate == 0 {
		return n, nil
	}
	if err := c.bw.Flush(); err != nil {
		return n, fmt.Errorf("publisher %d: writing: %w", p.index, err)
	}
	return n, nil
}

func (p *publisher) handlePacket(fh packet.FixedHeader, body []byte, _ int64) error {
	switch fh.Type {
	case packet.PUBACK, packet.PUBREC, packet.PUBCOMP:
		var ack packet.Ack
		if err := ack.Decode(fh, body, p.c.version); err != nil {
			return fmt.Errorf("decoding %s: %w", fh.Type, err)
		}
		if fh.Type == packet.PUBREC && !ack.ReasonCode.IsError() {
			// The message is stored; release it. The window slot stays
			// taken until PUBCOMP.
			return p.c.queueAck(packet.PUBREL, ack.PacketID)
		}
		if !p.releaseID(ack.PacketID) {
			p.unknown.Add(1)
			return nil
		}
		if ack.ReasonCode.IsError() {
			p.rejected.Add(1)
		}
		p.acked.Add(1)
		p.freed++
	case packet.DISCONNECT:
		return serverDisconnect(fh, body, p.c.version)
	}
	return nil
}

func (p *publisher) endBatch() {
	if p.freed == 0 {
		return
	}
	p.mu.Lock()
	p.inflight -= p.freed
	p.freed = 0
	if p.waiting {
		p.cond.Signal()
	}
	p.mu.Unlock()
}
