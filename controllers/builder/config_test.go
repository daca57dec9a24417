package builder

import (
	"slices"
	"strings"
	"testing"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/broker/config"
)

// parseRendered renders broker.yaml and loads it with the broker's own parser.
func parseRendered(t *testing.T, b *v1.MQTTBroker) *config.Config {
	t.Helper()
	cm, err := ConfigMap(b)
	if err != nil {
		t.Fatalf("ConfigMap: %v", err)
	}
	c, err := config.Parse(ConfigKey, []byte(cm.Data[ConfigKey]))
	if err != nil {
		t.Fatalf("the broker refuses the rendered config: %v\n%s", err, cm.Data[ConfigKey])
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return c
}

func TestRenderedConfigLoadsInTheBroker(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			c := parseRendered(t, tc.broker)
			if c.PasswordFile != UsersDir+"/"+PasswdKey || c.ACLFile != ACLDir+"/"+ACLKey {
				t.Errorf("passwordFile %q aclFile %q are not the mounted files", c.PasswordFile, c.ACLFile)
			}
			if c.Metrics.Address != "0.0.0.0:9090" {
				t.Errorf("metrics.address %q: the probes and ServiceMonitor use 0.0.0.0:9090", c.Metrics.Address)
			}
		})
	}
}

func TestConfigDefaultsAreTheBrokers(t *testing.T) {
	c := parseRendered(t, newBroker())
	want := config.Default()
	if c.Limits.MaxPacketSize != want.Limits.MaxPacketSize || *c.Limits.TopicAliasMaximum != *want.Limits.TopicAliasMaximum ||
		c.Limits.MaxQueuedMessages != want.Limits.MaxQueuedMessages || c.Limits.MaxConnections != 0 {
		t.Errorf("unset limits = %+v, want the broker defaults %+v", c.Limits, want.Limits)
	}
	if c.AllowAnonymous {
		t.Error("anonymous access must be off unless spec.authentication.allowAnonymous is true")
	}
	if len(c.Listeners) != 2 || c.Listeners[0].Address != "0.0.0.0:1883" || c.Listeners[1].Address != "0.0.0.0:8883" ||
		c.Listeners[1].TLS == nil || c.Listeners[0].TLS != nil {
		t.Errorf("default listeners = %+v, want mqtt on 1883 and TLS on 8883", c.Listeners)
	}
	// Without TLS the default has no TLS listener (it would have no certificate).
	c = parseRendered(t, newBroker(withTLSDisabled()))
	if len(c.Listeners) != 1 || c.Listeners[0].TLS != nil {
		t.Errorf("listeners with TLS disabled = %+v, want mqtt on 1883 only", c.Listeners)
	}
}

func TestConfigCarriesTheSpec(t *testing.T) {
	c := parseRendered(t, newBroker(withAllLimits(), func(b *v1.MQTTBroker) {
		b.Spec.LogLevel = "warn"
		b.Spec.Authentication.AllowAnonymous = new(true)
	}))
	l := c.Limits
	got := []int64{int64(l.MaxConnections), int64(l.MaxPacketSize), int64(l.ReceiveMaximum), int64(l.MaxInflight),
		int64(l.MaxQueuedMessages), l.MaxQueuedBytes, int64(l.MaxSessionExpiry), int64(l.MaxKeepAlive),
		int64(*l.TopicAliasMaximum), int64(l.MaxTopicLength), int64(l.MaxTopicLevels), int64(l.MaxRetainedMessages)}
	want := []int64{5000, 262144, 100, 50, 2000, 8 << 20, 86400, 300, 0, 1024, 16, 100000}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("limits = %v, want %v (topicAliasMaximum 0 must stay 0: it disables aliases)", got, want)
			break
		}
	}
	if !c.AllowAnonymous || c.Log.Level != "warn" {
		t.Errorf("allowAnonymous %v log.level %q, want true and warn", c.AllowAnonymous, c.Log.Level)
	}
}

func TestConfigProxyProtocolListener(t *testing.T) {
	b := newBroker(withListeners(
		v1.ListenerSpec{Name: "mqtt", Protocol: v1.ProtocolMQTT, Port: 1883},
		v1.ListenerSpec{Name: "lb", Protocol: v1.ProtocolMQTTS, Port: 8884, ProxyProtocol: true, TrustedProxies: []string{"10.0.0.0/16", "10.1.2.3"}},
	))
	c := parseRendered(t, b)
	if l := c.Listeners[0]; l.ProxyProtocol || len(l.TrustedProxies) > 0 {
		t.Errorf("listener mqtt = %+v, want no PROXY protocol", l)
	}
	if l := c.Listeners[1]; !l.ProxyProtocol || !slices.Equal(l.TrustedProxies, []string{"10.0.0.0/16", "10.1.2.3"}) || l.TLS == nil {
		t.Errorf("listener lb = %+v, want TLS behind the PROXY protocol from 10.0.0.0/16 and 10.1.2.3", l)
	}
	// The broker binds listeners at start, so turning it on rolls the pods.
	before := RestartHash(b)
	b.Spec.Listeners[0].ProxyProtocol = true
	if RestartHash(b) == before {
		t.Error("turning on proxyProtocol does not restart the pods, which only read listeners at start")
	}
}

func TestConfigTLSListeners(t *testing.T) {
	listeners := withListeners(
		v1.ListenerSpec{Name: "mqtts", Protocol: v1.ProtocolMQTTS, Port: 8883},
		v1.ListenerSpec{Name: "wss", Protocol: v1.ProtocolWSS, Port: 8084},
	)
	for _, tc := range []struct {
		auth      v1.ClientAuth
		wantCA    bool
		wantCNUse bool
	}{
		{"", false, false},
		{v1.ClientAuthNone, false, false},
		{v1.ClientAuthRequest, true, false},
		{v1.ClientAuthRequire, true, true},
	} {
		t.Run(string(tc.auth), func(t *testing.T) {
			c := parseRendered(t, newBroker(listeners, withClientAuth(tc.auth)))
			for _, l := range c.Listeners {
				if l.TLS == nil {
					t.Fatalf("listener %s has no TLS", l.Name)
				}
				if l.TLS.CertFile != TLSDir+"/tls.crt" || l.TLS.KeyFile != TLSDir+"/tls.key" {
					t.Errorf("listener %s reads %s and %s, not the mounted Secret", l.Name, l.TLS.CertFile, l.TLS.KeyFile)
				}
				if (l.TLS.CAFile == TLSDir+"/ca.crt") != tc.wantCA || l.TLS.UseCNAsUsername != tc.wantCNUse {
					t.Errorf("listener %s tls = %+v, want caFile %v useCNAsUsername %v", l.Name, l.TLS, tc.wantCA, tc.wantCNUse)
				}
				want := string(tc.auth)
				if want == "" {
					want = "none"
				}
				if l.TLS.ClientAuth != want {
					t.Errorf("clientAuth %q, want %q", l.TLS.ClientAuth, want)
				}
			}
			if ws := c.Listeners[1]; ws.Protocol != "websocket" || ws.Path != v1.DefaultWebSocketPath {
				t.Errorf("wss listener = %+v, want websocket on %s", ws, v1.DefaultWebSocketPath)
			}
		})
	}
}

func TestConfigMapRefusesWhatPodsCannotRun(t *testing.T) {
	l := func(name string, p v1.ListenerProtocol, port int32) v1.ListenerSpec {
		return v1.ListenerSpec{Name: name, Protocol: p, Port: port}
	}
	tests := []struct {
		name    string
		broker  *v1.MQTTBroker
		wantMsg string
	}{
		{"mqtts without TLS", newBroker(withTLSDisabled(), withListeners(l("mqtt", v1.ProtocolMQTT, 1883), l("s", v1.ProtocolMQTTS, 8883))),
			"spec.listeners[1].protocol: mqtts needs TLS"},
		{"listener on the metrics port", newBroker(withListeners(l("mqtt", v1.ProtocolMQTT, 9090))), "spec.listeners[0].port: 9090"},
		{"listener named metrics", newBroker(withListeners(l("metrics", v1.ProtocolMQTT, 1883))), "reserved for the metrics port"},
		{"numeric listener name", newBroker(withListeners(l("1883", v1.ProtocolMQTT, 1883))), "cannot name a Kubernetes port"},
		{"duplicate port", newBroker(withListeners(l("a", v1.ProtocolMQTT, 1883), l("b", v1.ProtocolWS, 1883))),
			"also the port of spec.listeners[0]"},
		{"renewBefore not shorter than duration", newBroker(func(b *v1.MQTTBroker) {
			b.Spec.TLS.RenewBefore = durationOf(DefaultCertDuration) // the default duration
		}), "spec.tls.renewBefore"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cm, err := ConfigMap(tc.broker)
			if err == nil {
				t.Fatalf("ConfigMap rendered it:\n%s", cm.Data[ConfigKey])
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), "MQTTBroker acme/fleet") {
				t.Errorf("error %q should name the broker and contain %q", err, tc.wantMsg)
			}
		})
	}
}

func TestConfigMapObject(t *testing.T) {
	b := newBroker()
	cm, err := ConfigMap(b)
	if err != nil {
		t.Fatal(err)
	}
	if cm.Name != "fleet-config" || cm.Namespace != "acme" || cm.Labels["app.kubernetes.io/instance"] != "fleet" {
		t.Errorf("ConfigMap meta = %+v", cm.ObjectMeta)
	}
	again, _ := ConfigMap(b)
	if again.Data[ConfigKey] != cm.Data[ConfigKey] {
		t.Error("rendering the same broker twice gives different broker.yaml")
	}
}
