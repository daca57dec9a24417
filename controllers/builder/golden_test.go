package builder

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with the current output")

// extraACL is a referenced ConfigMap: lines for anonymous clients, then a user section.
const extraACL = `# Public readings anyone may see.
topic read public/#

user ops
topic readwrite ops/#
`

// goldenCases are representative brokers whose broker.yaml and ACL are kept under
// testdata/<name>/. Review a diff there as you would review the rendered ConfigMaps.
func goldenCases(t *testing.T) []struct {
	name    string
	broker  *v1.MQTTBroker
	users   []User
	sources []ACLSource
} {
	return []struct {
		name    string
		broker  *v1.MQTTBroker
		users   []User
		sources []ACLSource
	}{
		{name: "default", broker: newBroker()},
		{name: "tls-client-auth", broker: newBroker(
			withListeners(
				v1.ListenerSpec{Name: "mqtt", Protocol: v1.ProtocolMQTT, Port: 1883},
				v1.ListenerSpec{Name: "mqtts", Protocol: v1.ProtocolMQTTS, Port: 8883},
				v1.ListenerSpec{Name: "ws", Protocol: v1.ProtocolWS, Port: 8083},
				v1.ListenerSpec{Name: "wss", Protocol: v1.ProtocolWSS, Port: 8084, Path: "/ws"},
			),
			withClientAuth(v1.ClientAuthRequire),
		)},
		{name: "all-limits", broker: newBroker(withAllLimits(), func(b *v1.MQTTBroker) {
			b.Spec.LogLevel = "debug"
			b.Spec.Authentication.AllowAnonymous = new(true)
		})},
		{
			name: "users-rules-configmap",
			broker: newBroker(withRules(
				rule("clients/%c/#", v1.ACLReadWrite),
				rule("users/%u/inbox/#", v1.ACLRead),
			)),
			users:   sensorUsers(t),
			sources: []ACLSource{{ConfigMap: "extra", Key: "acl", Content: extraACL}},
		},
		{
			name:   "default-allow",
			broker: newBroker(withDefaultAction(v1.ACLDefaultAllow), withRules(rule("secrets/#", v1.ACLDeny))),
			users:  sensorUsers(t)[:1],
		},
	}
}

func TestGoldenFiles(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := RenderConfig(tc.broker)
			if err != nil {
				t.Fatalf("RenderConfig: %v", err)
			}
			acl, err := RenderACL(tc.broker, tc.users, tc.sources)
			if err != nil {
				t.Fatalf("RenderACL: %v", err)
			}
			checkGolden(t, filepath.Join("testdata", tc.name, ConfigKey), cfg)
			checkGolden(t, filepath.Join("testdata", tc.name, ACLKey), acl)
		})
	}
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./controllers/builder/ -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from the rendering (-golden +got); if the change is intended, rerun with -update:\n%s", path, diff)
	}
}
