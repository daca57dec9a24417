package broker_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// TestDeliveryGuaranteesSurviveReconnects is a device on a bad link: its
// persistent session is resumed over and over, every few milliseconds,
// while two publishers send it QoS 1 or QoS 2 messages. Each connection
// reads for a while, acknowledges most of what it gets and then either
// drops without a word or is taken over by the next one while still open.
// Every message a publisher got its PUBACK or PUBCOMP for must reach the
// device: at least once for QoS 1, exactly once for QoS 2, given a client
// that keeps its QoS 2 state across connections as the spec asks
// [MQTT-4.3.3-10].
func TestDeliveryGuaranteesSurviveReconnects(t *testing.T) {
	t.Parallel()
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("QoS %d", qos), func(t *testing.T) {
			t.Parallel()
			bothVersions(t, func(t *testing.T, v packet.Version) {
				churn(t, v, qos)
			})
		})
	}
}

func churn(t *testing.T, v packet.Version, qos byte) {
	b := startBroker(t)
	cp := persistent(rawConnect(v, "churn"), false)
	first, _ := connectRaw(t, b.Addr, cp)
	first.subscribe(1, 0, rawSub("churn/#", qos))
	first.close()
	cp = persistent(cp, true)

	// Two publishers, paced so that the device's connections come and go
	// while messages flow; each waits for all its flows to complete.
	const publishers, perPublisher = 2, 1500
	want := map[string]bool{}
	for p := range publishers {
		for i := range perPublisher {
			want[fmt.Sprintf("%d-%d", p, i)] = true
		}
	}
	published := make(chan struct{})
	var wg sync.WaitGroup
	for p := range publishers {
		pub, _ := connectV3(t, b.Addr, uniqueID("churn-pub"))
		wg.Go(func() {
			var pending []mqtt3.Token
			settle := func() {
				for _, tok := range pending {
					if !tok.WaitTimeout(rawWait) || tok.Error() != nil {
						t.Errorf("publisher %d: a publish did not complete: %v", p, tok.Error())
					}
				}
				pending = pending[:0]
			}
			for i := range perPublisher {
				pending = append(pending, pub.Publish(fmt.Sprintf("churn/%d", p), qos, false, fmt.Sprintf("%d-%d", p, i)))
				if len(pending) == 16 {
					settle()
				}
				time.Sleep(100 * time.Microsecond)
			}
			settle()
		})
	}
	go func() { wg.Wait(); close(published) }()

	dev := &flakyDevice{t: t, v: v, got: map[string]int{}, released: map[uint16]bool{}, drop: true,
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(qos)))}
	var open *rawClient // a connection left open, for the next one to take over
	connections := 0
	for done := false; !done; connections++ {
		select {
		case <-published:
			done = true
		default:
		}
		c := dialRaw(t, b.Addr, v)
		if ack := c.connect(cp); ack.ReasonCode != packet.Success || !ack.SessionPresent {
			t.Fatalf("connection %d: CONNACK %v, session present %v; want the session resumed", connections, ack.ReasonCode, ack.SessionPresent)
		}
		if open != nil {
			open.close() // it was taken over; what it had not read comes again
			open = nil
		}
		dev.serve(c, time.Duration(1+dev.rng.IntN(10))*time.Millisecond)
		if dev.rng.IntN(2) == 0 {
			c.close()
		} else {
			open = c
		}
	}
	if open != nil {
		open.close()
	}

	// A last, steady connection gets whatever is still owed.
	c, ack := connectRaw(t, b.Addr, cp)
	if !ack.SessionPresent {
		t.Fatal("the session did not survive")
	}
	dev.drop = false
	for deadline := time.Now().Add(10 * time.Second); dev.missing(want) > 0 && time.Now().Before(deadline); {
		dev.serve(c, 100*time.Millisecond)
	}
	dev.serve(c, 200*time.Millisecond) // anything still coming would be a duplicate

	lost, dups := 0, 0
	for payload := range want {
		switch n := dev.got[payload]; {
		case n == 0:
			lost++
		case n > 1:
			dups += n - 1
		}
	}
	for payload := range dev.got {
		if !want[payload] {
			t.Errorf("received %q, which nobody published", payload)
		}
	}
	t.Logf("%d connections; %d of %d messages lost, %d duplicates", connections, lost, len(want), dups)
	if lost > 0 {
		t.Errorf("%d acknowledged QoS %d messages never reached the device", lost, qos)
	}
	if qos == 2 && dups > 0 {
		t.Errorf("%d QoS 2 messages reached the device more than once", dups)
	}
}

// flakyDevice is the subscribing client's state, which outlives its
// connections, as a real client's must.
type flakyDevice struct {
	t        *testing.T
	v        packet.Version
	rng      *rand.Rand
	got      map[string]int  // deliveries per payload
	released map[uint16]bool // QoS 2 ids received and answered with PUBREC, awaiting PUBREL
	drop     bool            // whether to leave an acknowledgement out now and then
}

// serve reads from c for d, answering as a QoS 1/2 receiver. Now and then
// it leaves an acknowledgement out, which the broker must make up for on a
// later connection. It returns early when the broker closes c.
func (dev *flakyDevice) serve(c *rawClient, d time.Duration) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		p, err := c.read(time.Until(deadline))
		if err != nil {
			return // quiet until the deadline, or closed (taken over)
		}
		var reply *packet.Ack
		switch p := p.(type) {
		case *packet.Publish:
			switch p.QoS {
			case 1:
				dev.got[string(p.Payload)]++
				reply = &packet.Ack{Type: packet.PUBACK, PacketID: p.PacketID}
			case 2:
				// Method B of the spec: an id answered with PUBREC is not
				// delivered again until its PUBREL.
				if !dev.released[p.PacketID] {
					dev.got[string(p.Payload)]++
					dev.released[p.PacketID] = true
				}
				reply = &packet.Ack{Type: packet.PUBREC, PacketID: p.PacketID}
			default:
				dev.t.Errorf("a QoS %d delivery on a QoS 1/2 subscription", p.QoS)
			}
		case *packet.Ack:
			if p.Type == packet.PUBREL {
				delete(dev.released, p.PacketID)
				reply = &packet.Ack{Type: packet.PUBCOMP, PacketID: p.PacketID}
			}
		case *packet.Disconnect:
			return
		}
		if reply != nil && !(dev.drop && dev.rng.IntN(10) == 0) {
			if b, err := reply.Encode(nil, dev.v); err == nil {
				_, _ = c.nc.Write(b) // may fail: the connection may be gone
			}
		}
	}
}

// missing counts the messages of want not received yet.
func (dev *flakyDevice) missing(want map[string]bool) int {
	n := 0
	for payload := range want {
		if dev.got[payload] == 0 {
			n++
		}
	}
	return n
}
