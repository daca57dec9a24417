package broker_test

// TLS listeners against Debian's mosquitto_sub and Go's TLS client:
// server-only TLS, client certificates (requested and required, with the
// certificate's CN as the username) and certificate rotation without a
// restart.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
)

// testCA issues certificates for tests.
type testCA struct {
	cert  *x509.Certificate
	key   *ecdsa.PrivateKey
	PEM   string
	roots *x509.CertPool
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &testCA{cert: cert, key: key, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), roots: roots}
}

// issue returns a PEM certificate and key for cn: a server certificate
// for 127.0.0.1 and localhost, or a client certificate.
func (ca *testCA) issue(t testing.TB, cn string, serial int64, server bool) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}

// tlsSecret is a kubernetes.io/tls Secret volume with a serving
// certificate and the CA that client certificates are checked against.
func tlsSecret(t testing.TB, ca *testCA, serial int64) map[string]string {
	crt, key := ca.issue(t, "fleetmq-test", serial, true)
	return map[string]string{"tls.crt": crt, "tls.key": key, "ca.crt": ca.PEM}
}

// serveListener adds the listener lc (TLS, WebSocket, PROXY protocol...) to
// b on a free loopback port and returns its address.
func serveListener(t testing.TB, b *testBroker, lc config.Listener) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ServeListener(lc, ln); err != nil {
		_ = ln.Close()
		t.Fatalf("ServeListener: %v", err)
	}
	return ln.Addr().String()
}

func tlsListener(name string, vol *kubeVolume, clientAuth string) config.Listener {
	return config.Listener{Name: name, TLS: &config.TLS{
		CertFile:   vol.path("tls.crt"),
		KeyFile:    vol.path("tls.key"),
		CAFile:     vol.path("ca.crt"),
		ClientAuth: clientAuth,
	}}
}

// mosquittoSubTLS runs mosquitto_sub for one message and returns what it
// printed and whether it succeeded.
func mosquittoSubTLS(t testing.TB, addr string, args ...string) (string, bool) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	full := append([]string{"-h", host, "-p", port, "-C", "1", "-W", "10"}, args...)
	out, err := exec.CommandContext(ctx, interopTool(t, "mosquitto_sub"), full...).CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

func TestTLSWithMosquittoSub(t *testing.T) {
	ca := newTestCA(t, "test CA")
	vol := newKubeVolume(t, tlsSecret(t, ca, 100))
	clientDir := t.TempDir()
	crt, key := ca.issue(t, "device-1", 200, false)
	clientCrt, clientKey := writeTestFile(t, clientDir, "client.crt", crt), writeTestFile(t, clientDir, "client.key", key)
	strangerCA := newTestCA(t, "another CA")
	crt, key = strangerCA.issue(t, "stranger", 300, false)
	strangerCrt, strangerKey := writeTestFile(t, clientDir, "stranger.crt", crt), writeTestFile(t, clientDir, "stranger.key", key)
	caFile := vol.path("ca.crt")

	t.Run("client certificate requested", func(t *testing.T) {
		b := startBroker(t) // anonymous allowed
		addr := serveListener(t, b, tlsListener("mqtts", vol, "request"))
		mosquittoPub(t, b, "-t", "tls/hello", "-m", "hello", "-r", "-q", "1")
		if out, ok := mosquittoSubTLS(t, addr, "--cafile", caFile, "-t", "tls/hello"); !ok || out != "hello" {
			t.Errorf("mosquitto_sub --cafile without a client certificate: ok=%v output %q", ok, out)
		}
		if out, ok := mosquittoSubTLS(t, addr, "--cafile", caFile, "--cert", clientCrt, "--key", clientKey, "-t", "tls/hello"); !ok || out != "hello" {
			t.Errorf("mosquitto_sub --cafile with a client certificate: ok=%v output %q", ok, out)
		}
		if out, ok := mosquittoSubTLS(t, addr, "--cafile", caFile, "--cert", strangerCrt, "--key", strangerKey, "-t", "tls/hello"); ok {
			t.Errorf("a client certificate from another CA was accepted: %q", out)
		}
		if out, ok := mosquittoSubTLS(t, addr, "--cafile", writeTestFile(t, clientDir, "wrong-ca.crt", strangerCA.PEM), "-t", "tls/hello"); ok {
			t.Errorf("mosquitto_sub trusted a broker certificate from a CA it was not given: %q", out)
		}
	})

	t.Run("client certificate required, CN as username", func(t *testing.T) {
		dir := t.TempDir()
		b := startBroker(t, func(cfg *config.Config, _ *broker.Options) {
			cfg.AllowAnonymous = false
			cfg.ACLFile = writeTestFile(t, dir, "acl", "user device-1\ntopic read tls/#\n")
		})
		lc := tlsListener("mqtts-cn", vol, "require")
		lc.TLS.UseCNAsUsername = true
		addr := serveListener(t, b, lc)
		// The certificate is the credential: the CONNECT username and
		// password are not looked at (there is no password file at all),
		// and the ACL applies to the CN, which has no write grant.
		dev, _ := connectRawTLS(t, addr, ca.roots, clientCrt, clientKey, loginPacket(packet.V5, uniqueID("dev"), "admin", "guess"))
		if rc := dev.publish("tls/hello", 1, 1, "hello"); rc != packet.NotAuthorized {
			t.Fatalf("device-1 publishing without a write grant: %v, want Not Authorized", rc)
		}
		if out, ok := mosquittoSubTLS(t, addr, "--cafile", caFile, "-t", "tls/hello"); ok {
			t.Errorf("mosquitto_sub without a certificate was served on a require listener: %q", out)
		}
		// Subscribed as device-1: the ACL grant for that CN applies.
		host, port, _ := net.SplitHostPort(addr)
		ctx, cancel := context.WithTimeout(context.Background(), interopWait)
		defer cancel()
		cmd := exec.CommandContext(ctx, interopTool(t, "mosquitto_sub"), "-h", host, "-p", port, "-d",
			"--cafile", caFile, "--cert", clientCrt, "--key", clientKey, "-t", "tls/#", "-t", "other/#", "-W", "1")
		out, _ := cmd.CombinedOutput()
		// -W ends it; what matters is the SUBACK: tls/# granted (QoS 0),
		// other/# refused (0x80), as the ACL for CN device-1 says.
		if !strings.Contains(string(out), "Subscribed (mid: 1): 0, 128") {
			t.Errorf("mosquitto_sub as device-1 did not get SUBACK 0, 128:\n%s", out)
		}
	})
}

// connectRawTLS opens a TLS connection with a client certificate and
// completes CONNECT on it.
func connectRawTLS(t testing.TB, addr string, roots *x509.CertPool, certFile, keyFile string, cp *packet.Connect) (*rawClient, *tls.Conn) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: rawWait}, "tcp", addr,
		&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = tc.Close() })
	c := &rawClient{t: t, nc: tc, v: packet.V5}
	if ack := c.connect(cp); ack.ReasonCode != packet.Success {
		t.Fatalf("CONNECT over TLS refused: %v", ack.ReasonCode)
	}
	return c, tc
}

// servingSerial dials addr and returns the serial number of the
// certificate the broker presents.
func servingSerial(t testing.TB, addr string, roots *x509.CertPool) int64 {
	t.Helper()
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: rawWait}, "tcp", addr, &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer tc.Close()
	return tc.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestTLSCertificateRotation(t *testing.T) {
	ca := newTestCA(t, "test CA")
	vol := newKubeVolume(t, tlsSecret(t, ca, 100))
	b := startBroker(t)
	addr := serveListener(t, b, tlsListener("mqtts", vol, "none"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := b.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	if s := servingSerial(t, addr, ca.roots); s != 100 {
		t.Fatalf("serving serial %d, want 100", s)
	}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: rawWait}, "tcp", addr, &tls.Config{RootCAs: ca.roots})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tc.Close() })
	old := &rawClient{t: t, nc: tc, v: packet.V5}
	if ack := old.connect(loginPacket(packet.V5, uniqueID("old"), "", "")); ack.ReasonCode != packet.Success {
		t.Fatalf("connect: %v", ack.ReasonCode)
	}
	if codes := old.subscribe(1, 0, rawSub("rotate/#", 1)); codes[0] != 1 {
		t.Fatalf("subscribe: %v", codes)
	}

	start := time.Now()
	vol.update(tlsSecret(t, ca, 101))
	waitFor(t, "new connections served the rotated certificate", start, func() bool {
		return servingSerial(t, addr, ca.roots) == 101
	})

	// The connection made before the rotation is still up and served.
	mosquittoPub(t, b, "-t", "rotate/x", "-m", "after", "-q", "1")
	if p := old.expectPublish(); string(p.Payload) != "after" {
		t.Fatalf("old connection got %q", p.Payload)
	}
	if tc.ConnectionState().PeerCertificates[0].SerialNumber.Int64() != 100 {
		t.Error("the old connection's certificate changed")
	}

	t.Run("broken certificate keeps the old one", func(t *testing.T) {
		errsBefore := b.Stats().ReloadErrors.Load()
		broken := tlsSecret(t, ca, 102)
		broken["tls.key"] = tlsSecret(t, ca, 103)["tls.key"] // a key that does not match
		vol.update(broken)
		eventually(t, "the mismatched key reported", func() bool { return b.Stats().ReloadErrors.Load() > errsBefore })
		if s := servingSerial(t, addr, ca.roots); s != 101 {
			t.Errorf("serving serial %d after a broken update, want the previous 101", s)
		}
		if e := b.Health().Files["tls/mqtts"].Error; e == "" {
			t.Error("Health shows no error for the broken certificate")
		}
	})
}
