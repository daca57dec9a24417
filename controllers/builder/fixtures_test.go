package builder

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/broker/auth"
)

// brokerOpt changes a test MQTTBroker; tables build their cases from these.
type brokerOpt func(*v1.MQTTBroker)

// newBroker is MQTTBroker acme/fleet with every spec field unset (no CRD defaulting), then
// opts applied.
func newBroker(opts ...brokerOpt) *v1.MQTTBroker {
	b := &v1.MQTTBroker{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: "acme"}}
	for _, o := range opts {
		o(b)
	}
	return b
}

func withReplicas(n int32) brokerOpt { return func(b *v1.MQTTBroker) { b.Spec.Replicas = &n } }

func withListeners(ls ...v1.ListenerSpec) brokerOpt {
	return func(b *v1.MQTTBroker) { b.Spec.Listeners = ls }
}

func withClientAuth(a v1.ClientAuth) brokerOpt {
	return func(b *v1.MQTTBroker) { b.Spec.TLS.ClientAuth = a }
}

func withTLSDisabled() brokerOpt { return func(b *v1.MQTTBroker) { b.Spec.TLS.Enabled = new(false) } }

func withRules(rules ...v1.ACLRule) brokerOpt {
	return func(b *v1.MQTTBroker) { b.Spec.Authorization.Rules = rules }
}

func withDefaultAction(a v1.ACLDefaultAction) brokerOpt {
	return func(b *v1.MQTTBroker) { b.Spec.Authorization.DefaultAction = a }
}

func withPersistence(size string) brokerOpt {
	return func(b *v1.MQTTBroker) {
		b.Spec.Persistence.Enabled = new(true)
		b.Spec.Persistence.Size = new(resource.MustParse(size))
	}
}

func withAllLimits() brokerOpt {
	return func(b *v1.MQTTBroker) {
		b.Spec.Limits = v1.LimitsSpec{
			MaxConnections:      new(int32(5000)),
			MaxPacketSize:       new(int32(262144)),
			ReceiveMaximum:      new(int32(100)),
			MaxInflight:         new(int32(50)),
			MaxQueuedMessages:   new(int32(2000)),
			MaxQueuedBytes:      new(int64(8 << 20)),
			MaxSessionExpiry:    new(int64(86400)),
			MaxKeepAlive:        new(int32(300)),
			TopicAliasMaximum:   new(int32(0)),
			MaxTopicLength:      new(int32(1024)),
			MaxTopicLevels:      new(int32(16)),
			MaxRetainedMessages: new(int32(100000)),
		}
	}
}

func rule(topic string, access v1.ACLAccess) v1.ACLRule {
	return v1.ACLRule{Topic: topic, Access: access}
}

// sensorUsers are two password users and one certificate-only user, in no particular order.
func sensorUsers(t *testing.T) []User {
	t.Helper()
	return []User{
		{Object: "sensor-1", Username: "sensor-1", PasswordHash: hashOf(t, "s1-secret"), ACLs: []v1.ACLRule{
			rule("telemetry/sensor-1/#", v1.ACLWrite),
			rule("commands/sensor-1/#", v1.ACLRead),
		}},
		{Object: "dashboard", Username: "dashboard", PasswordHash: hashOf(t, "dash-secret"), ACLs: []v1.ACLRule{
			rule("telemetry/#", v1.ACLRead),
			rule("telemetry/+/diagnostics/#", v1.ACLDeny),
			rule("commands/+/#", v1.ACLWrite),
		}},
		{Object: "gateway-cert", Username: "gateway", ACLs: []v1.ACLRule{
			rule("gateways/gateway/#", v1.ACLReadWrite),
		}},
	}
}

// fixedHashes hashes each password once per test binary: a hash has a random salt, and
// tests that compare renderings of the same users need the same hashes.
var fixedHashes = map[string]string{}

func hashOf(t *testing.T, password string) string {
	t.Helper()
	if h, ok := fixedHashes[password]; ok {
		return h
	}
	h, err := auth.HashPassword([]byte(password))
	if err != nil {
		t.Fatal(err)
	}
	fixedHashes[password] = h
	return h
}

func durationOf(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
