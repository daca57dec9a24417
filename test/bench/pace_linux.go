package bench

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// pacer sleeps a fixed-rate publisher until its next message is due.
//
// Why not time.Sleep: the Go runtime waits for its timers in epoll_pwait,
// whose timeout has millisecond resolution, so on Linux a 0.5 ms sleep lasts
// about 1.1 ms. Publishers paced with it wake in clumps on millisecond
// boundaries, and a "fixed rate" of 2,000 messages a second reaches the
// broker as pairs of messages microseconds apart every millisecond: not the
// evenly spaced stream the fixed-rate rows promise. A pacer waits on a
// timerfd instead, a kernel high-resolution timer that the runtime's poller
// watches like a socket: the goroutine parks as it would in time.Sleep, no
// thread is held in a blocking system call, and it wakes within tens of
// microseconds of the due time.
type pacer struct {
	fd  int
	f   *os.File // the poller's handle on fd
	buf [8]byte
}

// newPacer returns a pacer, falling back to time.Sleep if the kernel has no
// timerfd. Call release when done with it.
func newPacer() *pacer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return &pacer{fd: -1}
	}
	// A non-blocking descriptor is registered with the runtime's poller, so
	// Read parks the goroutine until the timer fires.
	return &pacer{fd: fd, f: os.NewFile(uintptr(fd), "pacer-timerfd")}
}

// sleep waits d.
func (pc *pacer) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	if pc.f == nil {
		time.Sleep(d)
		return
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if err := unix.TimerfdSettime(pc.fd, 0, &spec, nil); err != nil {
		time.Sleep(d)
		return
	}
	// The read returns the number of expirations once the timer has fired.
	if _, err := pc.f.Read(pc.buf[:]); err != nil {
		time.Sleep(d)
	}
}

// release closes the timer.
func (pc *pacer) release() {
	if pc.f != nil {
		_ = pc.f.Close()
		pc.f = nil
	}
}
