package bench

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Machine describes where a report was measured.
type Machine struct {
	CPUs             int
	Model            string
	Kernel           string
	GoVersion        string
	MosquittoVersion string
}

// DetectMachine fills Machine from this process's view of the machine;
// MosquittoVersion is left for the caller, who knows which binary ran.
func DetectMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Model: "unknown", Kernel: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// ThroughputTarget is a goal for the subject broker's delivered messages/s
// relative to a reference broker.
type ThroughputTarget struct {
	Reference string
	Ratio     float64
}

// ReportInput is everything a benchmark report shows.
type ReportInput struct {
	// Records are the brokers' results; the first broker is the subject
	// that ratios and targets are computed for.
	Records  []Record
	Machine  Machine
	Date     time.Time
	Command  string   // what a user runs to regenerate the report
	Commands []string // the exact load-tool invocations behind it
	// Targets for delivered messages/s at full speed, QoS 0 and 1.
	Targets []ThroughputTarget
	// LatencyReference is the broker whose p99 at the fixed rate the
	// subject should not exceed; empty to skip.
	LatencyReference string
	// LatencyControl is a second instance of the reference broker, measured
	// in the same fixed-rate rounds: the spread between the reference and
	// its control is how finely the run resolves a p99 difference. Empty
	// when there is none.
	LatencyControl string
	// IdleTargetKiB is the most broker memory an idle connection should
	// cost the subject; 0 to skip.
	IdleTargetKiB float64
	// Notes are extra bullet points for the Settings section, such as how
	// each broker was configured.
	Notes []string
	// Micro are the Go microbenchmarks of the run, from ParseGoBench, and
	// MicroCommand the command that produced them.
	Micro        []Microbenchmark
	MicroCommand string
	// HandWritten is the part of the page people write, starting with
	// HandWrittenMarker; kept verbatim at the end. When empty, the marker
	// alone ends the page, to show where such text goes.
	HandWritten string
}

// MergeRecords joins records of the same broker, keeping the order in which
// brokers first appear.
func MergeRecords(records []Record) []Record {
	var out []Record
	index := map[string]int{}
	for _, r := range records {
		i, ok := index[r.Broker]
		if !ok {
			index[r.Broker] = len(out)
			out = append(out, Record{Broker: r.Broker})
			i = len(out) - 1
		}
		m := &out[i]
		if r.Version != "" {
			m.Version = r.Version
		}
		if r.LoadAverage != "" && m.LoadAverage == "" {
			m.LoadAverage = r.LoadAverage
		}
		if r.Unavailable != "" {
			m.Unavailable = r.Unavailable
		}
		m.Runs = append(m.Runs, r.Runs...)
		if r.Idle != nil {
			m.Idle = r.Idle
		}
	}
	return out
}

// runKey identifies a run across brokers.
type runKey struct {
	workload Workload
	qos      byte
	rate     float64
	realTime bool
}

func keyOf(r Result) runKey { return runKey{r.Workload, r.QoS, r.Rate, r.RealTime} }

// mode names the key's mode for tables: "full" or "rate 2.0k/s", with " RT"
// for runs at real-time priority.
func (k runKey) mode() string {
	mode := "full"
	if k.rate > 0 {
		mode = "rate " + FormatRate(k.rate) + "/s"
	}
	if k.realTime {
		mode += " RT"
	}
	return mode
}

// rounds returns the broker's successful runs for k, in the order they ran.
// A key has several when the run was repeated in rounds, as `make bench`
// does for the fixed-rate runs, whose p99 one scheduling stall of the shared
// machine can decide.
func (r Record) rounds(k runKey) []Result {
	var out []Result
	for _, res := range r.Runs {
		if keyOf(res) == k && res.Error == "" && res.Delivered > 0 {
			out = append(out, res)
		}
	}
	return out
}

// find returns the broker's result for k: its only successful run or, for a
// repeated run, the first round with every figure replaced by the median
// over the rounds. A median keeps one unlucky round from deciding a
// comparison, where a mean would let it.
func (r Record) find(k runKey) (Result, bool) {
	runs := r.rounds(k)
	if len(runs) == 0 {
		return Result{}, false
	}
	m := runs[0]
	if len(runs) == 1 {
		return m, true
	}
	m.MessagesPerSec = medianOf(runs, func(r Result) float64 { return r.MessagesPerSec })
	m.P50Micros = medianOf(runs, func(r Result) float64 { return r.P50Micros })
	m.P99Micros = medianOf(runs, func(r Result) float64 { return r.P99Micros })
	m.MaxMicros = medianOf(runs, func(r Result) float64 { return r.MaxMicros })
	m.ToolCPUPercent = medianOf(runs, func(r Result) float64 { return r.ToolCPUPercent })
	m.BrokerCPUPercent = medianOf(runs, func(r Result) float64 { return r.BrokerCPUPercent })
	return m, true
}

// medianOf returns the median of f over runs; the mean of the middle two
// for an even count.
func medianOf(runs []Result, f func(Result) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// loadRange returns the lowest and highest 1-minute load average seen at
// the start of the broker's runs; ok is false when none was recorded.
func (r Record) loadRange() (lo, hi float64, ok bool) {
	add := func(s string) {
		f := strings.Fields(s)
		if len(f) == 0 {
			return
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return
		}
		if !ok || v < lo {
			lo = v
		}
		if !ok || v > hi {
			hi = v
		}
		ok = true
	}
	add(r.LoadAverage)
	for _, res := range r.Runs {
		add(res.LoadAverage)
	}
	return lo, hi, ok
}

// WriteMarkdown renders the report as Markdown.
func WriteMarkdown(w io.Writer, in ReportInput) error {
	records := MergeRecords(in.Records)
	if len(records) == 0 {
		return fmt.Errorf("no benchmark records to report")
	}
	subject := records[0]
	others := records[1:]
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("# Benchmarks\n\n")
	p("Generated by `%s` on %s; rerun it to refresh the figures. Edit only the part below the\n",
		in.Command, in.Date.UTC().Format("2006-01-02 15:04 MST"))
	p("marker at the end (what limits the figures), which the command keeps.\n\n")
	p("The brokers run on 127.0.0.1 with the settings under Settings, and the load tool `fleetmq-bench`\n")
	p("(cmd/fleetmq-bench, test/bench) runs on the **same %d cores**: every CPU cycle the tool spends\n", in.Machine.CPUs)
	p("is one the broker does not get, so absolute figures are lower than with a separate load generator.\n")
	p("The machine is shared, so its load (below) varies during a run: the brokers take turns workload by\n")
	p("workload rather than one after the other, and the comparison between brokers is the point.\n\n")

	p("## Machine\n\n")
	p("| | |\n|---|---|\n")
	p("| CPUs (nproc) | %d |\n", in.Machine.CPUs)
	p("| CPU model | %s |\n", in.Machine.Model)
	p("| Kernel | %s |\n", in.Machine.Kernel)
	p("| Go | %s |\n", in.Machine.GoVersion)
	if in.Machine.MosquittoVersion != "" {
		p("| Mosquitto | %s |\n", in.Machine.MosquittoVersion)
	}
	for _, r := range records {
		state := r.Version
		if state == "" {
			state = "-"
		}
		if r.Unavailable != "" {
			state += " — **not measured**: " + r.Unavailable
		}
		if lo, hi, ok := r.loadRange(); ok {
			state += fmt.Sprintf(" (1-minute load average %.1f–%.1f at the start of its runs)", lo, hi)
		}
		p("| Broker `%s` | %s |\n", r.Broker, state)
	}
	p("\n")

	writeTargets(&b, in, subject, others)

	p("## Throughput and latency\n\n")
	p("msg/s is distinct messages delivered to subscribers per second, from the first publish to the\n")
	p("last delivery. p50/p99 are end-to-end latencies (publisher stamp to subscriber read). Full-speed\n")
	p("rows measure capacity, so their latency is mostly queueing; the fixed-rate rows measure latency.\n")
	if n := maxRounds(records); n > 1 {
		p("A run repeated in rounds shows the median of each figure over its rounds (up to %d; every\n", n)
		p("round's p99 is listed under \"Fixed-rate p99 in each round\").\n")
	}
	if len(others) > 0 {
		p("The ratio columns compare `%s` with each other broker: delivered msg/s at full speed, p99 at the\n", subject.Broker)
		p("fixed rate (below 1.00× is better there).\n")
	}
	p("\n")
	for _, wl := range Workloads {
		keys := runKeys(records, wl)
		if len(keys) == 0 {
			continue
		}
		p("### %s\n\n", describeWorkload(wl, records))
		p("| QoS | mode |")
		for _, r := range records {
			p(" %s msg/s | p50 | p99 |", r.Broker)
		}
		for _, o := range others {
			p(" %s/%s |", subject.Broker, o.Broker)
		}
		p("\n|---|---|")
		for range records {
			p("--:|--:|--:|")
		}
		for range others {
			p("--:|")
		}
		p("\n")
		for _, k := range keys {
			p("| %d | %s |", k.qos, k.mode())
			for _, r := range records {
				if res, ok := r.find(k); ok {
					p(" %s | %s | %s |", FormatRate(res.MessagesPerSec), FormatMicros(res.P50Micros), FormatMicros(res.P99Micros))
				} else {
					p(" – | – | – |")
				}
			}
			for _, o := range others {
				p(" %s |", ratioCell(subject, o, k))
			}
			p("\n")
		}
		p("\n")
		writeLosses(&b, records, keys)
	}

	writeRounds(&b, records)
	writeIdle(&b, records)
	writeCPU(&b, in.Machine.CPUs, records)
	writeMicro(&b, in)
	writeSettings(&b, in, records)

	b.WriteString("\n")
	if in.HandWritten != "" {
		b.WriteString(in.HandWritten)
	} else {
		b.WriteString(HandWrittenMarker + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// allKeys returns every run key of the records, workload by workload in
// report order.
func allKeys(records []Record) []runKey {
	var keys []runKey
	for _, wl := range Workloads {
		keys = append(keys, runKeys(records, wl)...)
	}
	return keys
}

func runKeys(records []Record, wl Workload) []runKey {
	var keys []runKey
	for _, r := range records {
		for _, res := range r.Runs {
			k := keyOf(res)
			if res.Workload == wl && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.SortFunc(keys, func(a, b runKey) int {
		// Full speed first, then by rate; QoS ascending within.
		if (a.rate > 0) != (b.rate > 0) {
			if a.rate > 0 {
				return 1
			}
			return -1
		}
		if a.rate != b.rate {
			if a.rate < b.rate {
				return -1
			}
			return 1
		}
		if a.realTime != b.realTime {
			// Real-time rounds first: they are what the latency target uses.
			if a.realTime {
				return -1
			}
			return 1
		}
		return int(a.qos) - int(b.qos)
	})
	return keys
}

func describeWorkload(wl Workload, records []Record) string {
	var pubs, subs int
	for _, r := range records {
		for _, res := range r.Runs {
			if res.Workload == wl {
				pubs, subs = res.Publishers, res.Subscribers
			}
		}
	}
	switch wl {
	case FanIn:
		return fmt.Sprintf("fan-in: %d publishers → 1 wildcard subscriber", pubs)
	case FanOut:
		return fmt.Sprintf("fan-out: 1 publisher → %d subscribers", subs)
	case Pairs:
		return fmt.Sprintf("point-to-point: %d publisher/subscriber pairs", pubs)
	case Shared:
		return fmt.Sprintf("shared subscription: %d publishers → 1 $share group of %d subscribers", pubs, subs)
	}
	return string(wl)
}

func ratioCell(subject, other Record, k runKey) string {
	a, ok1 := subject.find(k)
	b, ok2 := other.find(k)
	if !ok1 || !ok2 {
		return "n/a"
	}
	if k.rate > 0 {
		if b.P99Micros <= 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f× p99", a.P99Micros/b.P99Micros)
	}
	if b.MessagesPerSec <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a.MessagesPerSec/b.MessagesPerSec)
}

func writeLosses(b *strings.Builder, records []Record, keys []runKey) {
	var notes []string
	for _, r := range records {
		for _, k := range keys {
			round, total := 0, 0
			for _, res := range r.Runs {
				if keyOf(res) == k {
					total++
				}
			}
			for _, res := range r.Runs {
				if keyOf(res) != k {
					continue
				}
				round++
				mode := "full speed"
				if k.rate > 0 {
					mode = "fixed rate"
				}
				if k.realTime {
					mode += " RT"
				}
				if total > 1 {
					mode += fmt.Sprintf(" (round %d of %d)", round, total)
				}
				if res.Error != "" {
					notes = append(notes, fmt.Sprintf("`%s` QoS %d %s failed: %s", r.Broker, k.qos, mode, res.Error))
				}
				if res.Lost > 0 || res.Duplicated > 0 {
					pct := 100 * float64(res.Lost) / float64(max(res.Expected, 1))
					note := fmt.Sprintf("`%s` QoS %d %s: %d of %d deliveries lost, i.e. not received by the end of the run (%.1f%%), %d duplicated",
						r.Broker, k.qos, mode, res.Lost, res.Expected, pct, res.Duplicated)
					if res.BlockedPublishers > 0 {
						note += fmt.Sprintf("; %d of %d publishers were blocked writing when publishing stopped (the broker had stopped reading them)",
							res.BlockedPublishers, res.Publishers)
					}
					notes = append(notes, note)
				}
			}
		}
	}
	if len(notes) == 0 {
		fmt.Fprintf(b, "No delivery was lost or duplicated.\n\n")
		return
	}
	for _, n := range notes {
		fmt.Fprintf(b, "- %s\n", n)
	}
	b.WriteString("\n")
}

func writeTargets(b *strings.Builder, in ReportInput, subject Record, others []Record) {
	if len(in.Targets) == 0 && in.LatencyReference == "" && in.IdleTargetKiB == 0 {
		return
	}
	fmt.Fprintf(b, "## Targets for `%s`\n\n", subject.Broker)
	if subject.Unavailable != "" {
		fmt.Fprintf(b, "Not measured: %s.\n\n", subject.Unavailable)
		return
	}
	b.WriteString("| Target | Measured | Met |\n|---|---|---|\n")
	for _, t := range in.Targets {
		ref := recordNamed(others, t.Reference)
		label := fmt.Sprintf("delivered msg/s ≥ %.1f× %s, every workload at QoS 0 and 1", t.Ratio, t.Reference)
		if ref == nil || ref.Unavailable != "" {
			fmt.Fprintf(b, "| %s | %s not measured | – |\n", label, t.Reference)
			continue
		}
		worst, worstAt, compared := 0.0, "", 0
		for _, wl := range Workloads {
			for _, qos := range []byte{0, 1} {
				k := runKey{workload: wl, qos: qos}
				a, ok1 := subject.find(k)
				r, ok2 := ref.find(k)
				if !ok1 || !ok2 || r.MessagesPerSec <= 0 {
					continue
				}
				ratio := a.MessagesPerSec / r.MessagesPerSec
				if compared == 0 || ratio < worst {
					worst, worstAt = ratio, fmt.Sprintf("%s QoS %d", wl, qos)
				}
				compared++
			}
		}
		if compared == 0 {
			fmt.Fprintf(b, "| %s | no comparable runs | – |\n", label)
			continue
		}
		fmt.Fprintf(b, "| %s | lowest %.2f× (%s) over %d runs | %s |\n", label, worst, worstAt, compared, yesNo(worst >= t.Ratio))
	}
	if in.LatencyReference != "" {
		ref := recordNamed(others, in.LatencyReference)
		// One line for the real-time rounds, which measure the brokers, and
		// one for any rounds at normal priority, which measure the machine
		// as much; the former decide the target when there are any.
		classes := []bool{false}
		if hasRealTime(subject) {
			classes = []bool{true, false}
		}
		// The rounds paired decide when there are enough of them; with too
		// few, the per-cell medians of the deciding class do.
		decided := false
		if ref != nil {
			decided = writePairedTarget(b, in, subject, *ref, classes[0], len(classes) > 1)
		}
		for _, rt := range classes {
			writeLatencyTarget(b, in, subject, ref, rt, len(classes) > 1, !decided && rt == classes[0])
		}
		if ctl := recordNamed(others, in.LatencyControl); ref != nil && ctl != nil {
			writeLatencyControl(b, in, *ref, *ctl, classes[0])
			writePairedP99(b, *ref, *ctl, classes[0])
		}
	}
	if in.IdleTargetKiB > 0 {
		label := fmt.Sprintf("≤ %.0f KiB broker memory per idle connection", in.IdleTargetKiB)
		if subject.Idle == nil || subject.Idle.KiBPerConnection == 0 {
			fmt.Fprintf(b, "| %s | not measured | – |\n", label)
		} else {
			fmt.Fprintf(b, "| %s | %.1f KiB at %d connections | %s |\n", label, subject.Idle.KiBPerConnection, subject.Idle.Held, yesNo(subject.Idle.KiBPerConnection <= in.IdleTargetKiB))
		}
	}
	b.WriteString("\n")
}

func recordNamed(records []Record, name string) *Record {
	for i := range records {
		if records[i].Broker == name {
			return &records[i]
		}
	}
	return nil
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func writeIdle(b *strings.Builder, records []Record) {
	any := false
	for _, r := range records {
		any = any || r.Idle != nil
	}
	if !any {
		return
	}
	b.WriteString("## Idle connections\n\n")
	b.WriteString("Broker resident memory (VmRSS) growth per connection: a freshly started broker, N idle\n")
	b.WriteString("MQTT 3.1.1 connections (keepalive 60 s, clean session, no subscriptions) opened from\n")
	b.WriteString("127.0.0.x source addresses, measured after the settle time, before they close.\n\n")
	b.WriteString("| broker | connections held | failed | connect time | RSS before | RSS after | KiB / connection |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range records {
		if r.Idle == nil {
			fmt.Fprintf(b, "| %s | – | – | – | – | – | – |\n", r.Broker)
			continue
		}
		i := r.Idle
		fmt.Fprintf(b, "| %s | %d of %d | %d | %.1f s | %s | %s | **%.1f** |\n", r.Broker, i.Held, i.Connections, i.Failed,
			i.ConnectSeconds, formatKiB(i.RSSBeforeKiB), formatKiB(i.RSSAfterKiB), i.KiBPerConnection)
	}
	b.WriteString("\n")
}

func formatKiB(kib int64) string {
	if kib >= 10*1024 {
		return fmt.Sprintf("%.0f MiB", float64(kib)/1024)
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

func writeCPU(b *strings.Builder, cpus int, records []Record) {
	b.WriteString("## CPU: load tool and broker\n\n")
	b.WriteString("CPU time over the run's wall time, in % of one core (the machine has ")
	fmt.Fprintf(b, "%d cores, i.e. %d%% in all).\n", cpus, 100*cpus)
	b.WriteString("`tool` is the load generator, `broker` the broker process.\n\n")
	b.WriteString("| workload | QoS | mode |")
	for _, r := range records {
		fmt.Fprintf(b, " %s: tool | broker |", r.Broker)
	}
	b.WriteString("\n|---|---|---|")
	for range records {
		b.WriteString("--:|--:|")
	}
	b.WriteString("\n")
	for _, wl := range Workloads {
		for _, k := range runKeys(records, wl) {
			fmt.Fprintf(b, "| %s | %d | %s |", wl, k.qos, k.mode())
			for _, r := range records {
				if res, ok := r.find(k); ok {
					fmt.Fprintf(b, " %.0f%% | %.0f%% |", res.ToolCPUPercent, res.BrokerCPUPercent)
				} else {
					b.WriteString(" – | – |")
				}
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\n")
}

func writeSettings(b *strings.Builder, in ReportInput, records []Record) {
	b.WriteString("## Settings\n\n")
	var sample *Result
	for _, r := range records {
		for i := range r.Runs {
			if sample == nil {
				sample = &r.Runs[i]
			}
		}
	}
	if sample != nil {
		fmt.Fprintf(b, "- Every run: MQTT %s, %d-byte payload, clean session, publishers and subscribers at the\n", sample.Version, sample.PayloadSize)
		b.WriteString("  same QoS, bounded by a message count and a duration (see the commands), then up to a few\n")
		b.WriteString("  seconds for outstanding deliveries to drain. QoS 1/2 publishers keep a window of in-flight\n")
		b.WriteString("  messages (lowered to the broker's Receive Maximum under MQTT 5).\n")
		b.WriteString("- Fixed-rate rows: the rate is messages published per second over all publishers, paced\n")
		b.WriteString("  evenly (each publisher waits on a timerfd, staggered against the others); fan-out\n")
		b.WriteString("  delivers that rate times the number of subscribers.\n")
		b.WriteString("- Lost: expected deliveries not received by the end of the run, i.e. within the drain\n")
		b.WriteString("  limit after publishing stopped. At QoS 0 a broker may drop under overload by design, or\n")
		b.WriteString("  still hold a backlog when the run ends. Duplicated: a message received more than once\n")
		b.WriteString("  by the same subscriber or $share group.\n")
	}
	for _, n := range in.Notes {
		b.WriteString("- " + n + "\n")
	}
	b.WriteString("\n")

	if len(in.Commands) > 0 {
		b.WriteString("Commands run (ports are chosen free at run time):\n\n```sh\n")
		for _, c := range in.Commands {
			b.WriteString(c + "\n")
		}
		b.WriteString("```\n")
	}
}

// maxRounds returns the most rounds any run key of the records has.
func maxRounds(records []Record) int {
	n := 0
	for _, r := range records {
		for _, k := range allKeys(records) {
			n = max(n, len(r.rounds(k)))
		}
	}
	return n
}

// writeRounds lists the p99 of every round of the repeated runs, so that a
// reader sees how much the shared machine moved the figure the tables
// summarise with a median.
func writeRounds(b *strings.Builder, records []Record) {
	var keys []runKey
	for _, k := range allKeys(records) {
		for _, r := range records {
			if len(r.rounds(k)) > 1 {
				keys = append(keys, k)
				break
			}
		}
	}
	if len(keys) == 0 {
		return
	}
	b.WriteString("## Fixed-rate p99 in each round\n\n")
	b.WriteString("The p99 latency of each round, in the order they ran; the tables above show the median.\n")
	b.WriteString("One stall of the shared machine during a round (another process holding the CPU that the\n")
	b.WriteString("broker or the tool was about to run on) decides that round's p99.\n\n")
	b.WriteString("| workload | QoS | mode |")
	for _, r := range records {
		fmt.Fprintf(b, " %s |", r.Broker)
	}
	b.WriteString("\n|---|---|---|")
	for range records {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, k := range keys {
		fmt.Fprintf(b, "| %s | %d | %s |", k.workload, k.qos, k.mode())
		for _, r := range records {
			var cells []string
			for _, res := range r.rounds(k) {
				cells = append(cells, FormatMicros(res.P99Micros))
			}
			if len(cells) == 0 {
				cells = []string{"–"}
			}
			fmt.Fprintf(b, " %s |", strings.Join(cells, " · "))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

// hasRealTime reports whether any of the record's runs ran at real-time
// priority.
func hasRealTime(r Record) bool {
	for _, res := range r.Runs {
		if res.RealTime {
			return true
		}
	}
	return false
}

// p99Ratio is a's fixed-rate p99 over b's in one cell of the tables.
type p99Ratio struct {
	key   runKey
	a, b  float64 // p99 in microseconds
	ratio float64
}

// p99Ratios compares the fixed-rate p99 of two records, cell by cell, for
// the runs of one scheduling class.
func p99Ratios(a, b Record, realTime bool) []p99Ratio {
	var out []p99Ratio
	for _, k := range allKeys([]Record{a}) {
		if k.rate <= 0 || k.realTime != realTime {
			continue
		}
		ra, ok1 := a.find(k)
		rb, ok2 := b.find(k)
		if !ok1 || !ok2 || rb.P99Micros <= 0 {
			continue
		}
		out = append(out, p99Ratio{key: k, a: ra.P99Micros, b: rb.P99Micros, ratio: ra.P99Micros / rb.P99Micros})
	}
	return out
}

func (r p99Ratio) String() string {
	return fmt.Sprintf("%s QoS %d: %s vs %s", r.key.workload, r.key.qos, FormatMicros(r.a), FormatMicros(r.b))
}

// classLabel names the scheduling class of a target line when the report
// has rounds of both.
func classLabel(realTime, split bool) string {
	switch {
	case !split:
		return ""
	case realTime:
		return ", real-time priority (RT rows)"
	default:
		return ", normal priority"
	}
}

// writeLatencyTarget writes the per-cell fixed-rate p99 line for the runs
// of one scheduling class: the highest ratio of the medians over a cell's
// rounds. It decides the target only when the rounds are too few to pair
// (see writePairedTarget); otherwise it is shown for information.
func writeLatencyTarget(b *strings.Builder, in ReportInput, subject Record, ref *Record, realTime, split, decides bool) {
	label := fmt.Sprintf("p99 at the fixed rate ≤ %s's in every cell%s", in.LatencyReference, classLabel(realTime, split))
	if !decides {
		label += " (for information)"
	}
	var cells []p99Ratio
	if ref != nil {
		cells = p99Ratios(subject, *ref, realTime)
	}
	if len(cells) == 0 {
		fmt.Fprintf(b, "| %s | no comparable runs | – |\n", label)
		return
	}
	worst, over := cells[0], 0
	for _, c := range cells {
		if c.ratio > worst.ratio {
			worst = c
		}
		if c.ratio > 1 {
			over++
		}
	}
	met := "–"
	if decides {
		met = yesNo(worst.ratio <= 1)
	}
	fmt.Fprintf(b, "| %s | highest %.2f× (%s); above %s's in %d of %d | %s |\n",
		label, worst.ratio, worst, in.LatencyReference, over, len(cells), met)
}

// writeLatencyControl writes, for information, how far the reference
// broker's p99 lies from that of a second instance of itself in the same
// rounds: an A/A comparison, whose spread is the resolution of the target
// line above it.
func writeLatencyControl(b *strings.Builder, in ReportInput, ref, ctl Record, realTime bool) {
	cells := p99Ratios(ref, ctl, realTime)
	if len(cells) == 0 {
		return
	}
	lo, hi := cells[0], cells[0]
	for _, c := range cells {
		if c.ratio < lo.ratio {
			lo = c
		}
		if c.ratio > hi.ratio {
			hi = c
		}
	}
	fmt.Fprintf(b, "| resolution (for information): %s's p99 against `%s`, a second instance of it in the same rounds | %.2f× (%s) to %.2f× (%s) | – |\n",
		in.LatencyReference, in.LatencyControl, lo.ratio, lo, hi.ratio, hi)
}

// pairedP99 is the fixed-rate p99 of two brokers compared round by round
// over every cell: each round ran both brokers within seconds of each
// other, so the machine they met was nearly the same, and pooling the
// cells gives many more pairs than any one cell has rounds.
type pairedP99 struct {
	ratios []float64 // a's p99 over b's, one per paired round, sorted
	lower  int       // rounds in which a's p99 was the lower
}

// pairP99 pairs the i-th round of a with the i-th round of b in each
// fixed-rate cell of one scheduling class. A cell in which either broker
// lost a round is left out rather than paired out of step.
func pairP99(a, b Record, realTime bool) pairedP99 {
	var out pairedP99
	for _, k := range allKeys([]Record{a}) {
		if k.rate <= 0 || k.realTime != realTime {
			continue
		}
		ra, rb := a.rounds(k), b.rounds(k)
		if len(ra) != len(rb) {
			continue
		}
		for i := range ra {
			if ra[i].P99Micros <= 0 || rb[i].P99Micros <= 0 {
				continue
			}
			out.ratios = append(out.ratios, ra[i].P99Micros/rb[i].P99Micros)
			if ra[i].P99Micros < rb[i].P99Micros {
				out.lower++
			}
		}
	}
	slices.Sort(out.ratios)
	return out
}

// median returns the median ratio.
func (p pairedP99) median() float64 {
	n := len(p.ratios)
	if n%2 == 1 {
		return p.ratios[n/2]
	}
	return (p.ratios[n/2-1] + p.ratios[n/2]) / 2
}

// interval95 returns a distribution-free 95% confidence interval for the
// median ratio: the k-th smallest and k-th largest ratio, for the largest k
// at which a fair coin shows fewer than k heads in n tosses with a
// probability of at most 2.5%. It assumes nothing about how a round's p99
// is distributed, which on a shared machine has a long tail of stalled
// rounds. ok is false when there are too few pairs (n < 6) for any k.
func (p pairedP99) interval95() (lo, hi float64, ok bool) {
	n := len(p.ratios)
	k := 0
	cdf := 0.0 // P(X <= j) for X ~ Bin(n, 1/2)
	for j := 0; j < n/2; j++ {
		cdf += math.Exp(logChoose(n, j) - float64(n)*math.Ln2) // in logs: 2^-n underflows past n = 1074
		if cdf > 0.025 {
			break
		}
		k = j + 1
	}
	if k == 0 {
		return 0, 0, false
	}
	return p.ratios[k-1], p.ratios[n-k], true
}

// writePairedTarget writes the line that decides the fixed-rate p99
// target: subject's p99 over the reference's, round by round over every
// cell of the class that decides (real-time priority when there is any),
// is no worse when the 95% interval of the median ratio reaches down to
// 1.00×, that is, when the runs give no evidence that the subject's p99 is
// the higher. Per cell, eight rounds cannot tell two equal brokers apart
// (each cell's side of 1.00× is a coin toss; Mosquitto against a second
// instance of itself lands above it in some cells of every run), whereas
// a broker 10% slower at p99 puts the whole interval above 1.00× with the
// 64 pairs of `make bench`. It returns false, having written nothing that
// decides, when there are too few rounds for an interval.
func writePairedTarget(b *strings.Builder, in ReportInput, subject, ref Record, realTime, split bool) bool {
	p := pairP99(subject, ref, realTime)
	lo, hi, ok := p.interval95()
	if !ok {
		writePairedP99(b, subject, ref, realTime)
		return false
	}
	fmt.Fprintf(b, "| p99 at the fixed rate no worse than %s's%s: round by round, every cell pooled, the 95%% interval of the median ratio reaches 1.00× | %.2f× (95%% interval %.2f–%.2f×) over %d rounds; lower in %d | %s |\n",
		ref.Broker, classLabel(realTime, split), p.median(), lo, hi, len(p.ratios), p.lower, yesNo(lo <= 1))
	return true
}

// writePairedP99 writes, for information, the round-by-round comparison of
// a's fixed-rate p99 with b's over every cell: a finer reading of the same
// runs than the per-cell medians, because it pools every round.
func writePairedP99(b *strings.Builder, a, ref Record, realTime bool) {
	p := pairP99(a, ref, realTime)
	if len(p.ratios) == 0 {
		return
	}
	interval := "too few rounds for a 95% interval"
	if lo, hi, ok := p.interval95(); ok {
		interval = fmt.Sprintf("95%% interval %.2f–%.2f×", lo, hi)
	}
	fmt.Fprintf(b, "| round by round (for information): median of %s's p99 over %s's in the same round, every cell pooled | %.2f× (%s) over %d rounds; lower in %d | – |\n",
		a.Broker, ref.Broker, p.median(), interval, len(p.ratios), p.lower)
}

// logChoose returns the natural logarithm of n choose k.
func logChoose(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}
