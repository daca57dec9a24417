// Package bench is FleetMQ's MQTT load generator: the workloads behind the
// fleetmq-bench command and `make bench`, usable against any MQTT broker.
//
// A run connects subscribers first, then publishers, publishes stamped
// messages for a bounded count and duration (at full speed or at a fixed
// rate), waits for the deliveries to drain, and reports delivered messages
// per second, end-to-end latency quantiles and lost and duplicated
// deliveries. The client is a minimal one built on broker/packet, written to
// leave as much CPU as possible to the broker under test.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// Workload is the shape of a run: who publishes to whom.
type Workload string

// The workloads. N is Config.Clients and M is Config.SharedPublishers.
const (
	// FanIn has N publishers on distinct topics and one subscriber to a
	// wildcard filter that matches them all.
	FanIn Workload = "fanin"
	// FanOut has one publisher and N subscribers to its topic.
	FanOut Workload = "fanout"
	// Pairs has N publisher/subscriber pairs, each on its own topic.
	Pairs Workload = "pairs"
	// Shared has M publishers and N subscribers in one $share group whose
	// filter matches every publisher's topic.
	Shared Workload = "shared"
)

// Workloads lists every workload in the order reports show them.
var Workloads = []Workload{FanIn, FanOut, Pairs, Shared}

// ParseWorkload checks a workload name.
func ParseWorkload(s string) (Workload, error) {
	for _, w := range Workloads {
		if string(w) == s {
			return w, nil
		}
	}
	return "", fmt.Errorf("unknown workload %q (want one of fanin, fanout, pairs, shared)", s)
}

// ParseVersion maps "3.1.1" or "5" to a protocol level.
func ParseVersion(s string) (packet.Version, error) {
	switch s {
	case "3.1.1", "311", "4":
		return packet.V311, nil
	case "5", "5.0":
		return packet.V5, nil
	}
	return 0, fmt.Errorf("unknown MQTT version %q (want 3.1.1 or 5)", s)
}

// Config describes one run.
type Config struct {
	// Addr is the broker's TCP address, host:port.
	Addr string
	// Version is the MQTT protocol level of every connection; default 3.1.1.
	Version packet.Version
	// Workload is the shape of the run.
	Workload Workload
	// QoS is used both to publish and to subscribe.
	QoS byte
	// Clients is N: publishers for fan-in, subscribers for fan-out and
	// shared, pairs for pairs. Default 8.
	Clients int
	// SharedPublishers is M, the publishers of the shared workload. Default 4.
	SharedPublishers int
	// Messages bounds the messages published in the run, over all
	// publishers. Default 1,000,000.
	Messages uint64
	// Duration bounds the publishing phase. Default 5s.
	Duration time.Duration
	// Rate, when above 0, paces publishing to this many messages per
	// second over all publishers; 0 publishes at full speed.
	Rate float64
	// PayloadSize is the size of every payload in bytes, at least
	// MinPayloadSize. Default 64.
	PayloadSize int
	// Inflight is the window of unacknowledged QoS 1/2 messages per
	// publisher, lowered to the broker's Receive Maximum (MQTT 5). Default
	// 20: MQTT 3.1.1 has no way for a broker to announce its limit, and
	// Mosquitto silently drops (with a PUBREC) incoming QoS 2 messages
	// beyond its max_inflight_messages, which defaults to 20.
	Inflight int
	// DrainIdle ends the wait for outstanding deliveries after this long
	// without progress. Default 2s.
	DrainIdle time.Duration
	// DrainMax bounds the whole wait for outstanding deliveries. Default 10s.
	DrainMax time.Duration
	// ConnectTimeout bounds each connection's handshake. Default 5s.
	ConnectTimeout time.Duration
	// BrokerPID, when above 0, is the broker's process id on this machine;
	// the run then reports the CPU the broker used.
	BrokerPID int
	// ProxyProtocol makes every connection start with a PROXY protocol v2
	// header, as a load balancer in front of the broker would, for a
	// listener that expects one.
	ProxyProtocol bool
}

func (c Config) withDefaults() Config {
	if c.Version == 0 {
		c.Version = packet.V311
	}
	if c.Clients == 0 {
		c.Clients = 8
	}
	if c.SharedPublishers == 0 {
		c.SharedPublishers = 4
	}
	if c.Messages == 0 {
		c.Messages = 1_000_000
	}
	if c.Duration == 0 {
		c.Duration = 5 * time.Second
	}
	if c.PayloadSize == 0 {
		c.PayloadSize = 64
	}
	if c.Inflight == 0 {
		c.Inflight = 20
	}
	if c.DrainIdle == 0 {
		c.DrainIdle = 2 * time.Second
	}
	if c.DrainMax == 0 {
		c.DrainMax = 10 * time.Second
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	return c
}

func (c Config) validate() error {
	if _, err := ParseWorkload(string(c.Workload)); err != nil {
		return err
	}
	if c.QoS > 2 {
		return fmt.Errorf("QoS %d is not 0, 1 or 2", c.QoS)
	}
	if c.Clients < 1 || c.SharedPublishers < 1 {
		return errors.New("clients and shared publishers must be at least 1")
	}
	if c.PayloadSize < MinPayloadSize {
		return fmt.Errorf("payload size %d is below the %d-byte stamp", c.PayloadSize, MinPayloadSize)
	}
	if c.Inflight < 1 || c.Inflight > 65535 {
		return fmt.Errorf("in-flight window %d is not within 1..65535", c.Inflight)
	}
	if c.Rate < 0 {
		return fmt.Errorf("rate %v is negative", c.Rate)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("broker address %q: %w", c.Addr, err)
	}
	return nil
}

// Result is the outcome of one run. Latencies are end to end: from the
// publisher stamping a message (just before it is written) to the
// subscriber's read returning it.
type Result struct {
	Workload     Workload `json:"workload"`
	QoS          byte     `json:"qos"`
	Version      string   `json:"mqtt_version"`
	Rate         float64  `json:"rate,omitempty"` // target, messages/s; 0 for full speed
	Publishers   int      `json:"publishers"`
	Subscribers  int      `json:"subscribers"`
	PayloadSize  int      `json:"payload_size"`
	Inflight     int      `json:"inflight,omitempty"` // effective window for QoS 1/2
	Published    uint64   `json:"published"`          // messages written by the publishers
	Acknowledged uint64   `json:"acknowledged"`       // QoS 1/2 messages fully acknowledged
	Rejected     uint64   `json:"rejected,omitempty"` // acknowledged with an error reason code
	Expected     uint64   `json:"expected"`           // deliveries the subscriptions call for
	Delivered    uint64   `json:"delivered"`          // distinct deliveries received
	Lost         uint64   `json:"lost"`               // expected but not received when the run ended
	Duplicated   uint64   `json:"duplicated"`         // received more than once
	Foreign      uint64   `json:"foreign,omitempty"`  // not published by this run
	// BlockedPublishers counts QoS 0 publishers whose write was still
	// blocked when the publishing time ran out: the broker had stopped
	// reading from them.
	BlockedPublishers int     `json:"blocked_publishers,omitempty"`
	PublishSeconds    float64 `json:"publish_seconds"` // publishing phase
	Seconds           float64 `json:"seconds"`         // first publish to last delivery
	MessagesPerSec    float64 `json:"msgs_per_sec"`    // Delivered / Seconds
	P50Micros         float64 `json:"p50_us"`
	P99Micros         float64 `json:"p99_us"`
	MaxMicros         float64 `json:"max_us"`
	ToolCPUPercent    float64 `json:"tool_cpu_pct"`             // this process, % of one core
	BrokerCPUPercent  float64 `json:"broker_cpu_pct,omitempty"` // with Config.BrokerPID
	// LoadAverage is the machine's 1, 5 and 15 minute load averages when
	// the run started: on a shared machine, other work skews the figures.
	LoadAverage string `json:"load_average,omitempty"`
	// RealTime is set when the tool ran under a real-time scheduling
	// policy (SCHED_FIFO or SCHED_RR, e.g. started with chrt), as `make
	// bench` runs the fixed-rate rounds: other processes then cannot delay
	// the tool's (or, given the same policy, the broker's) wake-ups.
	RealTime bool   `json:"realtime,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Mode names full speed or the fixed rate, for tables.
func (r Result) Mode() string {
	mode := "full"
	if r.Rate > 0 {
		mode = "rate " + strconv.FormatFloat(r.Rate, 'f', -1, 64) + "/s"
	}
	if r.RealTime {
		mode += " RT"
	}
	return mode
}

// topology is the workload's clients and subscriptions.
type topology struct {
	pubTopics []string
	subs      []subSpec
	groups    int
}

type subSpec struct {
	filter string
	group  int   // receiver group index
	from   []int // publishers whose messages this subscriber's group receives
}

func (c Config) topology(prefix string) topology {
	var t topology
	n := c.Clients
	switch c.Workload {
	case FanIn:
		all := make([]int, n)
		for i := range n {
			t.pubTopics = append(t.pubTopics, fmt.Sprintf("%s/fanin/%d", prefix, i))
			all[i] = i
		}
		t.subs = []subSpec{{filter: prefix + "/fanin/+", group: 0, from: all}}
		t.groups = 1
	case FanOut:
		t.pubTopics = []string{prefix + "/fanout"}
		for i := range n {
			t.subs = append(t.subs, subSpec{filter: prefix + "/fanout", group: i, from: []int{0}})
		}
		t.groups = n
	case Pairs:
		for i := range n {
			topic := fmt.Sprintf("%s/pair/%d", prefix, i)
			t.pubTopics = append(t.pubTopics, topic)
			t.subs = append(t.subs, subSpec{filter: topic, group: i, from: []int{i}})
		}
		t.groups = n
	case Shared:
		m := c.SharedPublishers
		all := make([]int, m)
		for i := range m {
			t.pubTopics = append(t.pubTopics, fmt.Sprintf("%s/shared/%d", prefix, i))
			all[i] = i
		}
		// One $share group: each message goes to exactly one member.
		filter := fmt.Sprintf("$share/%s/%s/shared/+", strings.ReplaceAll(prefix, "/", "-"), prefix)
		for range n {
			t.subs = append(t.subs, subSpec{filter: filter, group: 0, from: all})
		}
		t.groups = 1
	}
	return t
}

// Run performs one bounded run against the broker. It returns an error when
// the run could not be set up (a connection or subscription refused); a
// failure during the run is returned together with the partial result.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	var tagBytes [4]byte
	if _, err := rand.Read(tagBytes[:]); err != nil {
		return Result{}, fmt.Errorf("generating run tag: %w", err)
	}
	tag := binary.LittleEndian.Uint32(tagBytes[:])
	prefix := fmt.Sprintf("fleetmq-bench/%08x", tag)
	topo := cfg.topology(prefix)
	pubs := len(topo.pubTopics)

	// Each publisher's share of the message bound; the first ones take the
	// remainder.
	quotas := make([]uint64, pubs)
	for i := range quotas {
		quotas[i] = cfg.Messages / uint64(pubs)
		if uint64(i) < cfg.Messages%uint64(pubs) {
			quotas[i]++
		}
	}
	groups := make([]*receiverGroup, topo.groups)
	for _, s := range topo.subs {
		if groups[s.group] != nil {
			continue
		}
		g := &receiverGroup{seen: make([]*seenSet, pubs)}
		for _, p := range s.from {
			g.seen[p] = newSeenSet(quotas[p])
		}
		groups[s.group] = g
	}

	res := Result{
		Workload:    cfg.Workload,
		QoS:         cfg.QoS,
		Version:     cfg.Version.String(),
		Rate:        cfg.Rate,
		Publishers:  pubs,
		Subscribers: len(topo.subs),
		PayloadSize: cfg.PayloadSize,
		LoadAverage: LoadAverage(),
		RealTime:    realTimeScheduling(),
	}

	sources := sourceAddresses(cfg.Addr, pubs+len(topo.subs))
	opts := func(role string, i int) dialOptions {
		o := dialOptions{
			addr:        cfg.Addr,
			version:     cfg.Version,
			clientID:    fmt.Sprintf("fmqb-%08x-%s%d", tag, role, i),
			keepAlive:   60,
			timeout:     cfg.ConnectTimeout,
			proxyHeader: cfg.ProxyProtocol,
		}
		if len(sources) > 0 {
			o.localIP = sources[i%len(sources)]
		}
		return o
	}

	var (
		conns   []*conn
		readers sync.WaitGroup
		errMu   sync.Mutex
		runErr  error
	)
	fail := func(err error) {
		errMu.Lock()
		if runErr == nil {
			runErr = err
		}
		errMu.Unlock()
	}
	closing := make(chan struct{})
	startReader := func(c *conn, h packetHandler, name string) {
		readers.Add(1)
		go func() {
			defer readers.Done()
			err := c.readLoop(h)
			select {
			case <-closing:
			default:
				if err != nil {
					fail(fmt.Errorf("%s: connection lost: %w", name, err))
				}
			}
		}()
	}
	closeAll := func() {
		close(closing)
		for _, c := range conns {
			c.disconnect()
		}
		readers.Wait()
	}

	subs := make([]*subscriber, len(topo.subs))
	for i, spec := range topo.subs {
		c, err := dial(ctx, opts("s", i))
		if err != nil {
			closeAll()
			return res, err
		}
		conns = append(conns, c)
		if err := c.subscribe(spec.filter, cfg.QoS, cfg.ConnectTimeout); err != nil {
			closeAll()
			return res, err
		}
		subs[i] = &subscriber{c: c, tag: tag, group: groups[spec.group]}
		startReader(c, subs[i], fmt.Sprintf("subscriber %d", i))
	}
	publishers := make([]*publisher, pubs)
	for i, topic := range topo.pubTopics {
		c, err := dial(ctx, opts("p", i))
		if err != nil {
			closeAll()
			return res, err
		}
		conns = append(conns, c)
		window := cfg.Inflight
		if c.serverRecvMax > 0 && c.serverRecvMax < window {
			window = c.serverRecvMax // [MQTT-3.3.4-7]
		}
		res.Inflight = window
		rate := cfg.Rate / float64(pubs)
		publishers[i] = newPublisher(c, uint32(i), tag, []byte(topic), cfg.QoS, quotas[i], rate, cfg.PayloadSize, window)
		startReader(c, publishers[i], fmt.Sprintf("publisher %d", i))
	}
	if cfg.QoS == 0 {
		res.Inflight = 0
	}

	usageBefore := processCPU()
	brokerBefore := brokerCPU(cfg.BrokerPID)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var pubWG sync.WaitGroup
	for i, p := range publishers {
		// A QoS 0 stream still blocked in a write at the deadline ends
		// there (see endWith). With QoS 1/2 the window bounds what is
		// unwritten, so a write blocked long after the deadline means the
		// broker stopped serving the connection: give up rather than hang.
		writeDeadline := deadline
		if cfg.QoS > 0 {
			writeDeadline = deadline.Add(cfg.DrainMax)
		}
		_ = p.c.nc.SetWriteDeadline(writeDeadline)
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			// At a fixed rate, publishers start evenly staggered so that
			// their messages interleave into one evenly spaced stream.
			pubStart := start
			if cfg.Rate > 0 {
				pubStart = start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
			}
			if err := p.run(pubStart, deadline); err != nil {
				fail(fmt.Errorf("publisher %d: %w", i, err))
			}
		}()
	}
	stopTimer := time.AfterFunc(cfg.Duration, func() {
		for _, p := range publishers {
			p.stop()
		}
	})
	cancelStop := context.AfterFunc(ctx, func() {
		for _, p := range publishers {
			p.stop()
		}
	})
	pubWG.Wait()
	stopTimer.Stop()
	cancelStop()
	publishEnd := time.Now()

	var published uint64
	for _, p := range publishers {
		published += p.sent.Load()
	}
	var expected uint64
	for _, g := range groups {
		for p, s := range g.seen {
			if s != nil {
				expected += publishers[p].sent.Load()
			}
		}
	}
	drain(ctx, cfg, subs, publishers, expected)

	usageAfter := processCPU()
	brokerAfter := brokerCPU(cfg.BrokerPID)
	lastRecv := int64(0)
	for _, s := range subs {
		lastRecv = max(lastRecv, s.lastRecv.Load())
	}
	end := publishEnd
	if t := epoch.Add(time.Duration(lastRecv)); lastRecv > 0 && t.After(end) {
		end = t
	}
	closeAll()

	var hist histogram
	res.Published = published
	res.Expected = expected
	for _, s := range subs {
		hist.merge(&s.hist)
		res.Duplicated += s.duplicates
		res.Foreign += s.foreign
	}
	for _, g := range groups {
		for _, s := range g.seen {
			if s != nil {
				res.Delivered += s.unique()
			}
		}
	}
	if res.Expected > res.Delivered {
		res.Lost = res.Expected - res.Delivered
	}
	for _, p := range publishers {
		res.Acknowledged += p.acked.Load()
		res.Rejected += p.rejected.Load()
		if p.blocked.Load() {
			res.BlockedPublishers++
		}
	}
	res.PublishSeconds = publishEnd.Sub(start).Seconds()
	res.Seconds = end.Sub(start).Seconds()
	if res.Seconds > 0 {
		res.MessagesPerSec = float64(res.Delivered) / res.Seconds
	}
	res.P50Micros = micros(hist.quantile(0.50))
	res.P99Micros = micros(hist.quantile(0.99))
	res.MaxMicros = micros(time.Duration(hist.max))
	wall := end.Sub(start).Seconds()
	if wall > 0 {
		res.ToolCPUPercent = 100 * (usageAfter - usageBefore).Seconds() / wall
		if brokerBefore >= 0 && brokerAfter >= 0 {
			res.BrokerCPUPercent = 100 * (brokerAfter - brokerBefore).Seconds() / wall
		}
	}
	if runErr != nil {
		res.Error = runErr.Error()
	}
	return res, runErr
}

// drain waits until every expected delivery and acknowledgement has
// arrived, nothing has arrived for DrainIdle, DrainMax has passed, or ctx
// is done.
func drain(ctx context.Context, cfg Config, subs []*subscriber, pubs []*publisher, expected uint64) {
	const poll = 5 * time.Millisecond
	started := time.Now()
	lastProgress := started
	var lastCount uint64
	for {
		var got uint64
		for _, s := range subs {
			got += s.received.Load()
		}
		outstanding := 0
		for _, p := range pubs {
			outstanding += p.outstanding()
		}
		var acked uint64
		for _, p := range pubs {
			acked += p.acked.Load()
		}
		if got >= expected && outstanding == 0 {
			return
		}
		if got+acked != lastCount {
			lastCount = got + acked
			lastProgress = time.Now()
		}
		if time.Since(lastProgress) > cfg.DrainIdle || time.Since(started) > cfg.DrainMax || ctx.Err() != nil {
			return
		}
		time.Sleep(poll)
	}
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// sourceAddresses returns the local addresses to spread n connections over
// when the broker is on loopback: 127.0.0.2 upward, one per
// connsPerSourceIP connections. Each local address has its own ephemeral
// port range, so many connections (and the TIME_WAIT sockets earlier runs
// leave behind) cannot exhaust it. It returns nil for a non-loopback broker
// or few connections, leaving the choice to the kernel.
func sourceAddresses(addr string, n int) []net.IP {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() || n <= connsPerSourceIP {
		return nil
	}
	count := (n + connsPerSourceIP - 1) / connsPerSourceIP
	if count > 250 {
		count = 250
	}
	ips := make([]net.IP, count)
	for i := range ips {
		ips[i] = net.IPv4(127, 0, 0, byte(2+i))
	}
	return ips
}

// connsPerSourceIP is how many connections share one source address; well
// below the ~28,000 ephemeral ports of the default range.
const connsPerSourceIP = 1000
