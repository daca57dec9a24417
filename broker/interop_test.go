package broker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Interop tests run Debian's mosquitto_pub/mosquitto_sub, Eclipse Paho for
// Python and MQTT.js (Node.js) against an in-process broker. A missing tool fails the test
// instead of skipping it: CI installs them, and a silently skipped interop
// test would hide exactly the regressions it exists for.

// interopInstallHint says how to get the interop peers.
const interopInstallHint = "run hack/install-test-deps.sh as root (`make test` does) to install mosquitto-clients, python3-paho-mqtt, haproxy, nodejs and MQTT.js"

// debianPython is Debian's interpreter, the one python3-paho-mqtt installs
// into; a python3 earlier on PATH (pyenv, venv) may not have it.
const debianPython = "/usr/bin/python3"

// interopWait bounds how long one external client may run.
const interopWait = 30 * time.Second

// interopTool returns the path of a command-line peer or fails the test.
func interopTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (%v): %s", name, err, interopInstallHint)
	}
	return path
}

// brokerHostPort splits the test broker's address for -h and -p.
func brokerHostPort(t testing.TB, b *testBroker) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(b.Addr)
	if err != nil {
		t.Fatalf("broker address %q: %v", b.Addr, err)
	}
	return host, port
}

// mosquittoSub is a running mosquitto_sub.
type mosquittoSub struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error // set when done is closed
}

// subMessagePrefix marks the lines mosquitto_sub prints for messages, so
// they can be told from its debug output.
const subMessagePrefix = "MSG|"

// startMosquittoSub runs mosquitto_sub against b with -d (so that it
// reports its SUBACK) and line-buffered output, and returns once the
// subscription is acknowledged. format is the -F format of a message line,
// without the prefix.
func startMosquittoSub(t testing.TB, b *testBroker, format string, args ...string) *mosquittoSub {
	t.Helper()
	interopTool(t, "mosquitto_sub")
	stdbuf := interopTool(t, "stdbuf")
	host, port := brokerHostPort(t, b)
	full := append([]string{"-oL", "mosquitto_sub", "-d", "-h", host, "-p", port, "-W", "30", "-F", subMessagePrefix + format}, args...)
	s := &mosquittoSub{t: t, out: &lockedBuffer{}, done: make(chan struct{})}
	// stdbuf -oL makes mosquitto_sub flush each line to the pipe, so that
	// "Subscribed" is seen while it runs; stdbuf execs it, so the pid is
	// mosquitto_sub's own.
	s.cmd = exec.Command(stdbuf, full...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start mosquitto_sub: %v", err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	deadline := time.After(interopWait)
	for !strings.Contains(s.out.String(), "Subscribed (mid:") {
		select {
		case <-s.done:
			if strings.Contains(s.out.String(), "Subscribed (mid:") {
				return s // subscribed, got its -C messages and exited meanwhile
			}
			t.Fatalf("mosquitto_sub %s exited before subscribing (%v):\n%s", strings.Join(args, " "), s.err, s.out)
		case <-deadline:
			t.Fatalf("mosquitto_sub %s did not subscribe within %v:\n%s", strings.Join(args, " "), interopWait, s.out)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return s
}

// messages waits for mosquitto_sub to exit on its own (-C) and returns the
// message lines it printed.
func (s *mosquittoSub) messages() []string {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(interopWait):
		s.t.Fatalf("mosquitto_sub did not receive its messages within %v:\n%s", interopWait, s.out)
	}
	if s.err != nil {
		s.t.Fatalf("mosquitto_sub failed (%v):\n%s", s.err, s.out)
	}
	var lines []string
	for _, l := range strings.Split(s.out.String(), "\n") {
		if m, ok := strings.CutPrefix(l, subMessagePrefix); ok {
			lines = append(lines, m)
		}
	}
	return lines
}

// expectMessages checks the message lines of a mosquitto_sub run with -C.
func (s *mosquittoSub) expectMessages(want ...string) {
	s.t.Helper()
	got := s.messages()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		s.t.Fatalf("mosquitto_sub printed\n  %s\nwant\n  %s\nfull output:\n%s",
			strings.Join(got, "\n  "), strings.Join(want, "\n  "), s.out)
	}
}

// mosquittoPub runs mosquitto_pub against b and fails the test unless it
// succeeds.
func mosquittoPub(t testing.TB, b *testBroker, args ...string) {
	t.Helper()
	path := interopTool(t, "mosquitto_pub")
	host, port := brokerHostPort(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

var mosquittoVersions = []struct{ name, flag string }{
	{"3.1.1", "mqttv311"},
	{"5.0", "mqttv5"},
}

func TestInteropMosquittoQoS(t *testing.T) {
	b := startBroker(t)
	for _, v := range mosquittoVersions {
		for _, qos := range []string{"0", "1", "2"} {
			t.Run(v.name+"/qos"+qos, func(t *testing.T) {
				topic := "interop/qos/" + v.flag + "/" + qos
				sub := startMosquittoSub(t, b, "%t|%q|%r|%p", "-V", v.flag, "-q", qos, "-C", "1", "-t", topic)
				mosquittoPub(t, b, "-V", v.flag, "-q", qos, "-t", topic, "-m", "payload at QoS "+qos)
				sub.expectMessages(topic + "|" + qos + "|0|payload at QoS " + qos)
			})
		}
	}
	t.Run("5.0 publisher to 3.1.1 subscriber", func(t *testing.T) {
		sub := startMosquittoSub(t, b, "%t|%q|%p", "-V", "mqttv311", "-q", "2", "-C", "1", "-t", "interop/cross")
		mosquittoPub(t, b, "-V", "mqttv5", "-q", "2", "-t", "interop/cross", "-m", "from v5",
			"-D", "publish", "user-property", "dropped", "for v3")
		sub.expectMessages("interop/cross|2|from v5")
	})
}

func TestInteropMosquittoRetained(t *testing.T) {
	b := startBroker(t)
	mosquittoPub(t, b, "-q", "1", "-r", "-t", "interop/retained/a", "-m", "first")
	mosquittoPub(t, b, "-V", "mqttv5", "-q", "1", "-r", "-t", "interop/retained/a", "-m", "second")
	for _, v := range mosquittoVersions {
		t.Run(v.name, func(t *testing.T) {
			sub := startMosquittoSub(t, b, "%t|%r|%q|%p", "-V", v.flag, "-q", "1", "-C", "1", "-t", "interop/retained/#")
			sub.expectMessages("interop/retained/a|1|1|second")
		})
	}
	t.Run("delete with empty payload", func(t *testing.T) {
		mosquittoPub(t, b, "-r", "-n", "-t", "interop/retained/a")
		mosquittoPub(t, b, "-r", "-t", "interop/retained/b", "-m", "only one left")
		// Were "a" still retained, it would come first.
		sub := startMosquittoSub(t, b, "%t|%r|%p", "-C", "1", "-t", "interop/retained/#")
		sub.expectMessages("interop/retained/b|1|only one left")
		if n := b.Stats().RetainedMessages.Load(); n != 1 {
			t.Errorf("RetainedMessages = %d, want 1", n)
		}
	})
}

func TestInteropMosquittoWildcards(t *testing.T) {
	b := startBroker(t)
	plus := startMosquittoSub(t, b, "%t|%p", "-V", "mqttv5", "-C", "2", "-t", "interop/w/+/temp")
	hash := startMosquittoSub(t, b, "%t|%p", "-C", "3", "-t", "interop/w/#")
	all := startMosquittoSub(t, b, "%t|%p", "-V", "mqttv5", "-C", "1", "-t", "#")
	// Published first so that a wrong match shows up as the first line.
	mosquittoPub(t, b, "-t", "$interop/hidden", "-m", "not for #") // [MQTT-4.7.2-1]
	mosquittoPub(t, b, "-t", "interop/x/a/temp", "-m", "other branch")
	mosquittoPub(t, b, "-t", "interop/w/b/hum", "-m", "humidity")
	mosquittoPub(t, b, "-t", "interop/w/a/temp", "-m", "21")
	mosquittoPub(t, b, "-V", "mqttv5", "-t", "interop/w/c/temp", "-m", "22")
	plus.expectMessages("interop/w/a/temp|21", "interop/w/c/temp|22")
	hash.expectMessages("interop/w/b/hum|humidity", "interop/w/a/temp|21", "interop/w/c/temp|22")
	all.expectMessages("interop/x/a/temp|other branch")
}

func TestInteropMosquittoV5Properties(t *testing.T) {
	b := startBroker(t)
	sub := startMosquittoSub(t, b, "%P|%C|%R|%D|%F|%p", "-V", "mqttv5", "-q", "1", "-C", "1", "-t", "interop/props")
	mosquittoPub(t, b, "-V", "mqttv5", "-q", "1", "-t", "interop/props", "-m", "with properties",
		"-D", "publish", "user-property", "k1", "v1",
		"-D", "publish", "user-property", "région", "22°C",
		"-D", "publish", "user-property", "k1", "v2", // repeated keys keep their order [MQTT-3.3.2-18]
		"-D", "publish", "content-type", "text/plain",
		"-D", "publish", "response-topic", "interop/reply",
		"-D", "publish", "correlation-data", "req-42",
		"-D", "publish", "payload-format-indicator", "1")
	sub.expectMessages("k1:v1 région:22°C k1:v2|text/plain|interop/reply|req-42|1|with properties")
}

func TestInteropMosquittoWill(t *testing.T) {
	for _, v := range mosquittoVersions {
		t.Run(v.name, func(t *testing.T) {
			b := startBroker(t)
			watcher := startMosquittoSub(t, b, "%t|%q|%p", "-q", "1", "-C", "1", "-t", "interop/will/#")

			// -E exits after the SUBACK with a normal DISCONNECT, which
			// discards the will [MQTT-3.1.2-10]; the watcher's one message
			// must then be the will of the client killed below.
			polite := startMosquittoSub(t, b, "%p", "-V", v.flag, "-E", "-i", uniqueID("polite"), "-t", "interop/idle",
				"--will-topic", "interop/will/polite", "--will-payload", "should not appear")
			<-polite.done
			eventually(t, "the polite client to be gone", func() bool { return b.Stats().ClientsConnected.Load() == 1 })

			victim := startMosquittoSub(t, b, "%p", "-V", v.flag, "-i", uniqueID("victim"), "-t", "interop/idle",
				"--will-topic", "interop/will/victim", "--will-payload", "victim is gone", "--will-qos", "1")
			// SIGKILL: the socket closes without DISCONNECT, so the will is due.
			if err := victim.cmd.Process.Kill(); err != nil {
				t.Fatalf("kill mosquitto_sub: %v", err)
			}
			watcher.expectMessages("interop/will/victim|1|victim is gone")
		})
	}
	t.Run("5.0 DISCONNECT with will message", func(t *testing.T) {
		b := startBroker(t)
		watcher := startMosquittoSub(t, b, "%t|%p", "-C", "1", "-t", "interop/will/#")
		// On SIGTERM a v5 mosquitto_sub disconnects with reason 0x04,
		// asking for its will to be published anyway.
		leaver := startMosquittoSub(t, b, "%p", "-V", "mqttv5", "-i", uniqueID("leaver"), "-t", "interop/idle",
			"--will-topic", "interop/will/leaver", "--will-payload", "left with will")
		if err := leaver.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM mosquitto_sub: %v", err)
		}
		watcher.expectMessages("interop/will/leaver|left with will")
	})
}

func TestInteropPahoPython(t *testing.T) {
	if _, err := os.Stat(debianPython); err != nil {
		t.Fatalf("%s not found (%v): %s", debianPython, err, interopInstallHint)
	}
	if out, err := exec.Command(debianPython, "-c", "import paho.mqtt.client").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import paho.mqtt (%v): %s\n%s", debianPython, err, interopInstallHint, out)
	}
	script, err := os.ReadFile(filepath.Join("testdata", "interop", "paho_roundtrip.py"))
	if err != nil {
		t.Fatal(err)
	}
	// Run a copy from a temporary directory so that nothing Python writes
	// lands in the source tree.
	path := filepath.Join(t.TempDir(), "paho_roundtrip.py")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t)
	host, port := brokerHostPort(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*interopWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, debianPython, path, host, port, uniqueID("paho-python"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		t.Fatalf("paho-mqtt interop failed (exit %d):\n%s", exit.ExitCode(), out.String())
	case err != nil:
		t.Fatalf("running %s: %v\n%s", path, err, out.String())
	}
	if !strings.HasSuffix(strings.TrimSpace(out.String()), "PASS") {
		t.Fatalf("paho-mqtt interop did not report PASS:\n%s", out.String())
	}
	t.Logf("paho-mqtt (Python):\n%s", out.String())
}

// mqttjsModules is the node_modules directory holding MQTT.js, where
// hack/mqttjs.sh installs it: under FLEETMQ_NPM_CACHE or the user's cache
// directory, keyed by the hash of the package-lock.json it installs from.
func mqttjsModules(t testing.TB) string {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join("testdata", "interop", "mqttjs", "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	root := os.Getenv("FLEETMQ_NPM_CACHE")
	if root == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("no cache directory for MQTT.js (%v): set FLEETMQ_NPM_CACHE", err)
		}
		root = filepath.Join(cache, "fleetmq", "npm")
	}
	sum := sha256.Sum256(lock)
	dir := filepath.Join(root, "mqttjs-"+hex.EncodeToString(sum[:])[:16])
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		t.Fatalf("MQTT.js is not installed in %s: run hack/install-test-deps.sh (`make test` does)", dir)
	}
	return filepath.Join(dir, "node_modules")
}

// TestInteropMQTTJS runs MQTT.js, the client of browser dashboards and many
// Node.js services, against the broker over TCP, WebSocket and secure
// WebSocket: QoS 0-2 with 3.1.1 and 5.0, retained messages, MQTT 5
// properties, subscription identifiers and topic aliases, a shared
// subscription split over a TCP and a WebSocket member, and the will of a
// WebSocket client that vanishes (testdata/interop/mqttjs/roundtrip.cjs).
func TestInteropMQTTJS(t *testing.T) {
	node := interopTool(t, "node")
	modules := mqttjsModules(t)
	ca := newTestCA(t, "mqttjs CA")
	vol := newKubeVolume(t, tlsSecret(t, ca, 100))
	b := startBroker(t)
	wsURL := serveWS(t, b, "/mqtt", nil)
	wssURL := serveWS(t, b, "/mqtt", vol)
	// The server certificate names localhost, which MQTT.js verifies.
	wssURL = strings.Replace(wssURL, "127.0.0.1", "localhost", 1)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(ca.PEM), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*interopWait)
	defer cancel()
	script, err := filepath.Abs(filepath.Join("testdata", "interop", "mqttjs", "roundtrip.cjs"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, node, script, "mqtt://"+b.Addr, wsURL, wssURL, caFile, uniqueID("mqttjs"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.Dir = t.TempDir()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(out.String()), "PASS") {
		t.Fatalf("MQTT.js interop failed (%v):\n%s", err, out.String())
	}
	t.Logf("MQTT.js:\n%s", out.String())
}
