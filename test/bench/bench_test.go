package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// mosquittoBroker is a Debian mosquitto started for one test.
type mosquittoBroker struct {
	addr string
	pid  int
}

// startMosquitto runs mosquitto on a free 127.0.0.1 port until the test
// ends. The load tool is validated against it because it is the reference
// the benchmark compares with.
func startMosquitto(t *testing.T) mosquittoBroker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			t.Fatalf("mosquitto is not installed; run hack/install-test-deps.sh (Debian package mosquitto): %v", err)
		}
		bin = "/usr/sbin/mosquitto"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	config := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nconnection_messages false\nlog_dest stderr\nlog_type error\nlog_type warning\n", port)
	if err := os.WriteFile(conf, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", logs.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := Probe(context.Background(), addr, packet.V311, 10*time.Second); err != nil {
		t.Fatalf("mosquitto did not come up: %v\n%s", err, logs.String())
	}
	return mosquittoBroker{addr: addr, pid: cmd.Process.Pid}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkDelivery asserts what every successful run must show.
func checkDelivery(t *testing.T, res Result, err error, messages uint64) {
	t.Helper()
	if err != nil {
		t.Fatalf("run failed: %v", err)
	}
	if res.Published != messages {
		t.Errorf("published %d messages, want the bound of %d", res.Published, messages)
	}
	if res.Delivered == 0 {
		t.Fatalf("nothing delivered: %+v", res)
	}
	if res.QoS > 0 && res.Lost != 0 {
		t.Errorf("QoS %d lost %d of %d deliveries", res.QoS, res.Lost, res.Expected)
	}
	if res.QoS > 0 && res.Acknowledged != res.Published {
		t.Errorf("QoS %d: %d of %d messages acknowledged", res.QoS, res.Acknowledged, res.Published)
	}
	if res.QoS == 2 && res.Duplicated != 0 {
		t.Errorf("QoS 2 delivered %d duplicates", res.Duplicated)
	}
	if res.Foreign != 0 {
		t.Errorf("%d messages did not belong to the run", res.Foreign)
	}
	if !(res.P50Micros > 0 && res.P99Micros >= res.P50Micros && res.MaxMicros >= res.P99Micros) {
		t.Errorf("latency p50 %v µs, p99 %v µs, max %v µs: want 0 < p50 <= p99 <= max", res.P50Micros, res.P99Micros, res.MaxMicros)
	}
	if res.MessagesPerSec <= 0 {
		t.Errorf("throughput %v msg/s, want > 0", res.MessagesPerSec)
	}
}

func TestWorkloadsAgainstMosquitto(t *testing.T) {
	broker := startMosquitto(t)
	const messages = 300
	for _, wl := range Workloads {
		for _, qos := range []byte{0, 1, 2} {
			t.Run(fmt.Sprintf("%s/qos%d", wl, qos), func(t *testing.T) {
				cfg := Config{
					Addr:             broker.addr,
					Workload:         wl,
					QoS:              qos,
					Clients:          3,
					SharedPublishers: 2,
					Messages:         messages,
					Duration:         time.Minute, // the count ends the run
					BrokerPID:        broker.pid,
				}
				res, err := Run(context.Background(), cfg)
				checkDelivery(t, res, err, messages)
				wantExpected := map[Workload]uint64{FanIn: messages, FanOut: 3 * messages, Pairs: messages, Shared: messages}[wl]
				if res.Expected != wantExpected {
					t.Errorf("expected deliveries %d, want %d", res.Expected, wantExpected)
				}
			})
		}
	}
}

func TestFixedRateIsPaced(t *testing.T) {
	broker := startMosquitto(t)
	const messages, rate = 100, 500.0
	res, err := Run(context.Background(), Config{
		Addr: broker.addr, Workload: Pairs, QoS: 1, Clients: 2,
		Messages: messages, Duration: time.Minute, Rate: rate,
	})
	checkDelivery(t, res, err, messages)
	// A lower bound only: pacing makes publishing last at least this long
	// however fast the machine is, while a busy machine may take longer.
	if min := (messages - 1) / rate; res.PublishSeconds < min {
		t.Errorf("published %d messages at %v/s in %.3fs, faster than the rate allows (%.3fs)", messages, rate, res.PublishSeconds, min)
	}
}

func TestMQTT5WindowFollowsReceiveMaximum(t *testing.T) {
	broker := startMosquitto(t)
	// Mosquitto announces a Receive Maximum of 20 and drops QoS 2 messages
	// beyond it, so a publisher that ignored it would lose messages.
	const messages = 400
	res, err := Run(context.Background(), Config{
		Addr: broker.addr, Version: packet.V5, Workload: Pairs, QoS: 2, Clients: 1,
		Messages: messages, Duration: time.Minute, Inflight: 200,
	})
	checkDelivery(t, res, err, messages)
	if res.Inflight != 20 {
		t.Errorf("window %d, want mosquitto's Receive Maximum of 20", res.Inflight)
	}
	if res.Version != "5.0" {
		t.Errorf("version %q, want 5.0", res.Version)
	}
}

func TestIdleConnectionsAreHeldAndMeasured(t *testing.T) {
	broker := startMosquitto(t)
	res, err := Idle(context.Background(), IdleConfig{
		Addr: broker.addr, Connections: 50, Settle: 50 * time.Millisecond, BrokerPID: broker.pid,
	})
	if err != nil {
		t.Fatalf("idle run: %v", err)
	}
	if res.Held != 50 || res.Failed != 0 {
		t.Errorf("held %d and failed %d of 50 connections, want all held", res.Held, res.Failed)
	}
	if res.RSSBeforeKiB <= 0 || res.RSSAfterKiB <= 0 {
		t.Errorf("broker RSS before %d KiB, after %d KiB: want both read", res.RSSBeforeKiB, res.RSSAfterKiB)
	}
}

func TestRunFailsClearlyWithoutBroker(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = Run(context.Background(), Config{Addr: addr, Workload: FanIn, Messages: 10, ConnectTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("run against a closed port: error %v, want one naming %s", err, addr)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := int64(1); i <= 10000; i++ {
		h.record(i * int64(time.Microsecond))
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 5000 * time.Microsecond},
		{0.99, 9900 * time.Microsecond},
		{1, 10000 * time.Microsecond},
	} {
		got := h.quantile(tc.q)
		if diff := float64(got-tc.want) / float64(tc.want); diff > 0.01 || diff < -0.01 {
			t.Errorf("quantile(%v) = %v, want %v within 1%%", tc.q, got, tc.want)
		}
	}
	if h.max != int64(10000*time.Microsecond) {
		t.Errorf("max %v, want 10ms", time.Duration(h.max))
	}
	var empty histogram
	if q := empty.quantile(0.5); q != 0 {
		t.Errorf("empty histogram quantile %v, want 0", q)
	}
}

func TestBucketsCoverValuesContiguously(t *testing.T) {
	prev := -1
	for v := int64(0); v < 1<<20; v++ {
		i := bucketIndex(v)
		if i != prev && i != prev+1 {
			t.Fatalf("value %d jumps from bucket %d to %d", v, prev, i)
		}
		if low := bucketLow(i); low > v {
			t.Fatalf("value %d in bucket %d whose lowest value is %d", v, i, low)
		}
		prev = i
	}
}

func TestSeenSetCountsDuplicates(t *testing.T) {
	s := newSeenSet(100)
	for _, seq := range []uint64{0, 5, 99, 5} {
		s.mark(seq)
	}
	if dup, ok := s.mark(99); !dup || !ok {
		t.Errorf("second mark of 99: duplicate %v ok %v, want both true", dup, ok)
	}
	if _, ok := s.mark(128); ok {
		t.Error("mark beyond the set reported ok")
	}
	if n := s.unique(); n != 3 {
		t.Errorf("unique %d, want 3", n)
	}
}

func TestReportComparesSubjectWithReferences(t *testing.T) {
	run := func(wl Workload, qos byte, rate, mps, p99 float64) Result {
		return Result{Workload: wl, QoS: qos, Rate: rate, Publishers: 8, Subscribers: 1, PayloadSize: 64,
			Version: "3.1.1", Published: 10, Expected: 10, Delivered: 10, MessagesPerSec: mps, P50Micros: p99 / 2, P99Micros: p99}
	}
	in := ReportInput{
		Records: []Record{
			{Broker: "fleetmq", Runs: []Result{run(FanIn, 0, 0, 300000, 900), run(FanIn, 1, 2000, 2000, 400)}, Idle: &IdleResult{Held: 15000, KiBPerConnection: 6.5}},
			{Broker: "mosquitto", Version: "2.0.11", Runs: []Result{run(FanIn, 0, 0, 100000, 800), run(FanIn, 1, 2000, 2000, 500)}},
			{Broker: "mochi", Unavailable: "build failed"},
		},
		Machine:          Machine{CPUs: 2, Model: "test CPU", Kernel: "6.0", GoVersion: "go1.26"},
		Date:             time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		Command:          "make bench",
		Targets:          []ThroughputTarget{{Reference: "mosquitto", Ratio: 1.5}, {Reference: "mochi", Ratio: 1.2}},
		LatencyReference: "mosquitto",
		IdleTargetKiB:    8,
		Commands:         []string{"fleetmq-bench run -addr 127.0.0.1:1"},
	}
	var b strings.Builder
	if err := WriteMarkdown(&b, in); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| 0 | full | 300k | 450µs | 900µs | 100k | 400µs | 800µs | – | – | – | 3.00× | n/a |",
		"| 1 | rate 2.0k/s |",
		"0.80× p99",
		"lowest 3.00× (fanin QoS 0) over 1 runs | yes |",
		"| p99 at the fixed rate ≤ mosquitto's in every cell | highest 0.80× (fanin QoS 1: 400µs vs 500µs); above mosquitto's in 0 of 1 | yes |",
		"| delivered msg/s ≥ 1.2× mochi, every workload at QoS 0 and 1 | mochi not measured | – |",
		"highest 0.80×",
		"6.5 KiB at 15000 connections | yes |",
		"**not measured**: build failed",
		"fleetmq-bench run -addr 127.0.0.1:1",
		"2026-01-02 03:04 UTC",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestReportUsesMedianOfRounds(t *testing.T) {
	round := func(p99, load float64) Result {
		return Result{Workload: Pairs, QoS: 1, Rate: 2000, Publishers: 8, Subscribers: 8, PayloadSize: 64, Version: "3.1.1",
			Published: 10, Expected: 10, Delivered: 10, MessagesPerSec: 2000, P50Micros: 100, P99Micros: p99,
			LoadAverage: fmt.Sprintf("%.2f 1.00 1.00", load), RealTime: true}
	}
	normal := func(p99 float64) Result {
		r := round(p99, 5)
		r.RealTime = false
		return r
	}
	in := ReportInput{
		Records: []Record{
			// One stalled round (40 ms) must not decide the comparison.
			{Broker: "fleetmq", Runs: []Result{round(900, 3.5), round(40000, 9.25), round(1100, 6), normal(30000)}},
			{Broker: "mosquitto", Runs: []Result{round(1500, 4), round(1000, 5), round(2000, 7), normal(10000)}},
			{Broker: "mosquitto2", Runs: []Result{round(1300, 4), round(1200, 5), round(1250, 7)}},
		},
		Machine:          Machine{CPUs: 2},
		Date:             time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		Command:          "make bench",
		LatencyReference: "mosquitto",
		LatencyControl:   "mosquitto2",
	}
	var b strings.Builder
	if err := WriteMarkdown(&b, in); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		// The A/A line: mosquitto's median 1.50 ms against its control's 1.25 ms.
		"| resolution (for information): mosquitto's p99 against `mosquitto2`, a second instance of it in the same rounds | 1.20× (pairs QoS 1: 1.50ms vs 1.25ms) to 1.20× (pairs QoS 1: 1.50ms vs 1.25ms) | – |",
		// Medians: fleetmq 1.10 ms, mosquitto 1.50 ms.
		"| 1 | rate 2.0k/s RT | 2.0k | 100µs | 1.10ms | 2.0k | 100µs | 1.50ms | 2.0k | 100µs | 1.25ms | 0.73× p99 | 0.88× p99 |",
		"| 1 | rate 2.0k/s | 2.0k | 100µs | 30.0ms | 2.0k | 100µs | 10.0ms | – | – | – | 3.00× p99 | n/a |",
		// Too few rounds to pair: the real-time rounds' medians decide the
		// target; normal priority is shown.
		"| p99 at the fixed rate ≤ mosquitto's in every cell, real-time priority (RT rows) | highest 0.73× (pairs QoS 1: 1.10ms vs 1.50ms); above mosquitto's in 0 of 1 | yes |",
		"| p99 at the fixed rate ≤ mosquitto's in every cell, normal priority (for information) | highest 3.00× (pairs QoS 1: 30.0ms vs 10.0ms); above mosquitto's in 1 of 1 | – |",
		"| pairs | 1 | rate 2.0k/s RT | 900µs · 40.0ms · 1.10ms | 1.50ms · 1.00ms · 2.00ms |",
		"1-minute load average 3.5–9.2 at the start of its runs",
		// Round by round: fleetmq/mosquitto 0.60, 40, 0.55; mosquitto/mosquitto2 1.15, 0.83, 1.60.
		"| round by round (for information): median of fleetmq's p99 over mosquitto's in the same round, every cell pooled | 0.60× (too few rounds for a 95% interval) over 3 rounds; lower in 2 | – |",
		"| round by round (for information): median of mosquitto's p99 over mosquitto2's in the same round, every cell pooled | 1.15× (too few rounds for a 95% interval) over 3 rounds; lower in 1 | – |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestParseGoBenchAndReport(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/fleetmq/fleetmq/broker/packet
cpu: test CPU
BenchmarkDecodePublish/v3_qos1-2         	 3828979	        68.26 ns/op	 366.22 MB/s	       0 B/op	       0 allocs/op
BenchmarkDecodeConnect/5.0-2                        	  346730	      1304 ns/op	     144 B/op	      12 allocs/op
PASS
ok  	github.com/fleetmq/fleetmq/broker/packet	3.155s
pkg: github.com/fleetmq/fleetmq/broker/topic
BenchmarkMatch/cached-2    	 1000000	       144.7 ns/op	        59.68 subs/op	       0 B/op	       0 allocs/op
`
	micro, err := ParseGoBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(micro) != 3 {
		t.Fatalf("parsed %d benchmarks, want 3: %+v", len(micro), micro)
	}
	if m := micro[2]; m.Package != "github.com/fleetmq/fleetmq/broker/topic" || m.Name != "BenchmarkMatch/cached" || m.Iterations != 1000000 {
		t.Errorf("third benchmark %+v, want BenchmarkMatch/cached of broker/topic", m)
	}
	var b strings.Builder
	err = WriteMarkdown(&b, ReportInput{
		Records:      []Record{{Broker: "fleetmq", Runs: []Result{{Workload: Pairs, Published: 1, Expected: 1, Delivered: 1, MessagesPerSec: 1}}}},
		Micro:        micro,
		MicroCommand: "go test -bench . ./broker/packet",
		HandWritten:  HandWrittenMarker + "\n\n## What limits the figures\n\nkept text\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| broker/packet | DecodePublish/v3_qos1 | 68.26 | 0 | 0 | 366.22 MB/s |",
		"| broker/packet | DecodeConnect/5.0 | 1304 | 144 | 12 |  |",
		"| broker/topic | Match/cached | 144.7 | 0 | 0 | 59.68 subs/op |",
		"(`go test -bench . ./broker/packet`)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if !strings.HasSuffix(md, HandWrittenMarker+"\n\n## What limits the figures\n\nkept text\n") {
		t.Errorf("report does not end with the hand-written part:\n%s", md)
	}
}

func TestHandWrittenPartSurvivesRegeneration(t *testing.T) {
	earlier := "# Benchmarks\n\nold generated table\n\n" + HandWrittenMarker + "\n\nour analysis\n"
	if got, want := HandWritten(earlier), HandWrittenMarker+"\n\nour analysis\n"; got != want {
		t.Errorf("HandWritten = %q, want %q", got, want)
	}
	if got := HandWritten("# Benchmarks\n\nno marker\n"); got != "" {
		t.Errorf("HandWritten without a marker = %q, want empty", got)
	}
	var b strings.Builder
	if err := WriteMarkdown(&b, ReportInput{Records: []Record{{Broker: "fleetmq"}}}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(b.String(), HandWrittenMarker+"\n") {
		t.Errorf("a page without hand-written text should end with the marker:\n%s", b.String())
	}
}

func TestPairedP99Interval(t *testing.T) {
	// 64 pairs, as 8 cells of 8 rounds give: the interval runs from the
	// 24th smallest to the 24th largest ratio, since a fair coin shows 23
	// or fewer heads in 64 tosses with a probability of 1.6% and 24 or
	// fewer with 3.0%.
	var p pairedP99
	for i := 1; i <= 64; i++ {
		p.ratios = append(p.ratios, float64(i)/32)
	}
	lo, hi, ok := p.interval95()
	if !ok || lo != 24.0/32 || hi != 41.0/32 {
		t.Errorf("interval95 over 64 pairs = %v–%v (ok %v), want %v–%v", lo, hi, ok, 24.0/32, 41.0/32)
	}
	if m := p.median(); m != 32.5/32 {
		t.Errorf("median = %v, want %v", m, 32.5/32)
	}
	// Below six pairs even the extremes cover less than 95%.
	p.ratios = p.ratios[:5]
	if _, _, ok := p.interval95(); ok {
		t.Error("interval95 over 5 pairs claims a 95% interval")
	}
	p.ratios = append(p.ratios, 2)
	if lo, hi, ok := p.interval95(); !ok || lo != p.ratios[0] || hi != 2 {
		t.Errorf("interval95 over 6 pairs = %v–%v (ok %v), want the extremes", lo, hi, ok)
	}
	// Many pairs (2^-n underflows a float64 past 1074): the interval
	// narrows around the median, about ±1.96·√n/2 places from it.
	p.ratios = p.ratios[:0]
	for i := 1; i <= 2000; i++ {
		p.ratios = append(p.ratios, float64(i))
	}
	if lo, hi, ok := p.interval95(); !ok || lo != 956 || hi != 1045 {
		t.Errorf("interval95 over 2000 pairs = %v–%v (ok %v), want 956–1045", lo, hi, ok)
	}
}

func TestReportPairedRoundsDecideLatencyTarget(t *testing.T) {
	// Two cells of eight real-time rounds each. wobble is the subject's p99
	// over the reference's in each round, before scale.
	wobble := []float64{0.9, 1.1, 0.96, 1.08, 1.03, 0.98, 1.12, 1.01}
	rounds := func(wl Workload, base, scale float64, ratios []float64) []Result {
		var out []Result
		for _, r := range ratios {
			out = append(out, Result{Workload: wl, QoS: 0, Rate: 2000, Publishers: 8, Subscribers: 8, PayloadSize: 64, Version: "3.1.1",
				Published: 10, Expected: 10, Delivered: 10, MessagesPerSec: 2000, P50Micros: 100, P99Micros: base * r * scale, RealTime: true})
		}
		return out
	}
	flat := []float64{1, 1, 1, 1, 1, 1, 1, 1}
	report := func(scale float64) string {
		in := ReportInput{
			Records: []Record{
				{Broker: "fleetmq", Runs: append(rounds(Pairs, 300, scale, wobble), rounds(FanIn, 400, scale, wobble)...)},
				{Broker: "mosquitto", Runs: append(rounds(Pairs, 300, 1, flat), rounds(FanIn, 400, 1, flat)...)},
			},
			Machine:          Machine{CPUs: 2},
			Date:             time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
			Command:          "make bench",
			LatencyReference: "mosquitto",
		}
		var b strings.Builder
		if err := WriteMarkdown(&b, in); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	for _, tc := range []struct {
		name  string
		scale float64
		want  []string
	}{{
		// Level round by round, yet each cell's median is 1.02× (the middle
		// two of the wobble): the pairs decide, and say yes.
		name: "level", scale: 1,
		want: []string{
			"| p99 at the fixed rate no worse than mosquitto's, real-time priority (RT rows): round by round, every cell pooled, the 95% interval of the median ratio reaches 1.00× | 1.02× (95% interval 0.96–1.10×) over 16 rounds; lower in 6 | yes |",
			"| p99 at the fixed rate ≤ mosquitto's in every cell, real-time priority (RT rows) (for information) | highest 1.02× (fanin QoS 0: 408µs vs 400µs); above mosquitto's in 2 of 2 | – |",
		},
	}, {
		// 15% slower in every round: the whole interval lies above 1.00×.
		name: "slower", scale: 1.15,
		want: []string{
			"| p99 at the fixed rate no worse than mosquitto's, real-time priority (RT rows): round by round, every cell pooled, the 95% interval of the median ratio reaches 1.00× | 1.17× (95% interval 1.10–1.26×) over 16 rounds; lower in 0 | **no** |",
		},
	}} {
		md := report(tc.scale)
		for _, want := range tc.want {
			if !strings.Contains(md, want) {
				t.Errorf("%s: report lacks %q:\n%s", tc.name, want, md)
			}
		}
	}
}
