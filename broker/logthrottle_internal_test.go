package broker

import (
	"testing"
	"time"
)

// TestLogThrottleLetsOneLinePerInterval: the first event is logged, those
// within the interval are held back and counted, and the next line after
// the interval says how many there were.
func TestLogThrottleLetsOneLinePerInterval(t *testing.T) {
	var lt logThrottle
	start := time.Unix(1_700_000_000, 0)
	steps := []struct {
		after       time.Duration
		wantOK      bool
		wantSkipped int
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{29 * time.Second, false, 0},
		{30 * time.Second, true, 2},
		{31 * time.Second, false, 0},
		{2 * time.Minute, true, 1},
	}
	for _, st := range steps {
		ok, skipped := lt.allow(start.Add(st.after), 30*time.Second)
		if ok != st.wantOK || skipped != st.wantSkipped {
			t.Fatalf("at +%v: allow = %v, %d; want %v, %d", st.after, ok, skipped, st.wantOK, st.wantSkipped)
		}
	}
}
