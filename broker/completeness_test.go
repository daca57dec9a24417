package broker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"
)

// TestEveryMatchingSubscriptionGetsEachMessage: four publishers send at
// once to subscribers whose filters match in different ways. Each session
// must get every message it matches exactly once and in each publisher's
// order, an overlap of two filters in one MQTT 5 session included, at the
// QoS the message and the best matching filter allow; a $share group must
// get every message exactly once between its members, and each member some.
func TestEveryMatchingSubscriptionGetsEachMessage(t *testing.T) {
	t.Parallel()
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("QoS %d", qos), func(t *testing.T) {
			t.Parallel()
			b := startBroker(t)
			const publishers, perPublisher = 4, 300
			root := uniqueID("complete")
			topic := func(p int) string { return fmt.Sprintf("%s/p%d/t", root, p) }

			plus := connectV5(t, b.Addr, uniqueID("complete-plus"))
			plus.sub(2, root+"/+/t")
			overlap := connectV5(t, b.Addr, uniqueID("complete-overlap"))
			overlap.subscribeWith(0,
				paho.SubscribeOptions{Topic: root + "/#", QoS: 1},
				paho.SubscribeOptions{Topic: topic(0), QoS: 2})
			exact, _ := connectV3(t, b.Addr, uniqueID("complete-v3"))
			exact.sub(2, topic(1))
			group := make([]*v5Client, 3)
			for i := range group {
				group[i] = connectV5(t, b.Addr, uniqueID("complete-share"))
				group[i].sub(2, "$share/g/"+root+"/#")
			}

			var wg sync.WaitGroup
			for p := range publishers {
				pub := connectV5(t, b.Addr, uniqueID("complete-pub"))
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 2*rawWait)
					defer cancel()
					for seq := range perPublisher {
						msg := &paho.Publish{Topic: topic(p), QoS: qos, Payload: fmt.Appendf(nil, "%d %d", p, seq)}
						if _, err := pub.Publish(ctx, msg); err != nil {
							t.Errorf("publisher %d, message %d: %v", p, seq, err)
							return
						}
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				return
			}

			// deliveries checks one session's messages: each publisher's in
			// order, none twice, at the QoS expected for its publisher.
			deliveries := func(who string, n int, next func() (topic string, payload []byte, qos byte), want func(p int) (bool, byte)) {
				t.Helper()
				seen := make([]int, publishers)
				for range n {
					gotTopic, payload, gotQoS := next()
					var p, seq int
					if _, err := fmt.Sscanf(string(payload), "%d %d", &p, &seq); err != nil || p < 0 || p >= publishers || gotTopic != topic(p) {
						t.Fatalf("%s: a message %q on %q that nobody published", who, payload, gotTopic)
					}
					matches, wantQoS := want(p)
					switch {
					case !matches:
						t.Fatalf("%s: message %q on %q, which its filters do not match", who, payload, gotTopic)
					case seq != seen[p]:
						t.Fatalf("%s: from publisher %d got message %d, want %d (lost, repeated or out of order)", who, p, seq, seen[p])
					case gotQoS != wantQoS:
						t.Fatalf("%s: message %q at QoS %d, want %d", who, payload, gotQoS, wantQoS)
					}
					seen[p]++
				}
			}
			v5Next := func(c *v5Client) func() (string, []byte, byte) {
				return func() (string, []byte, byte) { m := c.recv(); return m.Topic, m.Payload, m.QoS }
			}
			deliveries("+ subscriber", publishers*perPublisher, v5Next(plus), func(int) (bool, byte) { return true, qos })
			plus.expectQuiet()
			// One delivery per message in spite of the overlap [MQTT-3.3.4-2],
			// at the larger QoS of the two filters for publisher 0's topic.
			deliveries("overlapping subscriber", publishers*perPublisher, v5Next(overlap), func(p int) (bool, byte) {
				if p == 0 {
					return true, qos
				}
				return true, 1
			})
			overlap.expectQuiet()
			deliveries("MQTT 3.1.1 subscriber", perPublisher, func() (string, []byte, byte) {
				m := exact.recv()
				return m.Topic(), m.Payload(), m.Qos()
			}, func(p int) (bool, byte) { return p == 1, qos })
			exact.expectQuiet()

			seen := map[string]int{}
			counts := make([]int, len(group))
			eventually(t, "the $share group to get every message", func() bool {
				return drainGroup(group, seen, counts) >= publishers*perPublisher
			})
			for _, m := range group {
				m.expectQuiet()
			}
			for payload, n := range seen {
				if n != 1 {
					t.Errorf("the group got message %q %d times, want once", payload, n)
				}
			}
			if len(seen) != publishers*perPublisher {
				t.Errorf("the group got %d distinct messages, want %d", len(seen), publishers*perPublisher)
			}
			for i, n := range counts {
				if n == 0 {
					t.Errorf("member %d got none of the group's messages (%v)", i, counts)
				}
			}
		})
	}
}
