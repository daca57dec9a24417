package broker_test

// Live reload as it happens in a pod: files rewritten the way the kubelet
// updates a ConfigMap or Secret volume, while clients are connected and
// publishing.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
)

// kubeVolume lays files out as the kubelet does for a ConfigMap or Secret
// volume: the data lives in a timestamped directory, "..data" is a symlink
// to it, and each file is a symlink through "..data". An update writes a
// new directory, points "..data_tmp" at it, renames that over "..data"
// (the atomic switch) and removes the old directory.
type kubeVolume struct {
	t   testing.TB
	dir string
	gen int
	cur string // current timestamped directory name
}

func newKubeVolume(t testing.TB, files map[string]string) *kubeVolume {
	t.Helper()
	v := &kubeVolume{t: t, dir: t.TempDir()}
	v.write(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(v.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// path is where a container sees the file.
func (v *kubeVolume) path(name string) string { return filepath.Join(v.dir, name) }

// update replaces the volume's content atomically, as the kubelet does.
func (v *kubeVolume) update(files map[string]string) {
	v.t.Helper()
	old := v.cur
	v.write(files)
	if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
		v.t.Fatal(err)
	}
}

func (v *kubeVolume) write(files map[string]string) {
	v.t.Helper()
	v.gen++
	v.cur = fmt.Sprintf("..2026_01_02_15_04_05.%09d", v.gen)
	data := filepath.Join(v.dir, v.cur)
	if err := os.Mkdir(data, 0o755); err != nil {
		v.t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(data, name), []byte(content), 0o644); err != nil {
			v.t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(v.cur, tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
}

// startWatchedBroker runs a broker from a config file, as fleetmq-broker
// does: loaded, served on a loopback port, watching its files.
func startWatchedBroker(t testing.TB, configPath string) *testBroker {
	t.Helper()
	cfg, err := config.Load(configPath)
	if err != nil {
		t.Fatal(err)
	}
	var bo broker.Options
	if os.Getenv("FLEETMQ_TEST_LOG") != "" {
		bo.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := broker.New(cfg, bo)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	if err := srv.SetConfigSource(broker.ConfigSource{Path: configPath}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Serve("mqtt", ln)
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &testBroker{Server: srv, Addr: ln.Addr().String()}
}

// waitFor polls cond and logs how long the broker took; the bound is for a
// hung test, the time is reported, never asserted.
func waitFor(t testing.TB, what string, since time.Time, cond func() bool) {
	t.Helper()
	eventually(t, what, cond)
	t.Logf("%s after %v", what, time.Since(since).Round(time.Millisecond))
}

const (
	reloadACLv1 = `user alice
topic readwrite data/#
user carol
topic read data/#
topic read private/#
user bob
topic readwrite data/#
`
	// v2 takes data/alice/ticks from alice and private/# from carol.
	reloadACLv2 = `user alice
topic readwrite data/#
topic deny data/alice/ticks
user carol
topic read data/#
user bob
topic readwrite data/#
`
)

func TestReloadKubeletStyle(t *testing.T) {
	// Each user's line is hashed once: a new hash of the same password (a
	// new salt) counts as a password change, so whoever renders the file
	// keeps the lines of unchanged users as they are.
	line := map[string]string{}
	for _, up := range []string{"alice:a", "bob:b", "carol:c", "carol:new"} {
		line[up] = passwordFileText(t, up)
	}
	users := newKubeVolume(t, map[string]string{"passwd": line["alice:a"] + line["bob:b"] + line["carol:c"]})
	acls := newKubeVolume(t, map[string]string{"acl": reloadACLv1})
	conf := newKubeVolume(t, map[string]string{"broker.yaml": fmt.Sprintf(
		"passwordFile: %s\naclFile: %s\nlimits:\n  maxKeepAlive: 60\n", users.path("passwd"), acls.path("acl"))})
	b := startWatchedBroker(t, conf.path("broker.yaml"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Connections that must survive the reloads count their losses.
	var aliceLost, carolLost atomic.Int32
	survivor := func(lost *atomic.Int32) v5Setup {
		return func(_ *paho.Connect, cc *paho.ClientConfig) {
			onErr, onDisconnect := cc.OnClientError, cc.OnServerDisconnect
			cc.OnClientError = func(err error) { lost.Add(1); onErr(err) }
			cc.OnServerDisconnect = func(d *paho.Disconnect) { lost.Add(1); onDisconnect(d) }
		}
	}
	carol := connectV5(t, b.Addr, uniqueID("carol"), credentials("carol", "c"), survivor(&carolLost))
	if _, err := carol.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "data/#", QoS: 1}, {Topic: "private/#", QoS: 1},
	}}); err != nil {
		t.Fatalf("carol subscribe: %v", err)
	}
	alice := connectV5(t, b.Addr, uniqueID("alice"), credentials("alice", "a"), survivor(&aliceLost))
	bob, _ := connectRaw(t, b.Addr, loginPacket(packet.V5, uniqueID("bob"), "bob", "b"))
	accepted := b.Stats().ConnectionsAccepted.Load()

	// alice publishes all along; lastCode is the reason code of her latest
	// PUBACK.
	var lastCode atomic.Int32
	var wg sync.WaitGroup
	pubCtx, stopPub := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for pubCtx.Err() == nil {
			pr, _ := alice.Publish(pubCtx, &paho.Publish{Topic: "data/alice/ticks", QoS: 1, Payload: []byte("tick")})
			if pr != nil {
				lastCode.Store(int32(pr.ReasonCode))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	defer func() { stopPub(); wg.Wait() }()
	eventually(t, "alice's ticks to be accepted", func() bool { return lastCode.Load() == 0 })

	t.Run("new ACL enforced", func(t *testing.T) {
		subsBefore := b.Stats().Subscriptions.Load()
		start := time.Now()
		acls.update(map[string]string{"acl": reloadACLv2})
		waitFor(t, "the new ACL enforced on alice's publishing", start, func() bool {
			return lastCode.Load() == int32(packet.NotAuthorized)
		})
		eventually(t, "carol's private/# subscription removed", func() bool {
			return b.Stats().Subscriptions.Load() == subsBefore-1
		})
		if h := b.Health(); h.ACLRevision != contentRevision(reloadACLv2) {
			t.Errorf("Health ACL revision %q, want %q", h.ACLRevision, contentRevision(reloadACLv2))
		}
	})

	t.Run("broken ACL keeps the old rules", func(t *testing.T) {
		errsBefore := b.Stats().ReloadErrors.Load()
		start := time.Now()
		acls.update(map[string]string{"acl": "user alice\ntopic readwrite data/#\ntopic maybe data/x\n"})
		waitFor(t, "the broken ACL reported", start, func() bool { return b.Stats().ReloadErrors.Load() > errsBefore })
		h := b.Health()
		if e := h.Files["acl"].Error; !strings.Contains(e, acls.path("acl")+":3:") {
			t.Errorf("Health acl error %q, want it to name %s:3", e, acls.path("acl"))
		}
		if h.ACLRevision != contentRevision(reloadACLv2) || !strings.Contains(h.LastReloadError, ":3:") {
			t.Errorf("Health after a broken ACL: revision %q (want the previous %q), last error %q",
				h.ACLRevision, contentRevision(reloadACLv2), h.LastReloadError)
		}
		// The old rules still hold: alice is still refused, and may still
		// publish elsewhere.
		time.Sleep(50 * time.Millisecond)
		if c := lastCode.Load(); c != int32(packet.NotAuthorized) {
			t.Errorf("alice's ticks answered %#x after a broken ACL, want 0x87 from the rules in force", c)
		}
		pr, err := alice.Publish(ctx, &paho.Publish{Topic: "data/alice/other", QoS: 1, Payload: []byte("x")})
		if err != nil || pr.ReasonCode != 0 {
			t.Errorf("alice publishing to an allowed topic after a broken ACL: %v %+v", err, pr)
		}
	})

	t.Run("removed user disconnected", func(t *testing.T) {
		users.update(map[string]string{"passwd": line["alice:a"] + line["carol:c"]})
		bob.expectDisconnect(packet.NotAuthorized)
		c := dialRaw(t, b.Addr, packet.V5)
		if ack := c.connect(loginPacket(packet.V5, uniqueID("bob"), "bob", "b")); ack.ReasonCode != packet.BadUsernameOrPassword {
			t.Errorf("bob connecting after removal: %v, want Bad User Name or Password", ack.ReasonCode)
		}
	})

	t.Run("changed password disconnects", func(t *testing.T) {
		// carol's subscription was revoked, her connection never was.
		if n := carolLost.Load(); n != 0 {
			t.Errorf("carol's connection was lost %d times across ACL and user reloads", n)
		}
		users.update(map[string]string{"passwd": line["alice:a"] + line["carol:new"]})
		eventually(t, "carol's connection closed", func() bool { return carolLost.Load() > 0 })
		select {
		case d := <-carol.disconnects:
			if d.ReasonCode != byte(packet.NotAuthorized) {
				t.Errorf("carol got DISCONNECT %#x, want 0x87", d.ReasonCode)
			}
		case <-time.After(rawWait):
			t.Error("carol got no DISCONNECT")
		}
	})

	t.Run("limits apply live", func(t *testing.T) {
		conf.update(map[string]string{"broker.yaml": fmt.Sprintf(
			"passwordFile: %s\naclFile: %s\nlimits:\n  maxKeepAlive: 20\n", users.path("passwd"), acls.path("acl"))})
		eventually(t, "the new maxKeepAlive", func() bool { return b.Config().Limits.MaxKeepAlive == 20 })
		c := dialRaw(t, b.Addr, packet.V5)
		cp := loginPacket(packet.V5, uniqueID("alice"), "alice", "a")
		cp.KeepAlive = 0
		ack := c.connect(cp)
		if !ack.Properties.HasServerKeepAlive || ack.Properties.ServerKeepAlive != 20 {
			t.Errorf("CONNACK Server Keep Alive %v %d, want 20", ack.Properties.HasServerKeepAlive, ack.Properties.ServerKeepAlive)
		}
	})

	if n := aliceLost.Load(); n != 0 {
		t.Errorf("alice's connection was lost %d times; no reload concerned her user", n)
	}
	// Only the test's own new connections were accepted since: no client
	// had to reconnect.
	if got := b.Stats().ConnectionsAccepted.Load() - accepted; got != 2 {
		t.Errorf("%d connections accepted during the reloads, want the test's own 2", got)
	}
}

// contentRevision is the revision broker/auth gives a file's content.
func contentRevision(content string) string {
	return broker.RevisionOf([]byte(content))
}

func TestReloadRemovesQueuedMessagesNoLongerReadable(t *testing.T) {
	dir := t.TempDir()
	acl := writeTestFile(t, dir, "acl", "user sub\ntopic read q/#\nuser pub\ntopic write q/#\n")
	b := startAuthBroker(t, writeTestFile(t, dir, "passwd", passwordFileText(t, "sub:s", "pub:p")), acl)

	// An offline persistent session with messages queued on two topics.
	id := uniqueID("sub")
	cp := loginPacket(packet.V5, id, "sub", "s")
	cp.Properties.SessionExpiry, cp.Properties.HasSessionExpiry = 300, true
	sub, _ := connectRaw(t, b.Addr, cp)
	if codes := sub.subscribe(1, 0, rawSub("q/#", 1)); codes[0] != 1 {
		t.Fatalf("subscribe: %v", codes)
	}
	sub.send(&packet.Disconnect{ReasonCode: packet.Success})
	sub.close()
	eventually(t, "the subscriber offline", func() bool { return b.Stats().ClientsConnected.Load() == 0 })
	pub, _ := connectRaw(t, b.Addr, loginPacket(packet.V5, uniqueID("pub"), "pub", "p"))
	pub.publish("q/secret", 1, 1, "s")
	pub.publish("q/open", 1, 2, "o")

	writeTestFile(t, dir, "acl", "user sub\ntopic read q/#\ntopic deny q/secret\nuser pub\ntopic write q/#\n")
	if err := b.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	cp.CleanStart = false
	sub2, ack := connectRaw(t, b.Addr, cp)
	if !ack.SessionPresent {
		t.Fatal("session not resumed")
	}
	p := sub2.expectPublish()
	if string(p.Topic) != "q/open" {
		t.Fatalf("resumed session got %s first, want only q/open", p.Topic)
	}
}

func TestReloadWithoutChangesDoesNothing(t *testing.T) {
	dir := t.TempDir()
	b := startAuthBroker(t,
		writeTestFile(t, dir, "passwd", passwordFileText(t, "alice:a")),
		writeTestFile(t, dir, "acl", "user alice\ntopic readwrite #\n"))
	c, _ := connectRaw(t, b.Addr, loginPacket(packet.V5, uniqueID("alice"), "alice", "a"))
	for range 3 {
		if err := b.Reload(); err != nil {
			t.Fatalf("Reload: %v", err)
		}
	}
	if n := b.Stats().Reloads.Load(); n != 0 {
		t.Errorf("Reloads = %d for unchanged files, want 0", n)
	}
	c.sync()
}
