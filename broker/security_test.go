package broker_test

// Authentication and authorization end to end: password files made by
// Debian's mosquitto_passwd, ACL decisions as real clients (paho, Debian's
// mosquitto_pub/mosquitto_sub, the raw client) see them, will messages,
// and sessions that another user tries to take over.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/auth"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
)

// writeTestFile writes content to dir/name and returns its path.
func writeTestFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// passwordFileText returns a password file with a $7$ entry for each
// "user:password" pair.
func passwordFileText(t testing.TB, userPasswords ...string) string {
	t.Helper()
	var data []byte
	for _, up := range userPasswords {
		user, pw, _ := strings.Cut(up, ":")
		h, err := auth.HashPassword([]byte(pw))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = auth.UpdatePasswordFile(data, user, h); err != nil {
			t.Fatal(err)
		}
	}
	return string(data)
}

// startAuthBroker starts a test broker with anonymous access off and the
// given password and ACL files ("" for none).
func startAuthBroker(t testing.TB, passwordFile, aclFile string) *testBroker {
	t.Helper()
	return startBroker(t, func(cfg *config.Config, _ *broker.Options) {
		cfg.AllowAnonymous = false
		cfg.PasswordFile = passwordFile
		cfg.ACLFile = aclFile
	})
}

// credentials makes a paho.golang client log in as user.
func credentials(user, password string) v5Setup {
	return func(cp *paho.Connect, _ *paho.ClientConfig) {
		cp.Username, cp.UsernameFlag = user, true
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
}

// loginPacket is a clean-start CONNECT for the raw client; an empty user
// connects anonymously.
func loginPacket(v packet.Version, id, user, password string) *packet.Connect {
	cp := &packet.Connect{Version: v, ClientID: id, CleanStart: true, KeepAlive: 30}
	if user != "" {
		cp.HasUsername, cp.Username = true, user
		cp.HasPassword, cp.Password = true, []byte(password)
	}
	return cp
}

// testContext bounds a test's client calls; it ends with the test.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), rawWait)
	t.Cleanup(cancel)
	return ctx
}

// connectV3As connects a paho.mqtt.golang (3.1.1) client as user.
func connectV3As(t testing.TB, b *testBroker, user, password string) mqtt3.Client {
	t.Helper()
	opts := mqtt3.NewClientOptions().AddBroker(b.URL()).SetClientID(uniqueID("v3")).
		SetUsername(user).SetPassword(password).SetAutoReconnect(false)
	c := mqtt3.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(rawWait) || tok.Error() != nil {
		t.Fatalf("v3 connect as %q: %v", user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func TestPasswordFileFromMosquittoPasswd(t *testing.T) {
	mp := interopTool(t, "mosquitto_passwd")
	file := filepath.Join(t.TempDir(), "passwd")
	for _, args := range [][]string{
		{"-c", "-b", file, "alice", "alice's pässword"},
		{"-b", file, "bob", "bob pw"},
	} {
		if out, err := exec.Command(mp, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %v: %v\n%s", args, err, out)
		}
	}
	b := startAuthBroker(t, file, "")

	t.Run("mosquitto_pub with the right password", func(t *testing.T) {
		for _, v := range mosquittoVersions {
			mosquittoPub(t, b, "-V", v.flag, "-u", "alice", "-P", "alice's pässword", "-t", "auth/ok", "-m", "hi", "-q", "1")
		}
	})
	t.Run("mosquitto_pub with a wrong password", func(t *testing.T) {
		host, port := brokerHostPort(t, b)
		ctx, cancel := context.WithTimeout(context.Background(), interopWait)
		defer cancel()
		out, err := exec.CommandContext(ctx, interopTool(t, "mosquitto_pub"), "-h", host, "-p", port,
			"-u", "alice", "-P", "bob pw", "-t", "auth/no", "-m", "hi").CombinedOutput()
		if err == nil {
			t.Fatalf("mosquitto_pub with bob's password for alice succeeded:\n%s", out)
		}
		if !strings.Contains(strings.ToLower(string(out)), "bad user") {
			t.Errorf("mosquitto_pub did not report bad credentials:\n%s", out)
		}
	})
	t.Run("reason codes", func(t *testing.T) {
		before := b.Stats().AuthFailures.Load()
		for _, tc := range []struct {
			name, user, password string
			want                 packet.ReasonCode
		}{
			{"right password", "bob", "bob pw", packet.Success},
			{"wrong password", "bob", "alice's pässword", packet.BadUsernameOrPassword},
			{"unknown user", "mallory", "bob pw", packet.BadUsernameOrPassword},
			{"anonymous", "", "", packet.NotAuthorized},
		} {
			c := dialRaw(t, b.Addr, packet.V5)
			ack := c.connect(loginPacket(packet.V5, uniqueID("rc"), tc.user, tc.password))
			if ack.ReasonCode != tc.want {
				t.Errorf("%s: CONNACK %v, want %v", tc.name, ack.ReasonCode, tc.want)
			}
			c.close()
		}
		if got := b.Stats().AuthFailures.Load() - before; got != 3 {
			t.Errorf("AuthFailures grew by %d, want 3", got)
		}
	})
}

// aclForEndToEnd is the ACL of TestACLEndToEnd. The anonymous section is
// empty: anonymous clients are refused anyway.
const aclForEndToEnd = `# test ACL
user alice
topic readwrite sensors/alice/#
topic deny sensors/alice/secret
topic read public/#

user writer
topic write sensors/#
topic write public/#

user reader
topic read #
`

func TestACLEndToEnd(t *testing.T) {
	dir := t.TempDir()
	b := startAuthBroker(t,
		writeTestFile(t, dir, "passwd", passwordFileText(t, "alice:a", "writer:w", "reader:r")),
		writeTestFile(t, dir, "acl", aclForEndToEnd))

	t.Run("v5 publish denied", func(t *testing.T) {
		ctx := testContext(t)
		alice := connectV5(t, b.Addr, uniqueID("alice"), credentials("alice", "a"))
		for _, qos := range []byte{1, 2} {
			pr, _ := alice.Publish(ctx, &paho.Publish{Topic: "public/news", QoS: qos, Payload: []byte("x")})
			if pr == nil || pr.ReasonCode != byte(packet.NotAuthorized) {
				t.Errorf("QoS %d publish to a read-only topic: response %+v, want reason 0x87", qos, pr)
			}
		}
		pr, err := alice.Publish(ctx, &paho.Publish{Topic: "sensors/alice/temp", QoS: 1, Payload: []byte("x")})
		if err != nil && (pr == nil || pr.ReasonCode != byte(packet.NoMatchingSubscribers)) {
			t.Errorf("publish to an allowed topic: %v (%+v)", err, pr)
		}
	})

	t.Run("v5 subscribe denied", func(t *testing.T) {
		ctx := testContext(t)
		alice := connectV5(t, b.Addr, uniqueID("alice"), credentials("alice", "a"))
		sa, _ := alice.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
			{Topic: "private/#", QoS: 1},
			{Topic: "$share/g/private/#", QoS: 1},
			{Topic: "$share/g/sensors/alice/#", QoS: 1},
			{Topic: "sensors/alice/secret", QoS: 1},
		}})
		want := []byte{byte(packet.NotAuthorized), byte(packet.NotAuthorized), 1, byte(packet.NotAuthorized)}
		if sa == nil || string(sa.Reasons) != string(want) {
			t.Fatalf("SUBACK %+v, want reasons % x", sa, want)
		}
	})

	t.Run("v3 subscribe denied", func(t *testing.T) {
		alice := connectV3As(t, b, "alice", "a")
		tok := alice.SubscribeMultiple(map[string]byte{"private/#": 1, "public/#": 1}, nil)
		if !tok.WaitTimeout(rawWait) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		got := tok.(*mqtt3.SubscribeToken).Result()
		if got["private/#"] != 0x80 || got["public/#"] != 1 {
			t.Fatalf("SUBACK return codes %v, want private/# 0x80 and public/# 1", got)
		}
	})

	t.Run("delivery filtering", func(t *testing.T) {
		// alice may subscribe to sensors/# (it overlaps her grant), but only
		// what she may read is delivered. The denied messages go first: had
		// any got through, mosquitto_sub would print it instead.
		sub := startMosquittoSub(t, b, "%t %p", "-u", "alice", "-P", "a", "-t", "sensors/#", "-q", "1", "-C", "1")
		for _, m := range []string{"sensors/alice/secret", "sensors/bob/temp", "sensors/alice/temp"} {
			mosquittoPub(t, b, "-u", "writer", "-P", "w", "-t", m, "-m", "21", "-q", "1")
		}
		sub.expectMessages("sensors/alice/temp 21")
	})

	t.Run("retained filtering", func(t *testing.T) {
		mosquittoPub(t, b, "-u", "writer", "-P", "w", "-t", "sensors/alice/secret", "-m", "s", "-q", "1", "-r")
		mosquittoPub(t, b, "-u", "writer", "-P", "w", "-t", "sensors/alice/humidity", "-m", "h", "-q", "1", "-r")
		sub := startMosquittoSub(t, b, "%t %p", "-u", "alice", "-P", "a", "-t", "sensors/alice/#", "-q", "1", "-C", "2")
		mosquittoPub(t, b, "-u", "writer", "-P", "w", "-t", "sensors/alice/done", "-m", "d", "-q", "1")
		sub.expectMessages("sensors/alice/humidity h", "sensors/alice/done d")
	})

	t.Run("will checked", func(t *testing.T) {
		ctx := testContext(t)
		reader := connectV5(t, b.Addr, uniqueID("reader"), credentials("reader", "r"))
		// Retain Handling 2: no retained messages, only what is published now.
		if _, err := reader.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "#", QoS: 1, RetainHandling: 2}}}); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		for _, topic := range []string{"public/alice-will", "sensors/alice/will"} {
			cp := loginPacket(packet.V5, uniqueID("alice"), "alice", "a")
			cp.WillFlag, cp.WillTopic, cp.WillPayload, cp.WillQoS = true, topic, []byte("gone"), 1
			c, _ := connectRaw(t, b.Addr, cp)
			c.close() // no DISCONNECT: the will is due
		}
		// The denied will would have come first.
		select {
		case m := <-reader.msgs:
			if m.Topic != "sensors/alice/will" {
				t.Fatalf("reader got a will on %s, want only sensors/alice/will", m.Topic)
			}
		case <-time.After(rawWait):
			t.Fatal("the allowed will was not delivered")
		}
	})

	st := b.Stats()
	if st.ACLDeniedPublish.Load() == 0 || st.ACLDeniedSubscribe.Load() == 0 || st.ACLDeniedRead.Load() == 0 {
		t.Errorf("ACL denials not counted: publish %d, subscribe %d, read %d",
			st.ACLDeniedPublish.Load(), st.ACLDeniedSubscribe.Load(), st.ACLDeniedRead.Load())
	}
}

func TestSessionOfAnotherUserIsNotTakenOver(t *testing.T) {
	dir := t.TempDir()
	b := startAuthBroker(t, writeTestFile(t, dir, "passwd", passwordFileText(t, "alice:a", "bob:b")), "")
	id := uniqueID("shared")
	alice, _ := connectRaw(t, b.Addr, loginPacket(packet.V5, id, "alice", "a"))

	bob := dialRaw(t, b.Addr, packet.V5)
	if ack := bob.connect(loginPacket(packet.V5, id, "bob", "b")); ack.ReasonCode != packet.NotAuthorized {
		t.Fatalf("bob taking over alice's client id: CONNACK %v, want Not Authorized", ack.ReasonCode)
	}
	bob.expectClosed()
	alice.sync() // still connected

	// The same user may take the session over, as the spec requires.
	alice2, _ := connectRaw(t, b.Addr, loginPacket(packet.V5, id, "alice", "a"))
	alice.expectDisconnect(packet.SessionTakenOver)
	alice2.sync()
}

func TestAnonymousOnlyWhenAllowed(t *testing.T) {
	dir := t.TempDir()
	pw := writeTestFile(t, dir, "passwd", passwordFileText(t, "alice:a"))
	for _, allow := range []bool{false, true} {
		b := startBroker(t, func(cfg *config.Config, _ *broker.Options) {
			cfg.AllowAnonymous = allow
			cfg.PasswordFile = pw
		})
		c := dialRaw(t, b.Addr, packet.V5)
		ack := c.connect(loginPacket(packet.V5, uniqueID("anon"), "", ""))
		want := packet.NotAuthorized
		if allow {
			want = packet.Success
		}
		if ack.ReasonCode != want {
			t.Errorf("allowAnonymous %v: anonymous CONNACK %v, want %v", allow, ack.ReasonCode, want)
		}
		// A username always needs its password, anonymous access or not.
		c2 := dialRaw(t, b.Addr, packet.V5)
		if ack := c2.connect(loginPacket(packet.V5, uniqueID("anon"), "alice", "wrong")); ack.ReasonCode != packet.BadUsernameOrPassword {
			t.Errorf("allowAnonymous %v: wrong password CONNACK %v, want Bad User Name or Password", allow, ack.ReasonCode)
		}
	}
}

func TestBrokenFilesFailNew(t *testing.T) {
	dir := t.TempDir()
	for name, cfg := range map[string]*config.Config{
		"acl:3:":    {ACLFile: writeTestFile(t, dir, "acl", "user a\ntopic read x\ntopic bogus x y\n")},
		"passwd:2:": {PasswordFile: writeTestFile(t, dir, "passwd", "# users\nalice:$7$notahash\n")},
	} {
		cfg.ApplyDefaults()
		_, err := broker.New(cfg, broker.Options{})
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, name)) {
			t.Errorf("New with a broken file: %v, want an error naming %s", err, filepath.Join(dir, name))
		}
	}
}
