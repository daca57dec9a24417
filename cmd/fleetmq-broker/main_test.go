package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// These tests run the real binary, as a user would: they build it once,
// start it with flags or a config file, and talk to it with Debian's
// mosquitto clients and a raw MQTT 5 connection.

// brokerBin is the fleetmq-broker binary built by TestMain.
var brokerBin string

// procWait bounds every wait for the broker process or a client: a limit
// for a hung test, not a speed requirement.
const procWait = 20 * time.Second

// installHint says how to get the mosquitto clients.
const installHint = "run hack/install-test-deps.sh as root (`make test` does) to install mosquitto-clients"

func TestMain(m *testing.M) {
	// One build for every test: a t.TempDir would be removed after the
	// first test that made it.
	dir, err := os.MkdirTemp("", "fleetmq-broker-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating a build directory:", err)
		os.Exit(1)
	}
	brokerBin = filepath.Join(dir, "fleetmq-broker")
	if out, err := exec.Command("go", "build", "-o", brokerBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building fleetmq-broker: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a running child process.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *syncBuffer // stdout and stderr
	done chan struct{}
	err  error // exit status, set when done is closed
}

func startProc(t *testing.T, path string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: filepath.Base(path), cmd: exec.Command(path, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// startBrokerProc starts fleetmq-broker and waits until it says it serves.
func startBrokerProc(t *testing.T, args ...string) *proc {
	t.Helper()
	p := startProc(t, brokerBin, args...)
	p.waitOutput("broker started")
	return p
}

// waitOutput waits until the process has printed s.
func (p *proc) waitOutput(s string) {
	p.t.Helper()
	deadline := time.After(procWait)
	for !strings.Contains(p.out.String(), s) {
		select {
		case <-p.done:
			if strings.Contains(p.out.String(), s) {
				return
			}
			p.t.Fatalf("%s exited (%v) before printing %q:\n%s", p.name, p.err, s, p.out)
		case <-deadline:
			p.t.Fatalf("%s did not print %q within %v:\n%s", p.name, s, procWait, p.out)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// exitCode waits for the process to end and returns its exit code.
func (p *proc) exitCode() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(procWait):
		p.t.Fatalf("%s still running after %v:\n%s", p.name, procWait, p.out)
	}
	var exit *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &exit):
		return exit.ExitCode()
	}
	p.t.Fatalf("%s: %v", p.name, p.err)
	return -1
}

// stop sends SIGTERM and expects a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	if code := p.exitCode(); code != 0 {
		p.t.Fatalf("%s exited with %d after SIGTERM, want 0:\n%s", p.name, code, p.out)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func mosquittoTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (%v): %s", name, err, installHint)
	}
	return path
}

// mosquittoRoundTrip shows that the broker serves anonymous clients: a
// mosquitto_sub on subPort receives what mosquitto_pub sends to pubPort.
func mosquittoRoundTrip(t *testing.T, pubPort, subPort string) {
	t.Helper()
	mosquittoTool(t, "mosquitto_sub")
	stdbuf := mosquittoTool(t, "stdbuf")
	topic := "cmd/test/" + strconv.FormatInt(time.Now().UnixNano(), 36)
	// -d reports the SUBACK; stdbuf -oL makes it visible while running.
	sub := startProc(t, stdbuf, "-oL", "mosquitto_sub", "-d", "-h", "127.0.0.1", "-p", subPort,
		"-q", "1", "-C", "1", "-W", "20", "-F", "MSG|%t|%p", "-t", topic)
	sub.waitOutput("Subscribed (mid:")
	pub := startProc(t, mosquittoTool(t, "mosquitto_pub"), "-h", "127.0.0.1", "-p", pubPort, "-q", "1", "-t", topic, "-m", "hello")
	if code := pub.exitCode(); code != 0 {
		t.Fatalf("mosquitto_pub exited with %d:\n%s", code, pub.out)
	}
	if code := sub.exitCode(); code != 0 {
		t.Fatalf("mosquitto_sub exited with %d:\n%s", code, sub.out)
	}
	if want := "MSG|" + topic + "|hello"; !strings.Contains(sub.out.String(), want) {
		t.Fatalf("mosquitto_sub did not print %q:\n%s", want, sub.out)
	}
}

// v5Connect opens a raw MQTT 5 connection and returns it with its CONNACK.
func v5Connect(t *testing.T, addr string) (net.Conn, *packet.Connack) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, procWait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	b, err := (&packet.Connect{Version: packet.V5, CleanStart: true, KeepAlive: 60, ClientID: "cmd-test"}).Encode(nil, packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatalf("send CONNECT: %v", err)
	}
	p, _ := readPacket(t, nc)
	ack, ok := p.(*packet.Connack)
	if !ok || ack.ReasonCode != packet.Success {
		t.Fatalf("want CONNACK success, got %+v", p)
	}
	return nc, ack
}

// readPacket reads one packet, or returns the error that ended the
// connection (io.EOF for a close) with a nil packet.
func readPacket(t *testing.T, nc net.Conn) (packet.Packet, error) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(procWait))
	var buf []byte
	chunk := make([]byte, 1024)
	for {
		fh, n, err := packet.ReadFixedHeader(buf)
		if err != nil {
			t.Fatalf("bad fixed header % x: %v", buf, err)
		}
		if n > 0 && len(buf) >= n+fh.Remaining {
			p, err := packet.Decode(fh, buf[n:n+fh.Remaining], packet.V5)
			if err != nil {
				t.Fatalf("decode %s: %v", fh.Type, err)
			}
			return p, nil
		}
		m, err := nc.Read(chunk)
		buf = append(buf, chunk[:m]...)
		if err != nil {
			if len(buf) > 0 {
				t.Fatalf("connection ended (%v) inside a packet: % x", err, buf)
			}
			return nil, err
		}
	}
}

func TestNoArgumentsListensOnLocalhost1883Only(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:1883")
	if err != nil {
		t.Fatalf("127.0.0.1:1883 is busy on this machine (%v), so the default listener cannot be tested: "+
			"stop what listens there (e.g. `systemctl stop mosquitto`) and run the test again", err)
	}
	_ = ln.Close()
	p := startBrokerProc(t)
	defer p.stop()
	if !strings.Contains(p.out.String(), "address=127.0.0.1:1883") {
		t.Errorf("log does not show the listener on 127.0.0.1:1883:\n%s", p.out)
	}
	mosquittoRoundTrip(t, "1883", "1883")

	// Bound to 127.0.0.1, not to all addresses: another loopback address
	// (any of 127.0.0.0/8 reaches this host) and IPv6 are refused.
	for _, addr := range []string{"127.0.0.2:1883", "[::1]:1883"} {
		if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = nc.Close()
			t.Errorf("%s accepted a connection; the default listener must be 127.0.0.1:1883 only", addr)
		}
	}
}

func TestListenFlag(t *testing.T) {
	t.Run("with --allow-anonymous", func(t *testing.T) {
		port1, port2 := freePort(t), freePort(t)
		p := startBrokerProc(t, "--listen", "127.0.0.1:"+port1, "--listen", "127.0.0.1:"+port2, "--allow-anonymous")
		defer p.stop()
		// --listen repeats: both listeners serve, and share one broker.
		mosquittoRoundTrip(t, port1, port2)
	})
	t.Run("without --allow-anonymous", func(t *testing.T) {
		port := freePort(t)
		p := startBrokerProc(t, "--listen", "127.0.0.1:"+port)
		defer p.stop()
		if !strings.Contains(p.out.String(), "no client can connect") {
			t.Errorf("no warning that nobody can connect:\n%s", p.out)
		}
		for _, tc := range []struct{ version, want string }{
			{"mqttv311", "not authorised"},
			{"mqttv5", "Not authorized"},
		} {
			pub := startProc(t, mosquittoTool(t, "mosquitto_pub"), "-V", tc.version, "-h", "127.0.0.1", "-p", port, "-t", "t", "-m", "m")
			if code := pub.exitCode(); code == 0 || !strings.Contains(pub.out.String(), tc.want) {
				t.Errorf("anonymous mosquitto_pub -V %s: exit %d, output %q; want a failure saying %q", tc.version, code, pub.out, tc.want)
			}
		}
	})
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "broker.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigFile(t *testing.T) {
	port := freePort(t)
	path := writeConfig(t, `# A hand-written config: one local listener.
listeners:
  - name: local
    address: 127.0.0.1:`+port+`
allowAnonymous: true
limits:
  maxPacketSize: 4096
log:
  level: info
  format: json
`)
	p := startBrokerProc(t, "--config", path)
	defer p.stop()
	mosquittoRoundTrip(t, port, port)
	// The limits come from the file: a v5 client is told the maximum.
	_, ack := v5Connect(t, "127.0.0.1:"+port)
	if got := ack.Properties.MaximumPacketSize; !ack.Properties.HasMaximumPacketSize || got != 4096 {
		t.Errorf("CONNACK Maximum Packet Size = %d (present %v), want 4096 from the config", got, ack.Properties.HasMaximumPacketSize)
	}
	if !strings.Contains(p.out.String(), `"listener":"local"`) {
		t.Errorf("JSON log does not name the listener %q:\n%s", "local", p.out)
	}
}

func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // all must appear in the error
	}{
		{
			name: "unknown key",
			yaml: "listeners:\n  - address: 127.0.0.1:0\nallowAnonymus: true\n",
			want: []string{"allowAnonymus", "line 3"},
		},
		{
			name: "unknown key in a listener",
			yaml: "listeners:\n  - address: 127.0.0.1:0\n    port: 1883\n",
			want: []string{"port", "line 3"},
		},
		{
			name: "value of the wrong type",
			yaml: "limits:\n  maxPacketSize: lots\n",
			want: []string{"line 2", "lots"},
		},
		{
			name: "value out of range",
			yaml: "limits:\n  maxPacketSize: 300000000\n",
			want: []string{"limits.maxPacketSize", "300000000"},
		},
		{
			name: "bad listener address",
			yaml: "listeners:\n  - address: nowhere\n",
			want: []string{"listeners[0].address", "nowhere"},
		},
		{
			name: "bad log level",
			yaml: "log:\n  level: loud\n",
			want: []string{"log.level", "loud"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.yaml)
			p := startProc(t, brokerBin, "--config", path)
			if code := p.exitCode(); code == 0 {
				t.Fatalf("fleetmq-broker accepted the config and exited 0:\n%s", p.out)
			}
			out := p.out.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("error does not mention %q:\n%s", w, out)
				}
			}
			if !strings.Contains(out, path) {
				t.Errorf("error does not name the file %s:\n%s", path, out)
			}
		})
	}
}

func TestShutdownOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			port := freePort(t)
			p := startBrokerProc(t, "--listen", "127.0.0.1:"+port, "--allow-anonymous", "--log-format", "json")
			nc, _ := v5Connect(t, "127.0.0.1:"+port)
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			pkt, err := readPacket(t, nc)
			if d, ok := pkt.(*packet.Disconnect); !ok || d.ReasonCode != packet.ServerShuttingDown {
				t.Fatalf("after %v the v5 client got %+v (%v); want DISCONNECT 0x8B server shutting down", sig, pkt, err)
			}
			if _, err := readPacket(t, nc); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("after DISCONNECT: %v, want the connection closed", err)
			}
			if code := p.exitCode(); code != 0 {
				t.Fatalf("exit code %d after %v, want 0:\n%s", code, sig, p.out)
			}
			// Structured logs: with --log-format json every line is an
			// object with a level and a message.
			lines := strings.Split(strings.TrimSpace(p.out.String()), "\n")
			for _, l := range lines {
				var rec map[string]any
				if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["level"] == nil || rec["msg"] == nil {
					t.Errorf("log line is not a JSON record with level and msg: %s", l)
				}
			}
			if last := lines[len(lines)-1]; !strings.Contains(last, `"Stopped"`) {
				t.Errorf("last log line is %s, want the Stopped message", last)
			}
		})
	}
}

func TestDebugLogging(t *testing.T) {
	port := freePort(t)
	p := startBrokerProc(t, "--listen", "127.0.0.1:"+port, "--allow-anonymous", "--log-level", "debug")
	defer p.stop()
	mosquittoRoundTrip(t, port, port)
	p.waitOutput("Client connected")
}

func TestVersionFlag(t *testing.T) {
	p := startProc(t, brokerBin, "--version")
	if code := p.exitCode(); code != 0 || !strings.HasPrefix(p.out.String(), "fleetmq-broker ") {
		t.Fatalf("--version: exit %d, output %q", code, p.out)
	}
}
