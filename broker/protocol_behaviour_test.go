package broker_test

// Behaviour tests on the raw wire: flows that client libraries hide or
// will not produce (withheld acknowledgements, repeated packet ids,
// protocol violations), checked packet by packet.

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
)

// bothVersions runs a subtest for MQTT 3.1.1 and for 5.0.
func bothVersions(t *testing.T, fn func(t *testing.T, v packet.Version)) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run("MQTT "+v.String(), func(t *testing.T) {
			t.Parallel()
			fn(t, v)
		})
	}
}

// rawConnect is a CONNECT with clean start and a 30 s keep alive.
func rawConnect(v packet.Version, prefix string) *packet.Connect {
	return &packet.Connect{Version: v, ClientID: uniqueID(prefix), CleanStart: true, KeepAlive: 30}
}

// persistent makes cp ask for a session that outlives the connection:
// Clean Session 0 in 3.1.1, a Session Expiry Interval in 5.0.
func persistent(cp *packet.Connect, resume bool) *packet.Connect {
	if cp.Version == packet.V5 {
		cp.CleanStart = !resume
		cp.Properties.SessionExpiry, cp.Properties.HasSessionExpiry = 60, true
	} else {
		cp.CleanStart = false
	}
	return cp
}

func TestRawKeepAliveEnforced(t *testing.T) {
	t.Parallel()
	bothVersions(t, func(t *testing.T, v packet.Version) {
		b := startBroker(t)
		cp := rawConnect(v, "raw-ka")
		cp.KeepAlive = 1
		c, _ := connectRaw(t, b.Addr, cp)
		// Pinging more often than the keep alive holds the connection open
		// for longer than 1.5 keep-alive periods.
		for range 5 {
			time.Sleep(400 * time.Millisecond)
			c.send(&packet.Pingreq{})
			c.expect(packet.PINGRESP)
		}
		// Silence for 1.5x the keep alive ends it [MQTT-3.1.2-24]: v5 is
		// told 0x8D, v3 is closed.
		c.expectDisconnect(packet.KeepAliveTimeout)
		if n := b.Stats().KeepAliveTimeouts.Load(); n != 1 {
			t.Errorf("KeepAliveTimeouts = %d, want 1", n)
		}
	})
}

// Keep alive 0 turns the mechanism off [MQTT-3.1.2-10]: an idle client stays
// connected past the time the broker allows for CONNECT (10 s), which once
// closed such a connection as a keep alive timeout.
func TestRawKeepAliveZeroNeverTimesOut(t *testing.T) {
	t.Parallel()
	bothVersions(t, func(t *testing.T, v packet.Version) {
		b := startBroker(t)
		cp := rawConnect(v, "raw-ka0")
		cp.KeepAlive = 0
		c, _ := connectRaw(t, b.Addr, cp)
		if p, err := c.read(11 * time.Second); err != errQuiet {
			t.Fatalf("idle with keep alive 0: got %v (%v); want silence", p, err)
		}
		if rc := c.publish("ka0/still-here", 1, 1, "yes"); rc != packet.Success && rc != packet.NoMatchingSubscribers {
			t.Fatalf("PUBACK after 11 s idle: %v", rc)
		}
		if n := b.Stats().KeepAliveTimeouts.Load(); n != 0 {
			t.Errorf("KeepAliveTimeouts = %d, want 0", n)
		}
	})
}

func TestRawPingreq(t *testing.T) {
	t.Parallel()
	bothVersions(t, func(t *testing.T, v packet.Version) {
		b := startBroker(t)
		c, _ := connectRaw(t, b.Addr, rawConnect(v, "raw-ping"))
		for range 3 {
			c.send(&packet.Pingreq{})
			c.expect(packet.PINGRESP)
		}
	})
}

func TestRawSecondConnectIsProtocolError(t *testing.T) {
	t.Parallel()
	bothVersions(t, func(t *testing.T, v packet.Version) {
		b := startBroker(t)
		cp := rawConnect(v, "raw-2nd")
		c, _ := connectRaw(t, b.Addr, cp)
		c.send(cp)
		// [MQTT-3.1.0-2]: v5 gets DISCONNECT 0x82, v3 is closed.
		c.expectDisconnect(packet.ProtocolError)
		other, _ := connectRaw(t, b.Addr, rawConnect(v, "raw-2nd-other"))
		other.send(&packet.Pingreq{})
		other.expect(packet.PINGRESP)
	})
}

func TestRawReceiveMaximumExceeded(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(c *config.Config, _ *broker.Options) { c.Limits.ReceiveMaximum = 2 })
	c, ack := connectRaw(t, b.Addr, rawConnect(packet.V5, "raw-rm"))
	if !ack.Properties.HasReceiveMaximum || ack.Properties.ReceiveMaximum != 2 {
		t.Fatalf("CONNACK Receive Maximum %v/%d, want 2", ack.Properties.HasReceiveMaximum, ack.Properties.ReceiveMaximum)
	}
	qos2 := func(id uint16) {
		c.send(&packet.Publish{Topic: []byte("rm/t"), QoS: 2, PacketID: id, Payload: []byte("x")})
	}
	qos2(1)
	c.expectAck(packet.PUBREC, 1)
	qos2(2)
	c.expectAck(packet.PUBREC, 2)
	// Completing one frees a slot.
	c.ack(packet.PUBREL, 1)
	c.expectAck(packet.PUBCOMP, 1)
	qos2(3)
	c.expectAck(packet.PUBREC, 3)
	// A third unacknowledged QoS 2 message exceeds the maximum [MQTT-3.3.4-7].
	qos2(4)
	c.expectDisconnect(packet.ReceiveMaximumExceeded)
}

func TestRawMaximumPacketSizeFromClient(t *testing.T) {
	t.Parallel()
	bothVersions(t, func(t *testing.T, v packet.Version) {
		b := startBroker(t, func(c *config.Config, _ *broker.Options) { c.Limits.MaxPacketSize = 1024 })
		c, ack := connectRaw(t, b.Addr, rawConnect(v, "raw-mps"))
		if v == packet.V5 && (!ack.Properties.HasMaximumPacketSize || ack.Properties.MaximumPacketSize != 1024) {
			t.Fatalf("CONNACK Maximum Packet Size %v/%d, want 1024", ack.Properties.HasMaximumPacketSize, ack.Properties.MaximumPacketSize)
		}
		c.publish("mps/t", 1, 1, string(bytes.Repeat([]byte("x"), 900)))
		// [MQTT-3.2.2-15]: larger than announced ends the connection with
		// 0x95 (v5) or a close (v3).
		c.send(&packet.Publish{Topic: []byte("mps/t"), QoS: 1, PacketID: 2, Payload: bytes.Repeat([]byte("x"), 2000)})
		c.expectDisconnect(packet.PacketTooLarge)
		other, _ := connectRaw(t, b.Addr, rawConnect(v, "raw-mps-other"))
		other.publish("mps/t", 1, 1, "fine")
	})
}

func TestRawTopicAliasErrors(t *testing.T) {
	t.Parallel()
	// A QoS 0 PUBLISH of "x" to topic "a" with Topic Alias 0, which the
	// encoder refuses to build.
	aliasZero := []byte{0x30, 9, 0, 1, 'a', 3, 0x23, 0, 0, 'x', 'y'}
	aliasZero[1] = byte(len(aliasZero) - 2)
	for _, tc := range []struct {
		name     string
		aliasMax int
		send     func(c *rawClient)
		want     packet.ReasonCode
	}{
		{"alias 0", 10, func(c *rawClient) { c.sendBytes(aliasZero) }, packet.TopicAliasInvalid},
		{"alias above the maximum", 2, func(c *rawClient) {
			c.send(&packet.Publish{Topic: []byte("a"), Properties: packet.Properties{TopicAlias: 3, HasTopicAlias: true}})
		}, packet.TopicAliasInvalid},
		{"aliases disabled", 0, func(c *rawClient) {
			c.send(&packet.Publish{Topic: []byte("a"), Properties: packet.Properties{TopicAlias: 1, HasTopicAlias: true}})
		}, packet.TopicAliasInvalid},
		{"alias used before it was set", 10, func(c *rawClient) {
			c.send(&packet.Publish{Properties: packet.Properties{TopicAlias: 2, HasTopicAlias: true}, Payload: []byte("x")})
		}, packet.ProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, func(c *config.Config, _ *broker.Options) { c.Limits.TopicAliasMaximum = &tc.aliasMax })
			c, ack := connectRaw(t, b.Addr, rawConnect(packet.V5, "raw-alias"))
			if got := ack.Properties.TopicAliasMaximum; int(got) != tc.aliasMax || ack.Properties.HasTopicAliasMaximum != (tc.aliasMax > 0) {
				t.Fatalf("CONNACK Topic Alias Maximum %v/%d, want %d", ack.Properties.HasTopicAliasMaximum, got, tc.aliasMax)
			}
			tc.send(c)
			c.expectDisconnect(tc.want)
		})
	}
}

func TestRawExactlyOnceQoS2(t *testing.T) {
	t.Parallel()
	bothVersions(t, func(t *testing.T, v packet.Version) {
		b := startBroker(t)
		sub, _ := connectRaw(t, b.Addr, rawConnect(packet.V5, "raw-eo-sub"))
		sub.subscribe(1, 0, rawSub("eo/t", 2))
		pub, _ := connectRaw(t, b.Addr, rawConnect(v, "raw-eo-pub"))

		p := &packet.Publish{Topic: []byte("eo/t"), QoS: 2, PacketID: 7, Payload: []byte("once")}
		pub.send(p)
		pub.expectAck(packet.PUBREC, 7)
		// The same id again before PUBREL: acknowledged again, not routed
		// again [MQTT-4.3.3-9].
		p.Dup = true
		pub.send(p)
		pub.expectAck(packet.PUBREC, 7)
		pub.ack(packet.PUBREL, 7)
		if rc := pub.expectAck(packet.PUBCOMP, 7).ReasonCode; rc != packet.Success {
			t.Fatalf("PUBCOMP reason %v, want success", rc)
		}
		// A PUBREL for an id no longer held.
		pub.ack(packet.PUBREL, 7)
		if rc := pub.expectAck(packet.PUBCOMP, 7).ReasonCode; v == packet.V5 && rc != packet.PacketIdentifierNotFound {
			t.Fatalf("PUBCOMP for an unknown id: reason %v, want 0x92", rc)
		}
		// Once released, the id starts a new message.
		pub.publish("eo/t", 2, 7, "again")
		pub.publish("eo/t", 0, 0, "fence")

		var got []string
		for {
			d := sub.next()
			switch d := d.(type) {
			case *packet.Publish:
				got = append(got, string(d.Payload))
				if d.QoS == 2 {
					sub.ack(packet.PUBREC, d.PacketID)
				}
			case *packet.Ack:
				if d.Type == packet.PUBREL {
					sub.ack(packet.PUBCOMP, d.PacketID)
				}
			}
			if len(got) > 0 && got[len(got)-1] == "fence" {
				break
			}
		}
		if want := []string{"once", "again", "fence"}; !slices.Equal(got, want) {
			t.Fatalf("subscriber received %q, want %q", got, want)
		}
		if v == packet.V5 {
			// PUBREC tells a v5 publisher when nobody subscribed.
			pub.send(&packet.Publish{Topic: []byte("eo/nobody"), QoS: 2, PacketID: 8, Payload: []byte("x")})
			if rc := pub.expectAck(packet.PUBREC, 8).ReasonCode; rc != packet.NoMatchingSubscribers {
				t.Errorf("PUBREC reason %v, want 0x10 no matching subscribers", rc)
			}
			pub.ack(packet.PUBREL, 8)
			pub.expectAck(packet.PUBCOMP, 8)
		}
	})
}

// TestRawQoS2ReceiveStateSurvivesReconnect checks that an inbound QoS 2 id
// is remembered in the session: a publisher that resends it after a
// reconnect is not delivered twice.
func TestRawQoS2ReceiveStateSurvivesReconnect(t *testing.T) {
	t.Parallel()
	bothVersions(t, func(t *testing.T, v packet.Version) {
		b := startBroker(t)
		sub, _ := connectRaw(t, b.Addr, rawConnect(packet.V5, "raw-eo2-sub"))
		sub.subscribe(1, 0, rawSub("eo2/t", 0))
		cp := persistent(rawConnect(v, "raw-eo2-pub"), false)
		pub, _ := connectRaw(t, b.Addr, cp)
		p := &packet.Publish{Topic: []byte("eo2/t"), QoS: 2, PacketID: 9, Payload: []byte("once")}
		pub.send(p)
		pub.expectAck(packet.PUBREC, 9)
		pub.close()

		pub, ack := connectRaw(t, b.Addr, persistent(cp, true))
		if !ack.SessionPresent {
			t.Fatal("reconnect: Session Present 0, want 1")
		}
		p.Dup = true
		pub.send(p)
		pub.expectAck(packet.PUBREC, 9)
		pub.ack(packet.PUBREL, 9)
		if rc := pub.expectAck(packet.PUBCOMP, 9).ReasonCode; rc != packet.Success {
			t.Fatalf("PUBCOMP reason %v, want success: the id was forgotten", rc)
		}
		pub.publish("eo2/t", 0, 0, "fence")
		if d := sub.expectPublish(); string(d.Payload) != "once" {
			t.Fatalf("got %q, want once", d.Payload)
		}
		if d := sub.expectPublish(); string(d.Payload) != "fence" {
			t.Fatalf("got %q after the message, want the fence: delivered twice", d.Payload)
		}
	})
}

func TestRawDupRedeliveryOnResume(t *testing.T) {
	t.Parallel()
	bothVersions(t, func(t *testing.T, v packet.Version) {
		b := startBroker(t)
		cp := persistent(rawConnect(v, "raw-dup"), false)
		sub, _ := connectRaw(t, b.Addr, cp)
		sub.subscribe(1, 0, rawSub("dup/#", 2))
		pub, _ := connectRaw(t, b.Addr, rawConnect(packet.V5, "raw-dup-pub"))
		pub.publish("dup/a", 1, 1, "A")
		pub.publish("dup/b", 2, 2, "B")
		pub.publish("dup/c", 2, 3, "C")
		a, bm, c := sub.expectPublish(), sub.expectPublish(), sub.expectPublish()
		for _, p := range []*packet.Publish{a, bm, c} {
			if p.Dup {
				t.Fatalf("first delivery of %q has DUP 1", p.Payload)
			}
		}
		// C gets as far as PUBREL; A and B are never acknowledged.
		sub.ack(packet.PUBREC, c.PacketID)
		sub.expectAck(packet.PUBREL, c.PacketID)
		sub.close()

		sub, ack := connectRaw(t, b.Addr, persistent(cp, true))
		if !ack.SessionPresent {
			t.Fatal("resume: Session Present 0, want 1")
		}
		// [MQTT-4.4.0-1]: unacknowledged PUBLISH again with DUP 1 and the
		// same packet id, and PUBREL again, in the original order.
		for _, want := range []*packet.Publish{a, bm} {
			got := sub.expectPublish()
			if !got.Dup || got.PacketID != want.PacketID || got.QoS != want.QoS ||
				string(got.Topic) != string(want.Topic) || string(got.Payload) != string(want.Payload) {
				t.Fatalf("redelivered %s %q id %d QoS %d DUP %v, want %s %q id %d QoS %d DUP true",
					got.Topic, got.Payload, got.PacketID, got.QoS, got.Dup, want.Topic, want.Payload, want.PacketID, want.QoS)
			}
		}
		sub.expectAck(packet.PUBREL, c.PacketID)

		sub.ack(packet.PUBACK, a.PacketID)
		sub.ack(packet.PUBREC, bm.PacketID)
		sub.expectAck(packet.PUBREL, bm.PacketID)
		sub.ack(packet.PUBCOMP, bm.PacketID)
		sub.ack(packet.PUBCOMP, c.PacketID)
		sub.sync()
		// Settled: a later resume has nothing to resend.
		sub.close()
		sub, _ = connectRaw(t, b.Addr, persistent(cp, true))
		sub.expectQuiet()
	})
}

// TestRawResumeRespectsReceiveMaximum checks that the redelivery on resume
// stays within the Receive Maximum of the new connection, which may be
// lower than the old one's [MQTT-3.3.4-9].
func TestRawResumeRespectsReceiveMaximum(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	cp := persistent(rawConnect(packet.V5, "raw-resume-rm"), false)
	cp.Properties.ReceiveMaximum, cp.Properties.HasReceiveMaximum = 5, true
	sub, _ := connectRaw(t, b.Addr, cp)
	sub.subscribe(1, 0, rawSub("resume-rm/t", 1))
	pub, _ := connectRaw(t, b.Addr, rawConnect(packet.V5, "raw-resume-rm-pub"))
	const total = 7
	for i := range total {
		pub.publish("resume-rm/t", 1, uint16(i+1), fmt.Sprint(i))
	}
	for range 5 {
		sub.expectPublish()
	}
	sub.close()

	cp.Properties.ReceiveMaximum = 2
	sub, _ = connectRaw(t, b.Addr, persistent(cp, true))
	var unacked []uint16
	for i := range total {
		p := sub.expectPublish()
		if string(p.Payload) != fmt.Sprint(i) || p.Dup != (i < 5) {
			t.Fatalf("message %d: got %q DUP %v, want %d DUP %v", i, p.Payload, p.Dup, i, i < 5)
		}
		unacked = append(unacked, p.PacketID)
		if len(unacked) == 2 {
			if i < total-1 {
				sub.expectQuiet() // the window of 2 is full
			}
			for _, id := range unacked {
				sub.ack(packet.PUBACK, id)
			}
			unacked = unacked[:0]
		}
	}
}

func TestRawPacketIDWindow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		v           packet.Version
		receiveMax  uint16 // client's Receive Maximum, 0 for none
		maxInflight int
		want        int
	}{
		{"3.1.1 bounded by limits.maxInflight", packet.V311, 0, 3, 3},
		{"5.0 Receive Maximum below maxInflight", packet.V5, 2, 3, 2},
		{"5.0 Receive Maximum above maxInflight", packet.V5, 10, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, func(c *config.Config, _ *broker.Options) { c.Limits.MaxInflight = tc.maxInflight })
			cp := rawConnect(tc.v, "raw-window")
			if tc.receiveMax > 0 {
				cp.Properties.ReceiveMaximum, cp.Properties.HasReceiveMaximum = tc.receiveMax, true
			}
			sub, _ := connectRaw(t, b.Addr, cp)
			sub.subscribe(1, 0, rawSub("win/t", 1))
			pub, _ := connectRaw(t, b.Addr, rawConnect(packet.V5, "raw-window-pub"))
			const total = 8
			for i := range total {
				pub.publish("win/t", 1, uint16(i+1), fmt.Sprint(i))
			}

			inflight := map[uint16]bool{}
			var order []uint16
			receive := func(want int) {
				t.Helper()
				p := sub.expectPublish()
				if string(p.Payload) != fmt.Sprint(want) {
					t.Fatalf("got message %q, want %d", p.Payload, want)
				}
				if p.PacketID == 0 || inflight[p.PacketID] {
					t.Fatalf("packet id %d is 0 or already in flight %v", p.PacketID, order)
				}
				inflight[p.PacketID] = true
				order = append(order, p.PacketID)
			}
			next := 0
			for ; next < tc.want; next++ {
				receive(next)
			}
			sub.expectQuiet() // the window is full
			for next < total {
				id := order[0]
				order = order[1:]
				delete(inflight, id)
				sub.ack(packet.PUBACK, id)
				receive(next)
				next++
			}
		})
	}
}

func TestRawSubscriptionIdentifiers(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	sub, _ := connectRaw(t, b.Addr, rawConnect(packet.V5, "raw-subid"))
	sub.subscribe(1, 1, rawSub("si/+", 0))
	sub.subscribe(2, 2, rawSub("si/#", 1))
	sub.subscribe(3, 0, rawSub("si/a", 0), rawSub("fence", 0))
	pub, _ := connectRaw(t, b.Addr, rawConnect(packet.V5, "raw-subid-pub"))

	expect := func(topic string, qos byte, ids ...uint32) {
		t.Helper()
		pub.publish(topic, 1, 1, "m")
		pub.publish("fence", 0, 0, "fence")
		p := sub.expectPublish()
		got := slices.Clone(p.Properties.SubscriptionIDs)
		slices.Sort(got)
		if string(p.Topic) != topic || !slices.Equal(got, ids) || p.QoS != qos {
			t.Fatalf("%s: got %s QoS %d with subscription ids %v, want QoS %d ids %v", topic, p.Topic, p.QoS, got, qos, ids)
		}
		if p.QoS > 0 {
			sub.ack(packet.PUBACK, p.PacketID)
		}
		// One delivery for all overlapping subscriptions [MQTT-3.3.4-3].
		if f := sub.expectPublish(); string(f.Topic) != "fence" || len(f.Properties.SubscriptionIDs) != 0 {
			t.Fatalf("%s: got %s ids %v, want the fence without ids", topic, f.Topic, f.Properties.SubscriptionIDs)
		}
	}
	// [MQTT-3.3.4-5]: every matching identifier, at the highest granted QoS.
	expect("si/a", 1, 1, 2)
	expect("si/b/c", 1, 2)
	// A repeated SUBSCRIBE replaces the identifier of that filter.
	sub.subscribe(4, 7, rawSub("si/+", 0))
	expect("si/a", 1, 2, 7)
	sub.send(&packet.Unsubscribe{PacketID: 5, Filters: []string{"si/#"}})
	sub.expect(packet.UNSUBACK)
	expect("si/a", 0, 7)

	// A retained message sent for a new subscription carries that
	// subscription's identifier only.
	pub.send(&packet.Publish{Topic: []byte("si/r"), Retain: true, Payload: []byte("kept")})
	if p := sub.expectPublish(); !slices.Equal(p.Properties.SubscriptionIDs, []uint32{7}) {
		t.Fatalf("live si/r: subscription ids %v, want [7]", p.Properties.SubscriptionIDs)
	}
	sub.send(&packet.Subscribe{PacketID: 6, Properties: packet.Properties{SubscriptionIDs: []uint32{9}},
		Subscriptions: []packet.Subscription{rawSub("si/r", 0)}})
	sub.expect(packet.SUBACK)
	if p := sub.expectPublish(); !p.Retain || !slices.Equal(p.Properties.SubscriptionIDs, []uint32{9}) {
		t.Fatalf("retained si/r: RETAIN %v subscription ids %v, want RETAIN 1 ids [9]", p.Retain, p.Properties.SubscriptionIDs)
	}
}

func TestRawSharedSubscriptionWithNoLocalIsProtocolError(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c, _ := connectRaw(t, b.Addr, rawConnect(packet.V5, "raw-share-nl"))
	// SUBSCRIBE id 1, no properties, "$share/g/t" with QoS 1 and No Local,
	// which the encoder refuses to build.
	sub := append([]byte{byte(packet.SUBSCRIBE)<<4 | 0x02, 16, 0, 1, 0, 0, 10}, "$share/g/t"...)
	c.sendBytes(append(sub, 0x05))
	// [MQTT-3.8.3-4]
	c.expectDisconnect(packet.ProtocolError)
}

func TestRawSubackReasonCodesV3(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c, _ := connectRaw(t, b.Addr, rawConnect(packet.V311, "raw-suback3"))
	got := c.subscribe(1, 0, rawSub("ok/x", 1), rawSub("bad/#/x", 1), rawSub("$share/g/ok", 2), rawSub("a+", 0))
	// 3.1.1 SUBACK knows the granted QoS and 0x80 failure only.
	if want := []packet.ReasonCode{1, 0x80, 2, 0x80}; !slices.Equal(got, want) {
		t.Fatalf("SUBACK %v, want %v", got, want)
	}
	c.send(&packet.Unsubscribe{PacketID: 2, Filters: []string{"ok/x", "never"}})
	if u := c.expect(packet.UNSUBACK).(*packet.Unsuback); u.PacketID != 2 {
		t.Fatalf("UNSUBACK for packet id %d, want 2", u.PacketID)
	}
}

func TestRawAuthPacket(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	// AUTH does not exist in 3.1.1: the connection is closed.
	c, _ := connectRaw(t, b.Addr, rawConnect(packet.V311, "raw-auth3"))
	c.sendBytes([]byte{byte(packet.AUTH) << 4, 0})
	c.expectClosed()
}

func TestRawMQTT31(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c, ack := connectRaw(t, b.Addr, rawConnect(packet.V31, "raw-31"))
	if ack.SessionPresent {
		t.Fatal("MQTT 3.1 CONNACK with Session Present")
	}
	c.subscribe(1, 0, rawSub("v31/t", 1))
	c.send(&packet.Publish{Topic: []byte("v31/t"), QoS: 1, PacketID: 2, Payload: []byte("hi")})
	var gotAck, gotMsg bool
	for !gotAck || !gotMsg {
		switch p := c.next().(type) {
		case *packet.Ack:
			gotAck = p.Type == packet.PUBACK && p.PacketID == 2
		case *packet.Publish:
			gotMsg = string(p.Payload) == "hi"
			c.ack(packet.PUBACK, p.PacketID)
		}
	}
}
