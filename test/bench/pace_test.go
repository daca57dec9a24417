package bench

import (
	"testing"
	"time"
)

// A pacer must never wake early: the fixed rate would run fast. How late it
// wakes depends on the machine, so only the lower bound is asserted.
func TestPacerNeverWakesEarly(t *testing.T) {
	pc := newPacer()
	defer pc.release()
	for _, d := range []time.Duration{0, 50 * time.Microsecond, 300 * time.Microsecond, 2 * time.Millisecond} {
		for range 5 {
			start := time.Now()
			pc.sleep(d)
			if got := time.Since(start); got < d {
				t.Fatalf("sleep(%v) returned after %v", d, got)
			}
		}
	}
	pc.release() // twice is harmless, as with the deferred call
}
