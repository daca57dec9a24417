package broker_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// A 3.1.1 client that sets the bridge bit in its protocol level (Mosquitto's
// try_private, EMQX's bridge mode) is accepted and treated as those brokers
// treat a bridge: its own messages are not sent back to it, and retain flags
// reach it as published.
func TestBridgeBitMeansNoLocalAndRetainAsPublished(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	bridge, ack := connectRaw(t, b.Addr, &packet.Connect{Version: packet.V311, Bridge: true, ClientID: uniqueID("edge-bridge"), CleanStart: true})
	if ack.ReasonCode != packet.Success {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	bridge.subscribe(1, 0, rawSub("plant/#", 1))
	plain, _ := connectRaw(t, b.Addr, &packet.Connect{Version: packet.V311, ClientID: uniqueID("plain-sub"), CleanStart: true})
	plain.subscribe(1, 0, rawSub("plant/#", 1))

	// What the bridge publishes reaches the others, not the bridge itself.
	bridge.send(&packet.Publish{Topic: []byte("plant/edge"), QoS: 1, PacketID: 5, Retain: true, Payload: []byte("from the edge")})
	bridge.expectAck(packet.PUBACK, 5)
	if p := plain.expectPublish(); string(p.Topic) != "plant/edge" || p.Retain {
		t.Fatalf("plain subscriber got %s retain=%v; want plant/edge with RETAIN 0 (a live message)", p.Topic, p.Retain)
	}
	bridge.expectQuiet()

	// A retained message published live keeps its flag for the bridge only.
	pub, _ := connectRaw(t, b.Addr, &packet.Connect{Version: packet.V311, ClientID: uniqueID("central-pub"), CleanStart: true})
	if rc := pub.publish("plant/setpoint", 1, 9, "42"); rc != packet.Success {
		t.Fatalf("PUBACK %v", rc)
	}
	pub.send(&packet.Publish{Topic: []byte("plant/setpoint"), QoS: 1, PacketID: 10, Retain: true, Payload: []byte("43")})
	pub.expectAck(packet.PUBACK, 10)
	for _, want := range []struct {
		payload string
		retain  bool
	}{{"42", false}, {"43", true}} {
		p := bridge.expectPublish()
		if string(p.Payload) != want.payload || p.Retain != want.retain {
			t.Fatalf("bridge got %q retain=%v; want %q retain=%v", p.Payload, p.Retain, want.payload, want.retain)
		}
		bridge.ack(packet.PUBACK, p.PacketID)
	}
	for _, want := range []string{"42", "43"} {
		if p := plain.expectPublish(); string(p.Payload) != want || p.Retain {
			t.Fatalf("plain subscriber got %q retain=%v; want %q with RETAIN 0", p.Payload, p.Retain, want)
		}
	}
}

// TestInteropMosquittoBridge connects Debian's Mosquitto to the broker as an
// edge broker with a bridge in its default configuration (try_private on,
// so it sets the bridge bit), the way a factory forwards its local broker to
// a central one:
//   - factory/# goes out: a message published at the edge arrives centrally;
//   - cmd/# comes in: a retained command published centrally is retained at
//     the edge, for edge clients that connect later;
//   - loop/# goes both ways: a message published at the edge comes back to
//     the edge's subscribers once, not again through the bridge.
//
// With MQTT 5 the bridge asks for the same with subscription options.
func TestInteropMosquittoBridge(t *testing.T) {
	for _, version := range []string{"mqttv311", "mqttv50"} {
		t.Run(version, func(t *testing.T) { testMosquittoBridge(t, version) })
	}
}

func testMosquittoBridge(t *testing.T, version string) {
	mosquitto := mosquittoBroker(t)
	b := startBroker(t)
	host, port := brokerHostPort(t, b)
	edgeAddr := freeLoopbackAddr(t)
	_, edgePort, _ := net.SplitHostPort(edgeAddr)
	conf := filepath.Join(t.TempDir(), "edge.conf")
	err := os.WriteFile(conf, fmt.Appendf(nil, `listener %s 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
connection central
address %s:%s
remote_clientid edge-bridge
bridge_protocol_version %s
topic factory/# out 1
topic cmd/# in 1
topic loop/# both 1
`, edgePort, host, port, version), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var edgeLog lockedBuffer
	cmd := exec.Command(mosquitto, "-c", conf)
	cmd.Stdout, cmd.Stderr = &edgeLog, &edgeLog
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("edge mosquitto:\n%s", edgeLog.String())
		}
	})
	edge := &testBroker{Addr: edgeAddr}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", edgeAddr); err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the edge mosquitto does not listen on %s", edgeAddr)
		}
	}

	// The bridge is up once a central message reaches an edge subscriber.
	probe := startMosquittoSub(t, edge, "%t", "-C", "1", "-t", "cmd/probe")
	central, _ := connectRaw(t, b.Addr, &packet.Connect{Version: packet.V311, ClientID: uniqueID("central"), CleanStart: true})
	for i := 0; ; i++ {
		central.send(&packet.Publish{Topic: []byte("cmd/probe"), Payload: []byte("up?")})
		select {
		case <-probe.done:
		case <-time.After(100 * time.Millisecond):
			if i < 100 {
				continue
			}
			t.Fatalf("the edge bridge did not come up within 10 s; broker sessions: %d", b.SessionCount())
		}
		break
	}
	probe.expectMessages("cmd/probe")

	t.Run("edge to central", func(t *testing.T) {
		sub, _ := connectRaw(t, b.Addr, &packet.Connect{Version: packet.V311, ClientID: uniqueID("central-sub"), CleanStart: true})
		sub.subscribe(1, 0, rawSub("factory/#", 1))
		mosquittoPub(t, edge, "-t", "factory/line1/temp", "-q", "1", "-m", "21.5")
		if p := sub.expectPublish(); string(p.Topic) != "factory/line1/temp" || string(p.Payload) != "21.5" {
			t.Fatalf("central got %s %q", p.Topic, p.Payload)
		}
	})

	t.Run("a retained command stays retained at the edge", func(t *testing.T) {
		central.send(&packet.Publish{Topic: []byte("cmd/line1/setpoint"), QoS: 1, PacketID: 3, Retain: true, Payload: []byte("42")})
		central.expectAck(packet.PUBACK, 3)
		// A later edge client gets it from the edge's own retained store
		// (flag 1), which only holds it if the bridge delivered it retained.
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, _ := exec.Command(interopTool(t, "mosquitto_sub"), "-h", "127.0.0.1", "-p", edgePort,
				"-t", "cmd/line1/setpoint", "-C", "1", "-W", "1", "-F", "%r|%p").Output()
			if strings.TrimSpace(string(out)) == "1|42" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("an edge client does not get the central command as retained: %q", out)
			}
		}
	})

	// Last: it stops the edge.
	defer t.Run("the bridge's state on the central broker", func(t *testing.T) {
		// Mosquitto's bridge notifications: retained 1 once connected, and
		// its will sets 0 when the connection is lost.
		watch, _ := connectRaw(t, b.Addr, &packet.Connect{Version: packet.V311, ClientID: uniqueID("bridge-watch"), CleanStart: true})
		watch.subscribe(1, 0, rawSub("$SYS/broker/connection/edge-bridge/state", 1))
		if p := watch.expectPublish(); string(p.Payload) != "1" || !p.Retain {
			t.Fatalf("bridge state %q retain=%v; want a retained 1", p.Payload, p.Retain)
		}
		_ = cmd.Process.Kill()
		p := watch.expectPublish()
		if string(p.Payload) != "0" {
			t.Fatalf("bridge state after the edge died: %q; want 0", p.Payload)
		}
		if p.QoS > 0 {
			watch.ack(packet.PUBACK, p.PacketID)
		}
	})

	t.Run("no loop back to the edge", func(t *testing.T) {
		sub := startMosquittoSub(t, edge, "%t|%p", "-t", "loop/#")
		seen, _ := connectRaw(t, b.Addr, &packet.Connect{Version: packet.V311, ClientID: uniqueID("central-loop"), CleanStart: true})
		seen.subscribe(1, 0, rawSub("loop/#", 1))
		mosquittoPub(t, edge, "-t", "loop/ping", "-q", "1", "-m", "once")
		if p := seen.expectPublish(); string(p.Payload) != "once" {
			t.Fatalf("central got %q", p.Payload)
		}
		// An echo from the central broker would follow within milliseconds.
		time.Sleep(time.Second)
		var got []string
		for _, l := range strings.Split(sub.out.String(), "\n") {
			if m, ok := strings.CutPrefix(l, subMessagePrefix); ok {
				got = append(got, m)
			}
		}
		if strings.Join(got, ",") != "loop/ping|once" {
			t.Fatalf("the edge subscriber got %q; want the message once", got)
		}
	})
}

// $SYS belongs to the broker: a client publishes there neither directly nor
// through its will, except for its own bridge state, which a central broker
// keeps so that one can see which edge bridges are up.
func TestSysTopicsArePublishedByTheBrokerOnly(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	watcher, _ := connectRaw(t, b.Addr, &packet.Connect{ClientID: uniqueID("sys-watch"), CleanStart: true})
	watcher.subscribe(1, 0, rawSub("$SYS/broker/connection/#", 0), rawSub("$SYS/forged/#", 0))
	id := uniqueID("edge")
	c, _ := connectRaw(t, b.Addr, &packet.Connect{ClientID: id, CleanStart: true,
		WillFlag: true, WillTopic: "$SYS/forged/will", WillPayload: []byte("forged")})
	for _, topic := range []string{"$SYS/forged/direct", "$SYS/broker/connection/someone-else/state", "$SYS/broker/connection/" + id + "/state/x"} {
		if rc := c.publish(topic, 1, 1, "forged"); rc != packet.NotAuthorized {
			t.Errorf("PUBLISH to %s: %v; want Not authorized", topic, rc)
		}
	}
	state := "$SYS/broker/connection/" + id + "/state"
	if rc := c.publish(state, 1, 2, "1"); rc != packet.Success {
		t.Fatalf("PUBLISH to its own bridge state: %v", rc)
	}
	if p := watcher.expectPublish(); string(p.Topic) != state || string(p.Payload) != "1" {
		t.Fatalf("watcher got %s %q; want %s \"1\"", p.Topic, p.Payload, state)
	}
	c.close() // no DISCONNECT: the will is due, but its topic is the broker's
	watcher.expectQuiet()
}

// mosquittoBroker returns the path of Debian's mosquitto broker or fails the test.
func mosquittoBroker(t testing.TB) string {
	t.Helper()
	if path, err := exec.LookPath("mosquitto"); err == nil {
		return path
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
		t.Fatalf("mosquitto is not installed (%v): %s", err, interopInstallHint)
	}
	return "/usr/sbin/mosquitto"
}

// freeLoopbackAddr returns a 127.0.0.1 address with a port nothing listens on.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
