// Command fleetmq-bench measures an MQTT broker at an address: throughput,
// end-to-end latency and delivery loss for fan-in, fan-out, point-to-point
// and shared-subscription workloads, and broker memory per idle connection.
// `make bench` (hack/bench.sh) runs it against fleetmq-broker, Mosquitto and
// mochi-mqtt and renders docs/benchmarks.md with its report subcommand.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetmq/fleetmq/broker/packet"
	"github.com/fleetmq/fleetmq/test/bench"
)

const usage = `fleetmq-bench measures an MQTT broker.

Usage:
  fleetmq-bench run     [flags]          throughput, latency and loss per workload and QoS
  fleetmq-bench idle    [flags]          broker memory per idle connection
  fleetmq-bench report  [flags] FILE...  render JSON results as Markdown
  fleetmq-bench probe   [flags]          wait until a broker accepts an MQTT connection
  fleetmq-bench freeport                 print a free TCP port on 127.0.0.1

Run "fleetmq-bench COMMAND -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = runCommand(ctx, args)
	case "idle":
		err = idleCommand(ctx, args)
	case "report":
		err = reportCommand(args)
	case "probe":
		err = probeCommand(ctx, args)
	case "freeport":
		err = freeportCommand()
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "fleetmq-bench: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "fleetmq-bench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// brokerFlags are the flags every measuring command shares.
type brokerFlags struct {
	addr          string
	mqtt          string
	pid           int
	broker        string
	brokerVersion string
	jsonPath      string
}

func (b *brokerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.addr, "addr", "127.0.0.1:1883", "broker address `host:port`")
	fs.StringVar(&b.mqtt, "mqtt", "3.1.1", "MQTT `version`: 3.1.1 or 5")
	fs.IntVar(&b.pid, "pid", 0, "broker process id on this machine, to report its CPU and memory")
	fs.StringVar(&b.broker, "broker", "broker", "broker `name` recorded in the JSON output")
	fs.StringVar(&b.brokerVersion, "broker-version", "", "broker `version` recorded in the JSON output")
	fs.StringVar(&b.jsonPath, "json", "", "also write the results as JSON to `file` (- for stdout)")
}

func (b *brokerFlags) version() (packet.Version, error) { return bench.ParseVersion(b.mqtt) }

func (b *brokerFlags) writeJSON(rec bench.Record) error {
	if b.jsonPath == "" {
		return nil
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	data = append(data, '\n')
	if b.jsonPath == "-" {
		_, err = os.Stdout.Write(data)
		return err
	}
	if err := os.WriteFile(b.jsonPath, data, 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

func runCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var bf brokerFlags
	bf.register(fs)
	workloads := fs.String("workloads", "fanin,fanout,pairs,shared", "comma-separated `list` of workloads: fanin, fanout, pairs, shared")
	qosList := fs.String("qos", "0,1,2", "comma-separated `list` of QoS levels; each workload runs at each")
	clients := fs.Int("clients", 8, "`N`: fan-in publishers, fan-out subscribers, pairs, shared subscribers")
	sharedPubs := fs.Int("shared-publishers", 4, "`M`: publishers of the shared workload")
	count := fs.Uint64("count", 1_000_000, "messages published per run at most, over all publishers")
	duration := fs.Duration("duration", 5*time.Second, "publishing time per run at most")
	rate := fs.Float64("rate", 0, "publish this many `messages/s` over all publishers, paced; 0 for full speed")
	size := fs.Int("size", 64, "payload `bytes`, at least 24 (the timestamp stamp)")
	inflight := fs.Int("inflight", 20, "QoS 1/2 `window` of unacknowledged messages per publisher (capped by the broker's Receive Maximum)")
	drainIdle := fs.Duration("drain-idle", 2*time.Second, "stop waiting for outstanding deliveries after this long without one")
	drainMax := fs.Duration("drain-max", 10*time.Second, "wait at most this long for outstanding deliveries")
	proxyProtocol := fs.Bool("proxy-protocol", false, "start every connection with a PROXY protocol v2 header, as a load balancer would")
	cpuProfile := fs.String("cpuprofile", "", "write the load tool's own CPU profile to `file`, to check that it stays lean")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	version, err := bf.version()
	if err != nil {
		return err
	}
	var wls []bench.Workload
	for _, s := range splitList(*workloads) {
		w, err := bench.ParseWorkload(s)
		if err != nil {
			return err
		}
		wls = append(wls, w)
	}
	var qoss []byte
	for _, s := range splitList(*qosList) {
		q, err := strconv.ParseUint(s, 10, 8)
		if err != nil || q > 2 {
			return fmt.Errorf("QoS %q is not 0, 1 or 2", s)
		}
		qoss = append(qoss, byte(q))
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("creating CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("starting CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	rec := bench.Record{Broker: bf.broker, Version: bf.brokerVersion, LoadAverage: bench.LoadAverage()}
	fmt.Println(bench.TableHeader())
	failed := 0
	for _, wl := range wls {
		for _, qos := range qoss {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res, err := bench.Run(ctx, bench.Config{
				Addr:             bf.addr,
				Version:          version,
				Workload:         wl,
				QoS:              qos,
				Clients:          *clients,
				SharedPublishers: *sharedPubs,
				Messages:         *count,
				Duration:         *duration,
				Rate:             *rate,
				PayloadSize:      *size,
				Inflight:         *inflight,
				DrainIdle:        *drainIdle,
				DrainMax:         *drainMax,
				BrokerPID:        bf.pid,
				ProxyProtocol:    *proxyProtocol,
			})
			if err != nil {
				failed++
				if res.Error == "" {
					// Set-up failed: record the run so that the report shows it.
					res.Workload, res.QoS, res.Rate, res.Error = wl, qos, *rate, err.Error()
				}
			}
			fmt.Println(res.TableRow())
			rec.Runs = append(rec.Runs, res)
		}
	}
	if err := bf.writeJSON(rec); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d runs failed", failed, len(rec.Runs))
	}
	return nil
}

func idleCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	var bf brokerFlags
	bf.register(fs)
	conns := fs.Int("conns", 15000, "idle connections to open and hold")
	keepAlive := fs.Uint("keepalive", 60, "keepalive `seconds` sent in CONNECT; the tool pings at half of it")
	settle := fs.Duration("settle", 5*time.Second, "hold the connections this long before measuring")
	concurrency := fs.Int("concurrency", 32, "handshakes in progress at once")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	version, err := bf.version()
	if err != nil {
		return err
	}
	if *keepAlive > 65535 {
		return fmt.Errorf("keepalive %d is above 65535", *keepAlive)
	}
	load := bench.LoadAverage()
	fmt.Fprintf(os.Stderr, "Opening %d idle connections to %s\n", *conns, bf.addr)
	res, err := bench.Idle(ctx, bench.IdleConfig{
		Addr:        bf.addr,
		Version:     version,
		Connections: *conns,
		KeepAlive:   uint16(*keepAlive),
		Settle:      *settle,
		Concurrency: *concurrency,
		BrokerPID:   bf.pid,
	})
	if err != nil {
		res.Error = err.Error()
	}
	fmt.Printf("connections %d, held %d, failed %d, connect %.1fs, source addresses %d\n",
		res.Connections, res.Held, res.Failed, res.ConnectSeconds, res.SourceAddresses)
	if bf.pid > 0 {
		fmt.Printf("broker RSS %d KiB -> %d KiB: %.2f KiB per connection\n", res.RSSBeforeKiB, res.RSSAfterKiB, res.KiBPerConnection)
	}
	if jerr := bf.writeJSON(bench.Record{Broker: bf.broker, Version: bf.brokerVersion, LoadAverage: load, Idle: &res}); jerr != nil {
		return jerr
	}
	return err
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ", ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func reportCommand(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	out := fs.String("o", "-", "write the Markdown to `file` (- for stdout)")
	command := fs.String("command", "make bench", "the command that regenerates the report")
	date := fs.String("date", "", "when the measurements were taken, RFC 3339 (default: now); kept when a run is rendered again")
	commandsFile := fs.String("commands", "", "`file` with the exact load-tool invocations, one per line")
	mosquittoVersion := fs.String("mosquitto-version", "", "Mosquitto version shown under Machine")
	targets := fs.String("targets", "mosquitto=1.5,mochi=1.2", "throughput targets for the first broker: `broker=ratio,...`")
	latencyRef := fs.String("latency-reference", "mosquitto", "broker whose fixed-rate p99 the first broker should not exceed")
	latencyControl := fs.String("latency-control", "", "`broker` that is a second instance of the latency reference, to show the run's resolution")
	idleTarget := fs.Float64("idle-target-kib", 8, "most KiB per idle connection for the first broker")
	microFile := fs.String("micro", "", "`file` with `go test -bench -benchmem` output to show as microbenchmarks")
	microCommand := fs.String("micro-command", "", "the `command` that produced -micro's output, shown in the report")
	var notes stringList
	fs.Var(&notes, "note", "extra `line` for the Settings section (repeatable)")
	fs.Parse(args)
	if fs.NArg() == 0 {
		return errors.New("no JSON result files given")
	}
	when := time.Now()
	if *date != "" {
		t, err := time.Parse(time.RFC3339, *date)
		if err != nil {
			return fmt.Errorf("-date %q: want RFC 3339, such as 2026-11-27T17:40:00Z", *date)
		}
		when = t
	}
	in := bench.ReportInput{
		Machine:          bench.DetectMachine(),
		Date:             when,
		Command:          *command,
		LatencyReference: *latencyRef,
		LatencyControl:   *latencyControl,
		IdleTargetKiB:    *idleTarget,
		Notes:            notes,
	}
	in.Machine.MosquittoVersion = *mosquittoVersion
	for _, t := range splitList(*targets) {
		name, ratio, ok := strings.Cut(t, "=")
		r, err := strconv.ParseFloat(ratio, 64)
		if !ok || err != nil || r <= 0 {
			return fmt.Errorf("target %q is not broker=ratio", t)
		}
		in.Targets = append(in.Targets, bench.ThroughputTarget{Reference: name, Ratio: r})
	}
	if *commandsFile != "" {
		data, err := os.ReadFile(*commandsFile)
		if err != nil {
			return fmt.Errorf("reading commands: %w", err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if line != "" {
				in.Commands = append(in.Commands, line)
			}
		}
	}
	if *microFile != "" {
		f, err := os.Open(*microFile)
		if err != nil {
			return fmt.Errorf("reading microbenchmarks: %w", err)
		}
		in.Micro, err = bench.ParseGoBench(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("microbenchmarks %s: %w", *microFile, err)
		}
		in.MicroCommand = *microCommand
	}
	if *out != "-" {
		// Keep what people wrote below the marker of the page being replaced.
		earlier, err := os.ReadFile(*out)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("reading the earlier report: %w", err)
		}
		in.HandWritten = bench.HandWritten(string(earlier))
	}
	for _, path := range fs.Args() {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading results: %w", err)
		}
		var rec bench.Record
		if err := json.Unmarshal(data, &rec); err != nil {
			return fmt.Errorf("decoding results %s: %w", path, err)
		}
		in.Records = append(in.Records, rec)
	}
	var w io.Writer = os.Stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("creating report: %w", err)
		}
		defer f.Close()
		w = f
	}
	if err := bench.WriteMarkdown(w, in); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

func probeCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:1883", "broker address `host:port`")
	mqtt := fs.String("mqtt", "3.1.1", "MQTT `version`: 3.1.1 or 5")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	fs.Parse(args)
	version, err := bench.ParseVersion(*mqtt)
	if err != nil {
		return err
	}
	return bench.Probe(ctx, *addr, version, *timeout)
}

// freeportCommand prints a TCP port that was free on 127.0.0.1 a moment
// ago, for scripts that start a broker.
func freeportCommand() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
