package broker_test

// The metrics endpoint, the health probes and the $SYS topics of a
// started broker, as Prometheus, the kubelet and a Mosquitto dashboard see
// them.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
)

// startFullBroker runs a broker through Start, as fleetmq-broker does,
// with a loopback listener named "mqtt" and the metrics endpoint.
func startFullBroker(t testing.TB, adjust func(*config.Config)) (*broker.Server, string) {
	t.Helper()
	cfg := config.Default()
	cfg.Listeners = []config.Listener{{Name: "mqtt", Address: "127.0.0.1:0"}}
	cfg.Metrics.Address = "127.0.0.1:0"
	if adjust != nil {
		adjust(cfg)
	}
	cfg.ApplyDefaults()
	srv, err := broker.New(cfg, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv, srv.Addrs()["mqtt"].String()
}

// httpGet returns the status and body of a GET on the metrics endpoint.
func httpGet(t testing.TB, srv *broker.Server, path string) (int, string) {
	t.Helper()
	client := http.Client{Timeout: rawWait}
	resp, err := client.Get("http://" + srv.MetricsAddr().String() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestMetricsAndHealth(t *testing.T) {
	dir := t.TempDir()
	passwd := passwordFileText(t, "alice:a")
	acl := "user alice\ntopic readwrite m/#\n"
	aclPath := writeTestFile(t, dir, "acl", acl)
	srv, addr := startFullBroker(t, func(cfg *config.Config) {
		cfg.AllowAnonymous = false
		cfg.PasswordFile = writeTestFile(t, dir, "passwd", passwd)
		cfg.ACLFile = aclPath
	})
	alice, _ := connectRaw(t, addr, loginPacket(packet.V5, uniqueID("alice"), "alice", "a"))
	if codes := alice.subscribe(1, 0, rawSub("m/#", 1)); codes[0] != 1 {
		t.Fatalf("subscribe: %v", codes)
	}
	alice.publish("m/x", 1, 2, "hello")
	alice.ack(packet.PUBACK, alice.expectPublish().PacketID)
	if rc := alice.publish("n/x", 1, 3, "denied"); rc != packet.NotAuthorized {
		t.Fatalf("publish outside the ACL: %v", rc)
	}
	bad := dialRaw(t, addr, packet.V5)
	bad.connect(loginPacket(packet.V5, uniqueID("bad"), "alice", "wrong"))
	alice.sync() // the PUBACK has been handled

	if code, body := httpGet(t, srv, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}

	code, body := httpGet(t, srv, "/readyz")
	var h broker.Health
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusOK {
		t.Fatalf("/readyz: %d %v\n%s", code, err, body)
	}
	if !h.Ready || h.ACLRevision != contentRevision(acl) || h.UsersRevision != contentRevision(passwd) || h.Listeners["mqtt"] != addr {
		t.Errorf("/readyz: %+v; want ready, ACL %s, users %s, listener mqtt at %s",
			h, contentRevision(acl), contentRevision(passwd), addr)
	}

	_, metrics := httpGet(t, srv, "/metrics")
	for _, want := range []string{
		fmt.Sprintf(`fleetmq_broker_info{acl_revision=%q,users_revision=%q,version=%q} 1`,
			contentRevision(acl), contentRevision(passwd), broker.Version),
		`fleetmq_broker_messages_received_total{qos="1"} 2`,
		`fleetmq_broker_messages_sent_total{qos="1"} 1`,
		`fleetmq_broker_auth_failures_total 1`,
		`fleetmq_broker_acl_denials_total{action="publish"} 1`,
		`fleetmq_broker_listener_connections_accepted_total{listener="mqtt"} 2`,
		`fleetmq_broker_clients_connected 1`,
		`fleetmq_broker_subscriptions 1`,
		`fleetmq_broker_messages_inflight 0`,
		`go_goroutines `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	t.Run("a broken reload shows on /readyz and in the metrics", func(t *testing.T) {
		writeTestFile(t, dir, "acl", "user alice\ntopic\n")
		if err := srv.Reload(); err == nil {
			t.Fatal("Reload of a broken ACL succeeded")
		}
		code, body := httpGet(t, srv, "/readyz")
		var h broker.Health
		if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusOK {
			t.Fatalf("/readyz after a broken reload: %d %v (a bad file must not take the pod out of service)", code, err)
		}
		if !strings.HasPrefix(h.Files["acl"].Error, aclPath+":2:") || h.ACLRevision != contentRevision(acl) {
			t.Errorf("/readyz after a broken reload: acl %+v, revision %q; want the error at %s:2 and the old revision", h.Files["acl"], h.ACLRevision, aclPath)
		}
		if _, m := httpGet(t, srv, "/metrics"); !strings.Contains(m, "fleetmq_broker_reload_errors_total 1") {
			t.Error("/metrics does not count the reload error")
		}
		alice.sync() // still connected
	})
}

func TestSysTopics(t *testing.T) {
	_, addr := startFullBroker(t, func(cfg *config.Config) {
		one := 1
		cfg.SysInterval = &one
	})
	c, _ := connectRaw(t, addr, loginPacket(packet.V5, uniqueID("sys"), "", ""))
	if codes := c.subscribe(1, 0, rawSub("$SYS/broker/#", 0)); codes[0] != 0 {
		t.Fatalf("subscribe: %v", codes)
	}
	got := map[string][]string{}
	// Published at start (before this client connected), then every
	// second with what changed.
	connected := func() string {
		n := got["$SYS/broker/clients/connected"]
		if len(n) == 0 {
			return ""
		}
		return n[len(n)-1]
	}
	eventually(t, "$SYS republished with this client counted", func() bool {
		p := c.expectPublish()
		got[string(p.Topic)] = append(got[string(p.Topic)], string(p.Payload))
		return len(got["$SYS/broker/uptime"]) >= 2 && connected() == "1"
	})
	if v := got["$SYS/broker/version"]; len(v) == 0 || v[0] != "fleetmq version "+broker.Version {
		t.Errorf("$SYS/broker/version: %q", v)
	}
	for _, topic := range []string{
		"$SYS/broker/clients/connected", "$SYS/broker/clients/total", "$SYS/broker/messages/received",
		"$SYS/broker/messages/sent", "$SYS/broker/bytes/received", "$SYS/broker/bytes/sent",
		"$SYS/broker/subscriptions/count", "$SYS/broker/retained messages/count",
	} {
		if len(got[topic]) == 0 {
			t.Errorf("%s was not published", topic)
		}
	}
	if u := got["$SYS/broker/uptime"]; !strings.HasSuffix(u[0], " seconds") || u[0] == u[1] {
		t.Errorf("$SYS/broker/uptime values %q", u)
	}
}
