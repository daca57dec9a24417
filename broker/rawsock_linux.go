package broker

import (
	"io"
	"net"
	"syscall"
	"unsafe"

	"github.com/pires/go-proxyproto"
)

// rawSocket reads and writes a plain TCP connection's socket with raw
// system calls, through the runtime's poller as net.Conn does.
//
// Why: Go sockets are non-blocking, so a read or write returns at once, yet
// net.Conn enters them as blocking system calls, and entering one wakes the
// runtime's monitor thread (sysmon) whenever the whole process was idle. A
// broker at a moderate message rate is idle between nearly every two
// messages, so each message paid for waking that thread and putting it back
// to sleep: two to three context switches and a third more CPU per message
// on the machines we measure on, and the latency that goes with it (see
// docs/benchmarks.md). A non-blocking socket call cannot hold its thread,
// which is the case RawSyscall exists for; waiting for readiness still goes
// through the poller, with deadlines, like net.Conn.
//
// The read side belongs to the connection's reader, the write side to
// whoever holds its writer role; each has its own state so that both can
// run at once. The callbacks are bound once per connection so that no call
// allocates.
type rawSocket struct {
	rc syscall.RawConn

	// headerBuffered: nc is a PROXY protocol connection whose header has
	// not been read yet. The header is read through a buffer that may also
	// take in the first bytes after it, so reads go through nc until one
	// read has drained that buffer (see conn.read); writes can be raw from
	// the start.
	headerBuffered bool

	readBuf  []byte
	readN    int
	readErr  error
	readFunc func(fd uintptr) bool

	writeBuf    []byte
	written     int
	writeErr    error
	writeCalled bool
	writeFunc   func(fd uintptr) bool
}

// newRawSocket returns the raw side of nc, or nil when nc is not a TCP
// connection, plain or behind a PROXY protocol header (TLS and WebSocket
// have framing of their own).
func newRawSocket(nc net.Conn) *rawSocket {
	var tc *net.TCPConn
	headerBuffered := false
	switch c := nc.(type) {
	case *net.TCPConn:
		tc = c
	case *proxyproto.Conn:
		var ok bool
		if tc, ok = c.TCPConn(); !ok {
			return nil
		}
		headerBuffered = true
	default:
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	rs := &rawSocket{rc: rc, headerBuffered: headerBuffered}
	rs.readFunc = rs.readOnce
	rs.writeFunc = rs.writeOnce
	return rs
}

// read reads into b, waiting for data as net.Conn.Read does (read deadline
// included), and returns io.EOF when the peer has closed.
func (rs *rawSocket) read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	rs.readBuf, rs.readN, rs.readErr = b, 0, nil
	err := rs.rc.Read(rs.readFunc)
	rs.readBuf = nil
	if err != nil {
		return 0, err
	}
	return rs.readN, rs.readErr
}

// readOnce is the poller callback of read: false means "wait until the
// socket is readable and call again".
func (rs *rawSocket) readOnce(fd uintptr) bool {
	b := rs.readBuf
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case 0:
			rs.readN = int(n)
			if n == 0 {
				rs.readErr = io.EOF
			}
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			rs.readErr = errno
			return true
		}
	}
}

// tryWrite writes as much of b as the socket takes without waiting. ok is
// false when it could not even try (an expired write deadline, a closing
// socket): the caller should use the blocking path, which reports why. err
// is a failure of the connection itself.
func (rs *rawSocket) tryWrite(b []byte) (n int, ok bool, err error) {
	if len(b) == 0 {
		return 0, true, nil
	}
	rs.writeBuf, rs.written, rs.writeErr, rs.writeCalled = b, 0, nil, false
	_ = rs.rc.Write(rs.writeFunc)
	n, ok, err = rs.written, rs.writeCalled, rs.writeErr
	rs.writeBuf, rs.writeErr = nil, nil
	return n, ok, err
}

// writeOnce is the poller callback of tryWrite. It never asks to wait: a
// full socket is the writer goroutine's business.
func (rs *rawSocket) writeOnce(fd uintptr) bool {
	rs.writeCalled = true
	b := rs.writeBuf
	for rs.written < len(b) {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[rs.written])), uintptr(len(b)-rs.written))
		switch errno {
		case 0:
			rs.written += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return true
		default:
			rs.writeErr = errno
			return true
		}
	}
	return true
}
