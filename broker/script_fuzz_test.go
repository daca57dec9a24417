package broker_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
)

// FuzzClientScripts turns each input into a script for up to three clients
// (connect, subscribe, publish, acknowledge or not, send garbage, take over
// each other's sessions, vanish) and plays it against one broker whose limits
// are small enough for the script to reach them. The codec fuzz targets only
// see one packet at a time; this one reaches the session, routing and flow
// control state that packets leave behind.
//
// It checks what a client would notice:
//   - everything the broker sends decodes, CONNACK comes first and once, and
//     nothing follows a refusal;
//   - only packets a server may send, DISCONNECT only to MQTT 5 clients;
//   - no packet above the client's Maximum Packet Size, no Topic Alias above
//     its Topic Alias Maximum or used before it was set;
//   - for an MQTT 5 client, never more QoS 1/2 messages unacknowledged than
//     its Receive Maximum, no packet identifier reused while in flight, and no
//     PUBREL for a message the client has not received;
//   - one SUBACK reason code per filter;
//   - no message on a topic that matches none of the filters the session's
//     client id has subscribed to;
//   - every delivery of a message a script published carries its payload
//     byte for byte, its topic and MQTT 5 properties, a QoS no higher than
//     it was published with or the session asked for, RETAIN only if it was
//     published retained, and does not go back to its publisher through
//     filters that all have No Local (script_messages_test.go);
//   - and after each script: no recovered panic, every connection closed by
//     the broker once its client is gone, and a new client still served.
func FuzzClientScripts(f *testing.F) {
	b := startScriptBroker(f)
	for _, seed := range fuzzSeedScripts {
		f.Add(seed)
	}
	var probes int
	f.Fuzz(func(t *testing.T, script []byte) {
		before := b.Stats().Snapshot()
		if v := playScript(t, b.Addr, script, testing.Verbose()); len(v) > 0 {
			t.Fatalf("the broker broke the protocol:\n  %s", strings.Join(v, "\n  "))
		}
		probes++
		expectRecovered(t, b, before, fmt.Sprintf("fz-probe/%d", probes))
	})
}

// TestConcurrentClientScripts plays random scripts from several goroutines at
// once, for a few seconds, against one broker. Their clients share client
// ids, so sessions are taken over, resumed and ended while messages flow
// between them, in interleavings the one-script-at-a-time fuzz target does
// not reach. It checks the same.
//
// The scripts come from FLEETMQ_SCRIPT_SEED: by default a fixed seed, so that
// CI plays the same scripts every time (their timing still varies);
// FLEETMQ_SCRIPT_SEED=random explores, and a number repeats a run's scripts.
func TestConcurrentClientScripts(t *testing.T) {
	b := startScriptBroker(t)
	seed := uint64(1)
	switch env := os.Getenv("FLEETMQ_SCRIPT_SEED"); env {
	case "":
	case "random":
		seed = uint64(time.Now().UnixNano())
	default:
		var err error
		if seed, err = strconv.ParseUint(env, 10, 64); err != nil {
			t.Fatalf("FLEETMQ_SCRIPT_SEED: %v", err)
		}
	}
	t.Logf("FLEETMQ_SCRIPT_SEED=%d", seed)
	before, judgedBefore, willsBefore := b.Stats().Snapshot(), scriptMessages.judged.Load(), scriptMessages.wills.Load()
	const players = 4
	deadline := time.Now().Add(3 * time.Second)
	found := make([][]string, players)
	var scripts atomic.Int64
	var wg sync.WaitGroup
	for i := range players {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Go(func() {
			for time.Now().Before(deadline) && len(found[i]) == 0 {
				found[i] = playScript(t, b.Addr, randomScript(rng), false)
				scripts.Add(1)
			}
		})
	}
	wg.Wait()
	after := b.Stats().Snapshot()
	t.Logf("%d scripts played: %d connections, %d messages received and %d sent, %d connections ended for a protocol error or malformed packet",
		scripts.Load(), after.ConnectionsAccepted-before.ConnectionsAccepted,
		sum(after.MessagesReceived)-sum(before.MessagesReceived), sum(after.MessagesSent)-sum(before.MessagesSent),
		after.ProtocolErrors+after.MalformedPackets-before.ProtocolErrors-before.MalformedPackets)
	t.Logf("%d deliveries checked against the message they came from, %d of them wills",
		scriptMessages.judged.Load()-judgedBefore, scriptMessages.wills.Load()-willsBefore)
	if v := slices.Concat(found...); len(v) > 0 {
		t.Fatalf("the broker broke the protocol:\n  %s", strings.Join(v, "\n  "))
	}
	expectRecovered(t, b, before, "fz-probe/concurrent")
	expectSessionsExpire(t, b, before)
}

// expectSessionsExpire checks that once every client has gone, nothing is
// left of their sessions after the longest session expiry the script broker
// allows: a session kept by a lost race would hold its subscriptions and
// queue for as long as the broker runs.
func expectSessionsExpire(t *testing.T, b *testBroker, before broker.StatsSnapshot) {
	t.Helper()
	const maxSessionExpiry = 5 * time.Second // startScriptBroker's limit
	gone := func() bool {
		st := b.Stats()
		return st.Sessions.Load() <= before.Sessions && st.Subscriptions.Load() <= before.Subscriptions
	}
	for deadline := time.Now().Add(maxSessionExpiry + rawWait); !gone() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !gone() {
		st := b.Stats()
		t.Fatalf("%d sessions and %d subscriptions still held %v after every client went away",
			st.Sessions.Load()-before.Sessions, st.Subscriptions.Load()-before.Subscriptions, maxSessionExpiry+rawWait)
	}
	// Nor may any of their goroutines: a reader, writer or farewell left
	// waiting would hold its connection's memory. This test runs on its
	// own (not in parallel), so every connection goroutine is the script
	// broker's.
	if stacks := connectionGoroutines(); len(stacks) > 0 {
		t.Fatalf("%d connection goroutines still running after every connection closed, the first:\n%s", len(stacks), stacks[0])
	}
}

// connectionGoroutines returns the stacks of the goroutines running a
// broker connection's code (reading, writing or saying farewell).
func connectionGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "broker.(*conn).") {
			out = append(out, g)
		}
	}
	return out
}

func sum(counts [3]int64) int64 { return counts[0] + counts[1] + counts[2] }

// startScriptBroker starts the broker scripts play against, with limits
// small enough for a script to reach.
func startScriptBroker(tb testing.TB) *testBroker {
	return startBroker(tb, func(c *config.Config, _ *broker.Options) {
		c.Limits.MaxPacketSize = 2048
		c.Limits.ReceiveMaximum = 4
		c.Limits.MaxInflight = 8
		c.Limits.MaxQueuedMessages = 32
		aliases := 4
		c.Limits.TopicAliasMaximum = &aliases
		c.Limits.MaxTopicLevels = 6
		c.Limits.MaxRetainedMessages = 16
		c.Limits.MaxSessionExpiry = 5
	})
}

// stepSize is the bytes of one script step: slot, operation and operands,
// padded with zeros. A fixed size keeps the fuzzer's mutations of one step
// from shifting every step after it.
const stepSize = 20

// playScript plays script to its end (at most 64 steps), closes its clients
// and returns what they found wrong.
func playScript(t *testing.T, addr string, script []byte, verbose bool) []string {
	run := &scriptRun{t: t, addr: addr, verbose: verbose}
	for steps := 0; len(script) > 0 && steps < 64; steps++ {
		n := min(stepSize, len(script))
		run.step(&scriptReader{data: script[:n]})
		script = script[n:]
	}
	return run.finish()
}

// framed joins steps into a script, padding each to stepSize.
func framed(steps ...[]byte) []byte {
	var script []byte
	for _, st := range steps {
		script = append(script, st...)
		script = append(script, make([]byte, stepSize-len(st))...)
	}
	return script
}

// randomScript is a script of up to 64 steps for TestConcurrentClientScripts:
// operations weighted towards publishing, operands at random. It keeps track
// of which slots it has connected, so that a CONNECT mostly goes to an empty
// slot rather than ending a live connection as a second CONNECT, and three
// in four SUBSCRIBE and PUBLISH steps are well formed: connections then live
// long enough for sessions, flows and takeovers to happen.
func randomScript(rng *rand.Rand) []byte {
	onLive := []byte{
		opSubscribe, opSubscribe, opSubscribe, opUnsubscribe,
		opPublish, opPublish, opPublish, opPublish, opPublish, opPublish, opPublish, opPublish,
		opAck, opAck, opAck, opBogusAck, opSync, opSync, opDisconnect, opVanish, opRaw, opAuth,
		opConnect, // a second CONNECT, or a new connection where one has ended unseen
	}
	var live [3]bool
	script := make([]byte, (8+rng.IntN(57))*stepSize)
	for i := 0; i < len(script); i += stepSize {
		st := script[i : i+stepSize]
		for j := range st {
			st[j] = byte(rng.Uint32())
		}
		slot := rng.IntN(len(live))
		op := onLive[rng.IntN(len(onLive))]
		if !live[slot] && rng.IntN(10) > 0 {
			op = opConnect
		}
		st[0], st[1] = byte(slot), op
		switch op {
		case opConnect:
			live[slot] = true
		case opDisconnect, opVanish, opRaw, opAuth:
			live[slot] = false
		case opPublish:
			if rng.IntN(4) > 0 {
				wellFormedPublish(st)
			}
		case opSubscribe:
			if rng.IntN(4) > 0 {
				wellFormedSubscribe(st)
			}
		}
	}
	return script
}

// wellFormedSubscribe rewrites the operands of a SUBSCRIBE step so that the
// broker accepts it: valid filters, and No Local only on filters that are
// not shared [MQTT-3.8.3-4]. The offsets are those subscribe reads.
func wellFormedSubscribe(st []byte) {
	for i := range 1 + int(st[2]%2) {
		filter := 3 + 5*i
		st[filter] %= 11 // the valid ones, listed first
		if strings.HasPrefix(scriptFilters[st[filter]], "$share/") {
			st[filter+2] &^= 1
		}
	}
}

// wellFormedPublish rewrites the operands of a PUBLISH step so that the broker
// accepts it: random operands make nearly half of all PUBLISH steps a
// protocol error, and a script whose connections all end at once never gets
// as far as sessions and flows. The offsets are those publish reads.
func wellFormedPublish(st []byte) {
	st[2] %= 4 // t/a, t/b, t/a/b or x
	st[5] %= 5 // payloads up to 1500 bytes, under the broker's maximum
	alias := 6
	if st[3]%3 > 0 {
		alias = 7 // after the packet id
	}
	st[alias] %= 5 // no alias, or 1-4, within the broker's maximum
	if st[alias] > 0 {
		st[alias+1] = 0 // with its topic, so that it is set
		alias++
	}
	st[alias+2] &^= 1 // no payload format indicator, so no UTF-8 check to fail
}

// expectRecovered checks the broker after scripts: no panic recovered since
// before, every connection closed now that its client is gone, and a new
// client served on topic.
func expectRecovered(t *testing.T, b *testBroker, before broker.StatsSnapshot, topic string) {
	t.Helper()
	if n := b.Stats().Panics.Load() - before.Panics; n > 0 {
		t.Fatalf("%d panics recovered while playing scripts", n)
	}
	closed := func() bool { return b.Stats().ConnectionsCurrent.Load() <= before.ConnectionsCurrent }
	for deadline := time.Now().Add(rawWait); !closed() && time.Now().Before(deadline); {
		time.Sleep(200 * time.Microsecond)
	}
	if !closed() {
		t.Fatalf("%d connections still open after every client went away", b.Stats().ConnectionsCurrent.Load()-before.ConnectionsCurrent)
	}
	probeServes(t, b.Addr, topic)
}

// probeServes checks that a new client can still subscribe and get its own
// QoS 1 message.
func probeServes(t *testing.T, addr, topic string) {
	t.Helper()
	p, _ := connectRaw(t, addr, &packet.Connect{Version: packet.V5, ClientID: "fz-probe", CleanStart: true, KeepAlive: 30})
	defer p.close()
	if rc := p.subscribe(1, 0, rawSub(topic, 1)); len(rc) != 1 || rc[0] != packet.GrantedQoS1 {
		t.Fatalf("probe SUBSCRIBE: %v", rc)
	}
	p.send(&packet.Publish{Topic: []byte(topic), QoS: 1, PacketID: 2, Payload: []byte("still serving")})
	var acked, delivered bool
	for !acked || !delivered {
		switch q := p.next().(type) {
		case *packet.Ack:
			acked = q.Type == packet.PUBACK && q.PacketID == 2
		case *packet.Publish:
			delivered = string(q.Topic) == topic && string(q.Payload) == "still serving"
			if q.QoS == 1 {
				p.ack(packet.PUBACK, q.PacketID)
			}
		}
	}
}

// scriptReader hands out one step of a script a byte at a time; past its
// end every byte is zero, so any input is a complete script.
type scriptReader struct{ data []byte }

func (r *scriptReader) next() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

// pick returns a number in [0, n).
func (r *scriptReader) pick(n int) int { return int(r.next()) % n }

// flag returns one bit of the script.
func (r *scriptReader) flag() bool { return r.next()&1 == 1 }

// from picks one of choices.
func from[T any](r *scriptReader, choices ...T) T { return choices[r.pick(len(choices))] }

// scriptSubscriptions remembers, for the life of the test process (sessions
// outlive a script), every filter each session has asked for. A delivery on
// a topic none of them matches is a routing bug.
var scriptSubscriptions = struct {
	sync.Mutex
	filters map[string][]scriptFilter // session key -> filters sent
	unknown map[string]bool           // sessions that may hold filters sent as raw bytes
}{filters: map[string][]scriptFilter{}, unknown: map[string]bool{}}

// scriptFilter is one filter a session asked for, with the options that
// bound what it may be sent.
type scriptFilter struct {
	filter  string
	qos     byte // as requested; the broker grants this or less
	noLocal bool // MQTT 5 only
}

func (f scriptFilter) String() string {
	if f.noLocal {
		return fmt.Sprintf("%q QoS %d no local", f.filter, f.qos)
	}
	return fmt.Sprintf("%q QoS %d", f.filter, f.qos)
}

// matching returns the filters of session key that topic matches, and all
// its filters. known is false when raw bytes may have subscribed it to
// others, so that no conclusion can be drawn.
func matching(key, topic string) (match, all []scriptFilter, known bool) {
	scriptSubscriptions.Lock()
	defer scriptSubscriptions.Unlock()
	if scriptSubscriptions.unknown[key] {
		return nil, nil, false
	}
	all = slices.Clone(scriptSubscriptions.filters[key])
	for _, f := range all {
		if filterMatches(f.filter, topic) {
			match = append(match, f)
		}
	}
	return match, all, true
}

// filterMatches is MQTT topic matching written out plainly, independent of
// the broker's trie, for checking it: + is one level, # the rest (parent
// included), a $ topic is not matched by a leading wildcard, and a shared
// subscription matches as its filter.
func filterMatches(filter, topic string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, f, ok := strings.Cut(rest, "/")
		if !ok {
			return false
		}
		filter = f
	}
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, level := range fl {
		if level == "#" {
			return true
		}
		if i >= len(tl) || level != "+" && level != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}

// Filters, topics and client identifiers come from small sets, so that
// scripts meet: two clients share a session, a publish matches a subscription.
// Each set holds some invalid entries for the broker to refuse.
var (
	// scriptFilters lists its valid filters first (wellFormedSubscribe).
	scriptFilters  = []string{"t/a", "t/+", "t/#", "#", "+/a", "t/a/b", "+", "$share/g/t/#", "$share/g/t/a", "$share/h/#", "$SYS/#", "t/#/x", "$share/g", "t/a+", ""}
	scriptTopics   = []string{"t/a", "t/b", "t/a/b", "x", "$SYS/x", "t/+", "", "t/\u00e9", "a/b/c/d/e/f/g"}
	scriptClients  = []string{"fz-a", "fz-b", "fz-c", ""}
	scriptPayloads = []int{0, 1, 16, 300, 1500, 3000}
)

// Script operations, one byte each, followed by the bytes they consume.
const (
	opConnect     = iota // CONNECT: on an open connection, a second one
	opSubscribe          // SUBSCRIBE one or two filters
	opUnsubscribe        // UNSUBSCRIBE one filter
	opPublish            // PUBLISH with a packet id from a small set, so ids repeat
	opAck                // acknowledge the oldest message the client has not yet
	opBogusAck           // an acknowledgement for a packet id picked at random
	opSync               // PINGREQ, then wait for PINGRESP
	opDisconnect         // DISCONNECT (v5: with or without the will) and close
	opVanish             // close without DISCONNECT
	opRaw                // up to 16 bytes of the script, sent as they are
	opAuth               // AUTH, which the broker has no method for
	opCount
)

// fuzzSeedScripts start the fuzzer in useful places. A step is slot, op and
// operands, in the order play and its helpers read them; CONNECT's operands
// are version (0 3.1, 1 3.1.1, 2 5), client id, clean start, automatic acks,
// five MQTT 5 limits (session expiry, Receive Maximum, Maximum Packet Size,
// Topic Alias Maximum, problem information) and the will; PUBLISH's are
// topic, QoS, retain, payload size, packet id (QoS 1 and 2), Topic Alias
// (and whether to leave the topic out), expiry, payload format, response.
var fuzzSeedScripts = [][]byte{
	// An MQTT 5 subscriber with Receive Maximum 1 that acknowledges by hand,
	// and a publisher of QoS 1 and 2 messages.
	framed(
		[]byte{0, opConnect, 2, 0, 1, 0, 0, 1, 0, 0, 0, 0},
		[]byte{0, opSubscribe, 0, 2, 2, 0, 0, 0, 0}, []byte{0, opSync},
		[]byte{1, opConnect, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0},
		[]byte{1, opPublish, 0, 1, 0, 2, 0, 0, 0, 0, 0},
		[]byte{1, opPublish, 1, 2, 0, 2, 1, 0, 0, 0, 0},
		[]byte{1, opPublish, 2, 1, 0, 2, 2, 0, 0, 0, 0},
		[]byte{1, opSync}, []byte{0, opSync},
		[]byte{0, opAck}, []byte{0, opSync}, []byte{0, opAck}, []byte{0, opSync},
		[]byte{0, opAck}, []byte{0, opAck}, []byte{0, opSync}),
	// A persistent session vanishes with QoS 1 and 2 messages in flight and
	// is resumed, by MQTT 5 with Receive Maximum 2, then by MQTT 3.1 (whose
	// CONNACK has no Session Present flag).
	framed(
		[]byte{0, opConnect, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		[]byte{0, opSubscribe, 0, 2, 2, 0, 0, 0, 0}, []byte{0, opSync},
		[]byte{1, opConnect, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0},
		[]byte{1, opPublish, 0, 2, 0, 2, 0, 0, 0, 0, 0},
		[]byte{1, opPublish, 0, 1, 0, 2, 1, 0, 0, 0, 0},
		[]byte{1, opPublish, 0, 2, 0, 2, 2, 0, 0, 0, 0},
		[]byte{1, opSync}, []byte{0, opSync}, []byte{0, opVanish},
		[]byte{2, opConnect, 2, 0, 0, 0, 2, 2, 0, 0, 0, 0},
		[]byte{2, opSync}, []byte{2, opAck}, []byte{2, opSync}, []byte{2, opVanish},
		[]byte{0, opConnect, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{0, opSync}),
	// Topic aliases, a message too big for the subscriber's Maximum Packet
	// Size of 64, and an alias above the broker's maximum.
	framed(
		[]byte{0, opConnect, 2, 0, 1, 1, 0, 0, 1, 2, 0, 0},
		[]byte{0, opSubscribe, 0, 2, 0, 0, 0, 0, 0}, []byte{0, opSync},
		[]byte{1, opConnect, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0},
		[]byte{1, opPublish, 0, 0, 0, 2, 1, 0, 0, 0, 0},
		[]byte{1, opPublish, 0, 0, 0, 2, 1, 1, 0, 0, 0},
		[]byte{1, opPublish, 2, 0, 0, 3, 0, 0, 0, 0},
		[]byte{1, opPublish, 0, 0, 0, 0, 5, 0, 0, 0, 0},
		[]byte{1, opSync}, []byte{0, opSync}),
	// A client with a will sends garbage; a subscriber gets the will.
	framed(
		[]byte{0, opConnect, 2, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1},
		[]byte{1, opConnect, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0},
		[]byte{1, opSubscribe, 0, 2, 1, 0, 0, 0, 0},
		[]byte{0, opRaw, 5, 0x30, 0xff, 0xff, 0xff, 0xff},
		[]byte{1, opSync}, []byte{0, opSync}),
	// MQTT 3.1, shared subscriptions, a retained message, stray
	// acknowledgements and AUTH.
	framed(
		[]byte{0, opConnect, 0, 2, 1, 1, 0, 0, 0, 0, 0, 0},
		[]byte{0, opSubscribe, 1, 7, 1, 0, 0, 0, 9, 1, 0, 0, 0, 0}, []byte{0, opSync},
		[]byte{1, opConnect, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0},
		[]byte{1, opPublish, 0, 1, 1, 1, 0, 0, 1, 0, 0},
		[]byte{1, opBogusAck, 2, 3}, []byte{1, opAuth}, []byte{0, opSync}),
	// A second CONNECT right behind the first, before its CONNACK: the
	// broker owes the CONNACK and the SUBACK before its DISCONNECT.
	framed(
		[]byte{0, opConnect, 2, 0, 1, 0, 0, 1, 0, 0, 0, 0},
		[]byte{0, opSubscribe, 0, 0, 1, 0, 1, 0, 0},
		[]byte{0, opConnect, 1, 3, 0, 1, 0, 0, 0, 0, 0, 0},
		[]byte{0, opSync}),
	// Half a packet as raw bytes, which the broker waits out, then a sync
	// that cannot be answered.
	framed(
		[]byte{0, opConnect, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0},
		[]byte{0, opRaw, 3, 0x30, 0x7f, 0x00},
		[]byte{0, opSync}),
}

// scriptClient is one connection of a script, with what its client knows
// about the exchange so far, to judge what the broker sends.
type scriptClient struct {
	nc net.Conn
	v  packet.Version

	writeMu sync.Mutex // the script and the reader's automatic acks both write

	mu         sync.Mutex
	checked    bool // a valid CONNECT went first: the broker's output can be judged
	flowsKnown bool // the client sent nothing that blurs the flow bookkeeping
	// framingKnown: the client sent whole packets only. Raw bytes may leave
	// a packet unfinished, which the broker rightly waits for.
	framingKnown bool
	autoAck      bool
	receiveMax   int
	maxPacket    int // 0: no limit
	aliasMax     uint16
	aliases      map[uint16]string      // Topic Alias -> topic, as the broker set them
	session      string                 // key of the session in scriptSubscriptions
	inflight     map[uint16]*scriptFlow // outgoing QoS 1/2 messages not yet complete
	order        []uint16               // inflight ids, oldest first
	subs         map[uint16]int         // SUBSCRIBE id -> filters
	unsubs       map[uint16]int         // UNSUBSCRIBE id -> filters
	nextID       uint16
	sent         bool // anything has been written
	connack      bool
	refused      bool
	resumed      bool // CONNACK said Session Present
	violations   []string
	log          []string // what the broker sent, for the test log

	// pubAliases: Topic Alias -> topic, as the client set them for its
	// PUBLISHes; pubAliasesKnown is false once raw bytes may have set others.
	pubAliases      map[uint16]string
	pubAliasesKnown bool

	pong chan struct{}
	done chan struct{}
}

// scriptFlow is one QoS 1/2 message the broker sent the client.
type scriptFlow struct {
	qos      byte
	received bool // PUBREC sent
	released bool // PUBREL seen
}

// scriptRun is one script being played: its clients, by slot.
type scriptRun struct {
	t          *testing.T
	verbose    bool // log what each client received
	addr       string
	clients    [3]*scriptClient
	violations []string // of clients whose connection has ended
}

// step plays the next operation of the script on one of its client slots.
// A slot whose connection has ended is empty again; only a CONNECT or raw
// bytes open a new connection there, other operations on it are skipped.
func (s *scriptRun) step(r *scriptReader) {
	slot, op := r.pick(len(s.clients)), r.pick(opCount)
	c := s.clients[slot]
	if c != nil && c.ended() {
		s.retire(c)
		c, s.clients[slot] = nil, nil
	}
	if c == nil {
		if op != opConnect && op != opRaw {
			return
		}
		var err error
		if c, err = dialScriptClient(s.addr); err != nil {
			s.violations = append(s.violations, err.Error())
			return
		}
		s.clients[slot] = c
	}
	c.play(op, r)
}

// finish closes every connection and returns every breach found.
func (s *scriptRun) finish() []string {
	for _, c := range s.clients {
		if c != nil {
			s.retire(c)
		}
	}
	return s.violations
}

// retire closes c and keeps what it found.
func (s *scriptRun) retire(c *scriptClient) {
	s.violations = append(s.violations, c.finish()...)
	if s.verbose {
		c.mu.Lock()
		s.t.Log(c.received())
		c.mu.Unlock()
	}
}

// describe names a packet the broker sent, with what matters to the checks.
func describe(p packet.Packet) string {
	switch p := p.(type) {
	case *packet.Connack:
		return fmt.Sprintf("CONNACK(%#x, present %v)", byte(p.ReasonCode), p.SessionPresent)
	case *packet.Publish:
		return fmt.Sprintf("PUBLISH(%q q%d id %d dup %v alias %d, %d bytes)", p.Topic, p.QoS, p.PacketID, p.Dup, p.Properties.TopicAlias, len(p.Payload))
	case *packet.Ack:
		return fmt.Sprintf("%s(%d, %#x)", p.Type, p.PacketID, byte(p.ReasonCode))
	case *packet.Suback:
		return fmt.Sprintf("SUBACK(%d, %v)", p.PacketID, p.ReasonCodes)
	case *packet.Disconnect:
		return fmt.Sprintf("DISCONNECT(%#x %q)", byte(p.ReasonCode), p.Properties.ReasonString)
	}
	return p.PacketType().String()
}

// play performs op with its operands from the script.
func (c *scriptClient) play(op int, r *scriptReader) {
	switch op {
	case opConnect:
		c.connect(r)
	case opSubscribe:
		c.subscribe(r)
	case opUnsubscribe:
		c.mu.Lock()
		c.nextID++
		id := 100 + c.nextID
		c.unsubs[id] = 1
		c.mu.Unlock()
		c.send(&packet.Unsubscribe{PacketID: id, Filters: []string{from(r, scriptFilters...)}})
	case opPublish:
		c.publish(r)
	case opAck:
		c.ackOldest(r.flag())
	case opBogusAck:
		c.mu.Lock()
		c.flowsKnown = false
		c.mu.Unlock()
		c.send(&packet.Ack{Type: from(r, packet.PUBACK, packet.PUBREC, packet.PUBREL, packet.PUBCOMP), PacketID: uint16(r.pick(6))})
	case opSync:
		c.sync()
	case opDisconnect:
		d := &packet.Disconnect{}
		if r.flag() {
			d.ReasonCode = packet.DisconnectWithWill
		}
		c.send(d)
		_ = c.nc.Close()
	case opVanish:
		_ = c.nc.Close()
	case opRaw:
		c.mu.Lock()
		c.flowsKnown = false // the bytes may well hold acknowledgements
		c.framingKnown = false
		c.pubAliasesKnown = false // or a PUBLISH that sets a Topic Alias
		if c.session != "" {
			scriptSubscriptions.Lock()
			scriptSubscriptions.unknown[c.session] = true // or a SUBSCRIBE
			scriptSubscriptions.Unlock()
		}
		c.mu.Unlock()
		n := r.pick(17)
		raw := make([]byte, n)
		for i := range raw {
			raw[i] = r.next()
		}
		c.write(raw)
	case opAuth:
		c.send(&packet.Auth{ReasonCode: packet.ContinueAuthentication, Properties: packet.Properties{AuthMethod: "SCRAM-SHA-1"}})
	}
}

// dialScriptClient connects a new client and starts reading what the broker
// sends it.
func dialScriptClient(addr string) (*scriptClient, error) {
	nc, err := net.DialTimeout("tcp", addr, rawWait)
	if err != nil {
		return nil, fmt.Errorf("the broker refused a connection: %w", err)
	}
	c := &scriptClient{
		nc: nc, v: packet.V5, flowsKnown: true, framingKnown: true, receiveMax: 65535,
		aliases: map[uint16]string{}, pubAliases: map[uint16]string{}, pubAliasesKnown: true,
		inflight: map[uint16]*scriptFlow{},
		subs:     map[uint16]int{}, unsubs: map[uint16]int{},
		pong: make(chan struct{}, 1), done: make(chan struct{}),
	}
	go c.readLoop()
	return c, nil
}

// connect sends a CONNECT built from the script. The first one on a
// connection sets the version and the limits the broker must respect.
func (c *scriptClient) connect(r *scriptReader) {
	cp := &packet.Connect{
		Version:    from(r, packet.V31, packet.V311, packet.V5),
		ClientID:   from(r, scriptClients...),
		CleanStart: r.flag(),
		KeepAlive:  30,
	}
	if cp.Version == packet.V31 {
		cp.ProtocolName = "MQIsdp"
	}
	autoAck := r.flag()
	if cp.Version == packet.V5 {
		pr := &cp.Properties
		if s := from(r, 0, 1, 5, 0xFFFFFFFF); s != 0 {
			pr.SessionExpiry, pr.HasSessionExpiry = uint32(s), true
		}
		if rm := r.pick(4); rm > 0 {
			pr.ReceiveMaximum, pr.HasReceiveMaximum = uint16(rm), true
		}
		if mp := from(r, 0, 64, 256, 1024); mp > 0 {
			pr.MaximumPacketSize, pr.HasMaximumPacketSize = uint32(mp), true
		}
		if am := r.pick(3); am > 0 {
			pr.TopicAliasMaximum, pr.HasTopicAliasMaximum = uint16(am), true
		}
		if r.flag() {
			pr.RequestProblemInfo, pr.HasRequestProblemInfo = 0, true
		}
	} else {
		r.next()
		r.next()
		r.next()
		r.next()
		r.next()
	}
	willStamp := ""
	if r.flag() {
		cp.WillFlag = true
		cp.WillTopic = from(r, scriptTopics...)
		cp.WillQoS = byte(r.pick(3))
		cp.WillRetain = r.flag()
		// A stamped payload, so that the content checker judges the will
		// wherever it is delivered, retained or not.
		cp.WillPayload = append(make([]byte, stampSize, stampSize+4), "gone"...)
		willStamp = stampPayload(cp.WillPayload)
		if cp.Version == packet.V5 && r.flag() {
			cp.WillProperties.WillDelay, cp.WillProperties.HasWillDelay = 1, true
		}
	}
	b, err := cp.Encode(nil, cp.Version)
	if err != nil {
		return // a combination the encoder refuses, such as a will topic with a wildcard
	}
	if willStamp != "" {
		recordWill(willStamp, cp, fmt.Sprintf("the will of client %p (%v)", c, cp.Version))
	}
	c.mu.Lock()
	if !c.sent {
		// The first packet of the connection: the broker will answer in
		// this version and within these limits. After anything else
		// (raw bytes above all), nothing the broker sends is judged: it
		// may take them for anything. Only a CONNECT that is sent counts.
		c.checked, c.v, c.autoAck = true, cp.Version, autoAck
		c.session = cp.ClientID
		if c.session == "" {
			c.session = fmt.Sprintf("assigned to %p", c) // no other connection can resume it
		}
		if cp.Properties.HasReceiveMaximum {
			c.receiveMax = int(cp.Properties.ReceiveMaximum)
		}
		if cp.Properties.HasMaximumPacketSize {
			c.maxPacket = int(cp.Properties.MaximumPacketSize)
		}
		c.aliasMax = cp.Properties.TopicAliasMaximum
	}
	c.mu.Unlock()
	c.write(b)
}

// subscribe sends a SUBSCRIBE of one or two filters with v5 options.
func (c *scriptClient) subscribe(r *scriptReader) {
	s := &packet.Subscribe{}
	for range 1 + r.pick(2) {
		s.Subscriptions = append(s.Subscriptions, packet.Subscription{
			Filter:            from(r, scriptFilters...),
			QoS:               byte(r.pick(3)),
			NoLocal:           r.flag(),
			RetainAsPublished: r.flag(),
			RetainHandling:    byte(r.pick(3)),
		})
	}
	if id := r.pick(3); id > 0 {
		s.Properties.SubscriptionIDs = []uint32{uint32(id)}
	}
	c.mu.Lock()
	c.nextID++
	s.PacketID = 100 + c.nextID
	c.subs[s.PacketID] = len(s.Subscriptions)
	if c.session != "" {
		scriptSubscriptions.Lock()
		for _, sub := range s.Subscriptions {
			f := scriptFilter{filter: sub.Filter, qos: sub.QoS, noLocal: sub.NoLocal && c.v == packet.V5}
			scriptSubscriptions.filters[c.session] = append(scriptSubscriptions.filters[c.session], f)
		}
		scriptSubscriptions.Unlock()
	}
	c.mu.Unlock()
	c.send(s)
}

// publish sends a PUBLISH. Packet ids come from 1-4 and are not tracked:
// reusing one the broker still holds is the client's protocol error to make.
func (c *scriptClient) publish(r *scriptReader) {
	p := &packet.Publish{
		Topic:  []byte(from(r, scriptTopics...)),
		QoS:    byte(r.pick(3)),
		Retain: r.flag(),
	}
	p.Payload = make([]byte, from(r, scriptPayloads...))
	for i := range p.Payload {
		p.Payload[i] = 'a' + byte(i%26)
	}
	if p.QoS > 0 {
		p.PacketID = uint16(1 + r.pick(4))
	}
	pr := &p.Properties
	if alias := r.pick(6); alias > 0 { // 5 is above the broker's maximum of 4
		pr.TopicAlias, pr.HasTopicAlias = uint16(alias), true
		if r.flag() {
			p.Topic = nil // use the alias set before, if any
		}
	}
	if e := r.pick(3); e > 0 {
		pr.MessageExpiry, pr.HasMessageExpiry = uint32(e-1), true
	}
	if r.flag() {
		pr.PayloadFormat, pr.HasPayloadFormat = 1, true
		if r.flag() {
			p.Payload = append(p.Payload, 0xff) // not UTF-8
		}
	}
	if r.flag() {
		pr.ResponseTopic, pr.CorrelationData = "t/reply", []byte{1, 2}
		pr.User = []packet.UserProperty{{Key: "k", Value: "v"}}
	}
	// Every PUBLISH that names a topic with an alias sets it, stamped or not.
	stamp := stampPayload(p.Payload)
	c.mu.Lock()
	topic := string(p.Topic)
	if pr.HasTopicAlias && pr.TopicAlias <= 4 { // the broker's maximum; above it, the connection ends
		switch {
		case topic != "":
			c.pubAliases[pr.TopicAlias] = topic
		case c.pubAliasesKnown:
			topic = c.pubAliases[pr.TopicAlias]
		}
	}
	if stamp != "" {
		// Only a CONNECT sent first told the checker the client's id and
		// version; otherwise the broker took the bytes for whatever it did.
		publisher, v5 := "", false
		if c.checked {
			publisher, v5 = c.session, c.v == packet.V5
		}
		recordSent(stamp, p, topic, publisher, fmt.Sprintf("client %p (%v)", c, c.v), v5)
	}
	c.mu.Unlock()
	c.send(p)
}

// ackOldest acknowledges the oldest message that awaits the client: PUBACK,
// PUBREC (a refusing one when refuse is set, MQTT 5 only) or PUBCOMP.
func (c *scriptClient) ackOldest(refuse bool) {
	c.mu.Lock()
	var a *packet.Ack
	for _, id := range c.order {
		fl := c.inflight[id]
		switch {
		case fl == nil:
			continue
		case fl.qos == 1:
			a = &packet.Ack{Type: packet.PUBACK, PacketID: id}
			c.forget(id)
		case !fl.received:
			a = &packet.Ack{Type: packet.PUBREC, PacketID: id}
			fl.received = true
			if refuse && c.v == packet.V5 {
				a.ReasonCode = packet.UnspecifiedError
				c.forget(id)
			}
		case fl.released:
			a = &packet.Ack{Type: packet.PUBCOMP, PacketID: id}
			c.forget(id)
		default:
			continue // waiting for the broker's PUBREL
		}
		break
	}
	c.mu.Unlock()
	if a != nil {
		c.send(a)
	}
}

// forget ends the flow of id; c.mu is held.
func (c *scriptClient) forget(id uint16) {
	delete(c.inflight, id)
	c.order = slices.DeleteFunc(c.order, func(x uint16) bool { return x == id })
}

// sync sends PINGREQ and waits for the PINGRESP, so that the broker has
// handled everything before it, unless the connection ends first.
func (c *scriptClient) sync() {
	select {
	case <-c.pong:
	default:
	}
	c.send(&packet.Pingreq{})
	c.mu.Lock()
	answerDue := c.checked && c.framingKnown
	c.mu.Unlock()
	if !answerDue {
		return
	}
	select {
	case <-c.pong:
	case <-c.done:
	case <-time.After(rawWait):
		c.violate("no PINGRESP within %v", rawWait)
	}
}

// send encodes p in the connection's version and writes it; a packet the
// encoder refuses is skipped.
func (c *scriptClient) send(p packet.Packet) {
	c.mu.Lock()
	v := c.v
	c.mu.Unlock()
	b, err := p.Encode(nil, v)
	if err != nil {
		return
	}
	c.write(b)
}

// write writes b, ignoring errors: the broker may have closed the connection,
// which is often the right answer to the script.
func (c *scriptClient) write(b []byte) {
	c.mu.Lock()
	c.sent = true
	c.mu.Unlock()
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(rawWait))
	_, _ = c.nc.Write(b)
}

// ended reports whether the connection has ended.
func (c *scriptClient) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// violate records a breach of the protocol by the broker.
func (c *scriptClient) violate(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violateLocked(format, args...)
}

// violateLocked is violate for callers that hold c.mu.
func (c *scriptClient) violateLocked(format string, args ...any) {
	c.violations = append(c.violations, fmt.Sprintf("client %p (%v): ", c, c.v)+fmt.Sprintf(format, args...))
}

// finish closes the connection, waits for the reader and returns what it
// found wrong.
func (c *scriptClient) finish() []string {
	_ = c.nc.Close()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.violations
	if len(v) > 0 {
		v = append(v, c.received())
	}
	c.violations = nil
	return v
}

// received lists what the broker sent; c.mu is held.
func (c *scriptClient) received() string {
	return fmt.Sprintf("client %p (%v) received: %s", c, c.v, strings.Join(c.log, " "))
}

// readLoop reads and judges everything the broker sends until the
// connection ends.
func (c *scriptClient) readLoop() {
	defer close(c.done)
	var buf []byte
	chunk := make([]byte, 16<<10)
	for {
		n, err := c.nc.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for {
			c.mu.Lock()
			checked, v := c.checked, c.v
			c.mu.Unlock()
			if !checked {
				buf = buf[:0]
				break
			}
			fh, hn, herr := packet.ReadFixedHeader(buf)
			if herr != nil {
				c.violate("sent a packet whose fixed header does not decode (% x): %v", buf[:min(len(buf), 8)], herr)
				return
			}
			if hn == 0 || len(buf) < hn+fh.Remaining {
				break
			}
			size := hn + fh.Remaining
			body := slices.Clone(buf[hn:size])
			buf = buf[size:]
			p, derr := packet.Decode(fh, body, v)
			if derr != nil {
				c.violate("sent a %v that does not decode: %v", fh.Type, derr)
				return
			}
			if reply := c.judge(p, size); reply != nil {
				c.send(reply)
			}
		}
		if err != nil {
			return
		}
	}
}

// judge checks one packet from the broker against what the client knows. It
// returns the acknowledgement to send when the client acknowledges
// automatically.
func (c *scriptClient) judge(p packet.Packet, size int) *packet.Ack {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, describe(p))
	if c.maxPacket > 0 && size > c.maxPacket {
		c.violateLocked("sent a %d-byte %s to a client whose Maximum Packet Size is %d", size, p.PacketType(), c.maxPacket)
	}
	if ca, ok := p.(*packet.Connack); ok {
		if c.connack {
			c.violateLocked("sent a second CONNACK")
		}
		// MQTT 3.1 has no Session Present flag: a resumed session may follow.
		c.connack, c.refused, c.resumed = true, ca.ReasonCode.IsError(), ca.SessionPresent || c.v == packet.V31
		return nil
	}
	switch {
	case !c.connack:
		c.violateLocked("sent %s before CONNACK", p.PacketType())
		return nil
	case c.refused && p.PacketType() != packet.DISCONNECT:
		c.violateLocked("sent %s after refusing the CONNECT", p.PacketType())
		return nil
	}
	var reply *packet.Ack
	switch p := p.(type) {
	case *packet.Publish:
		c.judgePublish(p)
		if p.QoS > 0 && c.autoAck {
			if p.QoS == 1 {
				reply = &packet.Ack{Type: packet.PUBACK, PacketID: p.PacketID}
				c.forget(p.PacketID)
			} else {
				reply = &packet.Ack{Type: packet.PUBREC, PacketID: p.PacketID}
				if fl := c.inflight[p.PacketID]; fl != nil {
					fl.received = true
				}
			}
		}
	case *packet.Ack:
		if p.Type != packet.PUBREL {
			break // answers to the client's own messages
		}
		fl := c.inflight[p.PacketID]
		switch {
		case fl == nil && c.resumed:
			// A release resent for a message received on an earlier connection.
			fl = &scriptFlow{qos: 2, received: true}
			c.inflight[p.PacketID] = fl
			c.order = append(c.order, p.PacketID)
		case c.flowsKnown && (fl == nil || fl.qos != 2 || !fl.received):
			c.violateLocked("sent PUBREL %d for a message the client has not received (%+v)", p.PacketID, fl)
		}
		if fl != nil {
			fl.released = true
		}
		if c.autoAck {
			reply = &packet.Ack{Type: packet.PUBCOMP, PacketID: p.PacketID}
			c.forget(p.PacketID)
		}
	case *packet.Suback:
		want, ok := c.subs[p.PacketID]
		switch {
		case ok && len(p.ReasonCodes) != want:
			c.violateLocked("SUBACK %d carries %d reason codes for %d filters", p.PacketID, len(p.ReasonCodes), want)
		case !ok && c.flowsKnown:
			c.violateLocked("SUBACK %d answers no SUBSCRIBE", p.PacketID)
		}
		delete(c.subs, p.PacketID)
	case *packet.Unsuback:
		want, ok := c.unsubs[p.PacketID]
		switch {
		case ok && c.v == packet.V5 && len(p.ReasonCodes) != want:
			c.violateLocked("UNSUBACK %d carries %d reason codes for %d filters", p.PacketID, len(p.ReasonCodes), want)
		case !ok && c.flowsKnown:
			c.violateLocked("UNSUBACK %d answers no UNSUBSCRIBE", p.PacketID)
		}
		delete(c.unsubs, p.PacketID)
	case *packet.Pingresp:
		select {
		case c.pong <- struct{}{}:
		default:
		}
	case *packet.Disconnect:
		if c.v != packet.V5 {
			c.violateLocked("sent DISCONNECT to an MQTT %v client", c.v)
		}
	default:
		c.violateLocked("sent %s, which only clients send", p.PacketType())
	}
	return reply
}

// judgePublish checks one PUBLISH against the client's limits; c.mu is held.
func (c *scriptClient) judgePublish(p *packet.Publish) {
	topic := string(p.Topic)
	if pr := &p.Properties; pr.HasTopicAlias {
		switch {
		case pr.TopicAlias == 0 || pr.TopicAlias > c.aliasMax:
			c.violateLocked("used Topic Alias %d; the client's Topic Alias Maximum is %d", pr.TopicAlias, c.aliasMax)
		case topic != "":
			c.aliases[pr.TopicAlias] = topic
		case c.aliases[pr.TopicAlias] == "":
			c.violateLocked("used Topic Alias %d before setting it", pr.TopicAlias)
		default:
			topic = c.aliases[pr.TopicAlias]
		}
	} else if topic == "" {
		c.violateLocked("sent a PUBLISH with neither topic nor alias")
	}
	match, all, known := matching(c.session, topic)
	if known && len(match) == 0 {
		c.violateLocked("delivered a message on %q to session %q, whose filters %v match no such topic", topic, c.session, all)
	}
	c.judgeContent(p, topic, match, known)
	if p.QoS == 0 || !c.flowsKnown {
		return
	}
	if _, inFlight := c.inflight[p.PacketID]; inFlight {
		if c.v == packet.V5 {
			c.violateLocked("reused packet id %d while its message is in flight", p.PacketID)
		}
		return
	}
	c.inflight[p.PacketID] = &scriptFlow{qos: p.QoS}
	c.order = append(c.order, p.PacketID)
	if c.v == packet.V5 && len(c.inflight) > c.receiveMax {
		c.violateLocked("has %d QoS 1/2 messages unacknowledged; the client's Receive Maximum is %d", len(c.inflight), c.receiveMax)
	}
}
