package auth

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// startMosquitto runs a real Mosquitto broker on a free 127.0.0.1 port with
// password authentication only, and returns the port. The broker is stopped
// when the test ends.
func startMosquitto(t *testing.T, passwordFile string) int {
	t.Helper()
	requireBinary(t, mosquittoBin)
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	// "user root" keeps a broker started by root from switching to the
	// mosquitto user, which could not read the test's temporary files;
	// Mosquitto ignores it when not started as root.
	config := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\nuser root\npersistence false\nlog_dest stderr\n",
		port, passwordFile)
	if err := os.WriteFile(conf, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(mosquittoBin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", log.String())
		}
	})

	// Wait until the listener accepts connections. The deadline only bounds
	// a broken start; nothing is asserted about how long it takes.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("mosquitto exited at start: %v\n%s", err, log.String())
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto is not listening on %s: %v\n%s", addr, err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// mosquittoPublish publishes one message with mosquitto_pub and reports
// whether the broker accepted the credentials.
func mosquittoPublish(t *testing.T, port int, username, password string) (bool, string) {
	t.Helper()
	requireBinary(t, mosquittoPubBin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, mosquittoPubBin,
		"-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-u", username, "-P", password,
		"-t", "auth/test", "-m", "hello", "-q", "1").CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("mosquitto_pub as %q did not finish: %s", username, out)
	}
	return err == nil, string(out)
}

// TestMosquittoAcceptsOurHashes writes users with HashPassword and
// UpdatePasswordFile into a file that mosquitto_passwd started, and logs in
// to a real Mosquitto broker with it: what FleetMQ writes, Mosquitto reads.
func TestMosquittoAcceptsOurHashes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwd")
	mosquittoPasswd(t, "-c", "-b", file, "bob", "bob's own")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]string{
		"alice": "correct horse battery staple",
		"erin":  "pässwörd ✓ with spaces",
	}
	data = append([]byte("# written by FleetMQ\n"), data...)
	for _, u := range []string{"alice", "erin"} {
		h, err := HashPassword([]byte(ours[u]))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = UpdatePasswordFile(data, u, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePasswordFile(file, data); err != nil {
		t.Fatalf("our own parser rejects the file: %v", err)
	}

	port := startMosquitto(t, file)
	tests := []struct {
		user, password string
		ok             bool
	}{
		{"alice", ours["alice"], true},
		{"erin", ours["erin"], true},
		{"bob", "bob's own", true}, // mosquitto_passwd's entry survived the update
		{"alice", "wrong", false},
		{"alice", ours["erin"], false},
		{"mallory", ours["alice"], false},
	}
	for _, tt := range tests {
		ok, out := mosquittoPublish(t, port, tt.user, tt.password)
		if ok != tt.ok {
			t.Errorf("mosquitto_pub as %q: accepted = %v, want %v\n%s", tt.user, ok, tt.ok, out)
		}
	}
}
