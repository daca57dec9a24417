//go:build !linux

package bench

import "time"

// pacer sleeps a fixed-rate publisher until its next message is due. Off
// Linux it is time.Sleep, whatever that platform's resolution.
type pacer struct{}

func newPacer() *pacer { return &pacer{} }

func (*pacer) sleep(d time.Duration) { time.Sleep(d) }

func (*pacer) release() {}
