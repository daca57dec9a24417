package broker_test

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func TestSmokeV3PubSub(t *testing.T) {
	b := startBroker(t)
	got := make(chan paho.Message, 10)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID(uniqueID("sub")))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("a/+", 2, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID(uniqueID("pub")))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	for q := byte(0); q <= 2; q++ {
		if tok := pub.Publish("a/b", q, false, []byte{'x', '0' + q}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish qos %d: %v", q, tok.Error())
		}
		select {
		case m := <-got:
			if m.Topic() != "a/b" || string(m.Payload()) != string([]byte{'x', '0' + q}) || m.Qos() != q {
				t.Fatalf("got %s %q qos %d", m.Topic(), m.Payload(), m.Qos())
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("qos %d message not delivered", q)
		}
	}
}
