package broker

import (
	"errors"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// The write side of a connection.
//
// Everything a client is sent is queued under its session's mu (control
// packets in conn.ctrl, deliveries in session.queue) and written by whoever
// holds the connection's writer role, marked by conn.writing. There are two
// ways to hold it:
//
//   - A writer goroutine (writeLoop), started when something is queued and
//     nobody writes. It batches everything queued into as few writes as
//     possible and exits when the queues are empty, so an idle connection
//     has no writer goroutine.
//   - A reader that has just handled the last packet in its buffer, and so
//     is about to wait for input, writes itself (writeNow) to the
//     connections its packet produced output for: its own acks and the
//     subscribers it delivered to. It never blocks doing so: it makes one
//     write of at most maxWriteBatch bytes, of what the socket takes at
//     once, and hands anything left to a writer goroutine. At a moderate
//     rate every message then goes from the publisher's socket to the
//     subscriber's socket on one goroutine, with no hand-off through the
//     scheduler on the way; in a burst (more packets buffered) the writer
//     goroutines take over and run in parallel with the reader.
//
// When the broker closes a connection (closeWith), the packets it still owes
// the client (CONNACK, acks) and a v5 DISCONNECT go through the role too:
// they are the last thing its holder writes, after the write under way, so
// that they never land inside a packet.

// maxInlineRounds bounds the writes writeNow makes; output still queued
// after them goes to a writer goroutine.
const maxInlineRounds = 2

// maxInlineTargets bounds the subscribers one reader writes to itself per
// packet. Past it, a wide fan-out goes to writer goroutines, which spread
// over every core instead of queueing behind one reader.
const maxInlineTargets = 16

// queueCtrl queues a control packet from the reader. The writer is woken
// only when the reader is about to wait for more input, so the answers to a
// burst of packets leave in one write.
func (c *conn) queueCtrl(o outbound) {
	s := c.sess
	s.mu.Lock()
	if !c.closing {
		c.ctrl = append(c.ctrl, o)
		c.deferKick = true
		c.backlogged = len(c.ctrl) >= maxCtrlBacklog
	}
	s.mu.Unlock()
}

// flushDeferredKick sends whatever the reader queued while it worked
// through its buffer: one write for a burst, made by the reader itself when
// nobody else is writing.
func (c *conn) flushDeferredKick() {
	s := c.sess
	if s == nil {
		return
	}
	s.mu.Lock()
	if !c.deferKick {
		s.mu.Unlock()
		return
	}
	c.deferKick = false
	if len(c.ctrl) == 0 && s.queue.len() == 0 || c.writing || c.closing {
		s.mu.Unlock()
		return
	}
	c.writing = true
	s.mu.Unlock()
	if c.raw == nil {
		go c.writeLoop(nil)
		return
	}
	c.writeNow()
}

// kickLocked starts a writer goroutine if nobody holds the writer role.
// Callers hold sess.mu.
func (c *conn) kickLocked() { c.wakeWriterLocked(nil) }

// wakeWriterLocked makes sure somebody will write what was just queued. If
// nobody holds the writer role and pw is given, the role goes to pw's
// reader, which writes before it next reads (pendingWrites.flush);
// otherwise a writer goroutine starts. Callers hold sess.mu.
func (c *conn) wakeWriterLocked(pw *pendingWrites) {
	if c.writing || c.closing {
		return
	}
	c.writing = true
	if pw != nil && c.raw != nil && len(pw.conns) < maxInlineTargets {
		pw.conns = append(pw.conns, c)
		return
	}
	go c.writeLoop(nil)
}

// pendingWrites is a reader's list of connections whose writer role it
// took while routing the last packet of its buffer (see wakeWriterLocked).
// It is reader-owned: only the goroutine handling packets touches it.
type pendingWrites struct {
	conns []*conn
}

// flush writes to every claimed connection. It must run before the reader
// waits for input or ends, or those connections would never be written to.
func (pw *pendingWrites) flush() {
	for i, c := range pw.conns {
		pw.conns[i] = nil
		c.writeNow()
	}
	pw.conns = pw.conns[:0]
}

// writeScratch is the pooled working memory of one write: the packets taken
// from the queues and the bytes they encode to.
type writeScratch struct {
	batch []outbound
	buf   []byte
}

var writeScratchPool = sync.Pool{New: func() any {
	return &writeScratch{buf: make([]byte, 0, 16<<10)}
}}

func getWriteScratch() *writeScratch { return writeScratchPool.Get().(*writeScratch) }

func putWriteScratch(sc *writeScratch) {
	if cap(sc.buf) > 1<<20 || cap(sc.batch) > 4096 {
		return // a rare huge burst: let it go rather than pin it
	}
	clear(sc.batch)
	sc.batch = sc.batch[:0]
	sc.buf = sc.buf[:0]
	writeScratchPool.Put(sc)
}

// writerNext is what takeLocked tells the writer to do next.
type writerNext uint8

const (
	writeBatch    writerNext = iota // send the batch, then take again
	writerDone                      // nothing to send: the writer role is given up
	writeFarewell                   // closing: send the batch (control packets owed) and closeWith's DISCONNECT, then close; the role is kept
)

// takeLocked moves what is ready to send into batch: the control packets,
// then the deliveries the client's window has room for. When there is
// nothing, or the connection is closing, it gives the writer role up,
// unless closeWith left it a DISCONNECT to send. Callers hold sess.mu and
// the writer role.
func (c *conn) takeLocked(batch []outbound) ([]outbound, writerNext) {
	s := c.sess
	if c.closing || c.closed.Load() {
		c.releaseReaderLocked()
		if c.hasFarewell {
			c.hasFarewell = false
			return c.takeOwedLocked(batch), writeFarewell
		}
		c.writing = false
		return batch, writerDone
	}
	batch = c.takeCtrlLocked(batch)
	c.releaseReaderLocked()
	if c.connected.Load() {
		batch = s.popSendable(batch, c.window)
	}
	if len(batch) == 0 {
		c.writing = false
		if cap(c.ctrl) > 64 {
			c.ctrl = nil
		}
		return batch, writerDone
	}
	return batch, writeBatch
}

// encodeSome appends packets of batch to buf until buf holds maxWriteBatch bytes or
// batch is done, and returns buf and how many packets it encoded. Writes stay bounded
// however much a resumed session or a burst has queued.
func (c *conn) encodeSome(buf []byte, batch []outbound) ([]byte, int) {
	now := c.srv.now()
	for i := range batch {
		if len(buf) >= maxWriteBatch {
			return buf, i
		}
		buf = c.encode(buf, &batch[i], now)
	}
	return buf, len(batch)
}

// writeNow does the writer's work on the calling goroutine without ever
// blocking: what the socket does not take at once, and anything still
// queued after maxInlineRounds, goes to a writer goroutine. Callers hold
// the writer role.
func (c *conn) writeNow() {
	defer c.recoverWriterPanic()
	s := c.sess
	sc := getWriteScratch()
	for round := 0; ; round++ {
		s.mu.Lock()
		batch, next := c.takeLocked(sc.batch[:0])
		farewell := c.farewell
		s.mu.Unlock()
		sc.batch = batch
		switch next {
		case writerDone:
			putWriteScratch(sc)
			return
		case writeFarewell:
			// The last write may block for a while; not on a reader.
			owed := slices.Clone(batch)
			putWriteScratch(sc)
			go c.sayFarewell(farewell, owed)
			return
		}
		if round == maxInlineRounds {
			// Output keeps coming: a writer goroutine sends what was
			// just taken and whatever follows. Taking once more before
			// handing off means that the common case, nothing more,
			// ends here without starting a goroutine.
			sc.buf = sc.buf[:0]
			go c.writeLoop(sc)
			return
		}
		var encoded int
		sc.buf, encoded = c.encodeSome(sc.buf[:0], batch)
		n, tried, err := c.raw.tryWrite(sc.buf)
		c.srv.stats.BytesSent.Add(int64(n))
		if err != nil {
			c.writeFailed(err)
			putWriteScratch(sc)
			return
		}
		if !tried || n < len(sc.buf) || encoded < len(batch) {
			// The socket is full (or needs the blocking path), or there is
			// more than one write's worth: a writer goroutine sends the
			// rest, blocking as it may.
			sc.buf = append(sc.buf[:0], sc.buf[n:]...)
			rest := copy(sc.batch, batch[encoded:])
			clear(sc.batch[rest:])
			sc.batch = sc.batch[:rest]
			go c.writeLoop(sc)
			return
		}
		clear(sc.batch)
	}
}

// writeLoop sends everything queued, batching it into as few writes as the
// queues allow, and exits when there is nothing left. sc, if not nil, holds
// what must go out first: bytes, then packets taken from the queues but not
// yet encoded. Callers hold the writer role.
func (c *conn) writeLoop(sc *writeScratch) {
	defer c.recoverWriterPanic()
	if sc == nil {
		sc = getWriteScratch()
	}
	defer putWriteScratch(sc)
	if len(sc.buf) > 0 && !c.write(sc.buf) {
		return
	}
	s := c.sess
	batch := sc.batch
	for {
		for len(batch) > 0 && !c.closed.Load() {
			var encoded int
			sc.buf, encoded = c.encodeSome(sc.buf[:0], batch)
			batch = batch[encoded:]
			if !c.write(sc.buf) {
				return
			}
		}
		var next writerNext
		s.mu.Lock()
		if len(batch) > 0 {
			// Closed meanwhile: no more deliveries. What the client is
			// owed goes back to the front of the queue, for whoever says
			// farewell: this writer (takeLocked) or closeWith.
			c.ctrl = append(appendOwed(nil, batch), c.ctrl...)
		}
		clear(sc.batch)
		batch, next = c.takeLocked(sc.batch[:0])
		farewell := c.farewell
		s.mu.Unlock()
		sc.batch = batch
		switch next {
		case writerDone:
			return
		case writeFarewell:
			c.sayFarewell(farewell, batch)
			return
		}
	}
}

// write sends buf, blocking up to writeTimeout (farewellTimeout once the
// connection is closing), and closes the connection on failure. The write
// path never holds a lock, so a slow socket stalls only this connection's
// writer.
func (c *conn) write(buf []byte) bool {
	timeout := writeTimeout
	if c.closed.Load() {
		timeout = farewellTimeout
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	n, err := c.nc.Write(buf)
	c.srv.stats.BytesSent.Add(int64(n))
	if err != nil {
		c.writeFailed(err)
		return false
	}
	if c.raw != nil && !c.closed.Load() {
		// The deadline is for this blocking write only; left set, it
		// would expire and turn the next non-blocking write away.
		_ = c.nc.SetWriteDeadline(time.Time{})
	}
	return true
}

// recoverWriterPanic is recoverPanic for a goroutine holding the writer
// role, which it gives up first: closeWith would otherwise leave the
// DISCONNECT, and the socket's close, to this very writer.
func (c *conn) recoverWriterPanic() {
	r := recover()
	if r == nil {
		return
	}
	c.logPanic("connection writer", r)
	s := c.sess
	s.mu.Lock()
	c.writing, c.hasFarewell = false, false
	c.releaseReaderLocked()
	s.mu.Unlock()
	c.closeWith(packet.ImplementationSpecificError)
	_ = c.nc.Close() // already closed unless closeWith had been called before
}

// writeFailed closes the connection after a failed write and gives the
// writer role up.
func (c *conn) writeFailed(err error) {
	if !errors.Is(err, net.ErrClosed) {
		c.debug("Write failed", "error", err)
	}
	// Not closeNow: after closeWith the socket is this writer's to close.
	c.closed.Store(true)
	_ = c.nc.Close()
	s := c.sess
	s.mu.Lock()
	c.writing = false
	c.releaseReaderLocked()
	s.mu.Unlock()
}
