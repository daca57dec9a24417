package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// send writes one v5 packet.
func send(t *testing.T, nc net.Conn, p packet.Packet) {
	t.Helper()
	b, err := p.Encode(nil, packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatalf("send %s: %v", p.PacketType(), err)
	}
}

func TestSIGHUPReloadsFiles(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	acl := writeFile(t, dir, "acl", "user alice\ntopic readwrite a/#\n")
	conf := writeFile(t, dir, "broker.yaml", "listeners:\n  - address: 127.0.0.1:"+port+"\n"+
		"passwordFile: "+writeFile(t, dir, "passwd", alicePasswd)+"\naclFile: "+acl+"\n")
	p := startBrokerProc(t, "--config", conf, "--watch=false")
	defer p.stop()

	nc, err := net.DialTimeout("tcp", "127.0.0.1:"+port, procWait)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	send(t, nc, &packet.Connect{Version: packet.V5, ClientID: "alice-1", CleanStart: true, KeepAlive: 60,
		HasUsername: true, Username: "alice", HasPassword: true, Password: []byte("pw")})
	if pk, err := readPacket(t, nc); err != nil || pk.(*packet.Connack).ReasonCode != packet.Success {
		t.Fatalf("CONNACK %+v %v", pk, err)
	}
	publish := func(id uint16) packet.ReasonCode {
		send(t, nc, &packet.Publish{Topic: []byte("a/x"), QoS: 1, PacketID: id, Payload: []byte("x")})
		pk, err := readPacket(t, nc)
		if err != nil {
			t.Fatalf("waiting for PUBACK: %v", err)
		}
		return pk.(*packet.Ack).ReasonCode
	}
	if rc := publish(1); rc.IsError() {
		t.Fatalf("publish before the reload: %v", rc)
	}

	if err := os.WriteFile(acl, []byte("user alice\ntopic read a/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitOutput("file=acl")
	if rc := publish(2); rc != packet.NotAuthorized {
		t.Errorf("publish after SIGHUP reloaded the ACL: %v, want Not Authorized on the same connection", rc)
	}
	if !strings.Contains(p.out.String(), "SIGHUP") {
		t.Errorf("the reload was not logged as coming from SIGHUP:\n%s", p.out)
	}
}

// writeTestCert writes a self-signed CA and a server certificate for
// 127.0.0.1 issued by it, and returns the CA, certificate and key paths.
func writeTestCert(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cmd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "fleetmq"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return writeFile(t, dir, "ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))),
		writeFile(t, dir, "tls.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
		writeFile(t, dir, "tls.key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
}

func TestTLSAndKeepAliveFlags(t *testing.T) {
	caFile, certFile, keyFile := writeTestCert(t, t.TempDir())
	port, tlsPort := freePort(t), freePort(t)
	p := startBrokerProc(t, "--listen", "127.0.0.1:"+port, "--allow-anonymous", "--max-keepalive", "30",
		"--tls-cert", certFile, "--tls-key", keyFile, "--tls-listen", "127.0.0.1:"+tlsPort)
	defer p.stop()

	// -k 20: a 3.1.1 client asking for more than --max-keepalive is refused.
	pub := startProc(t, mosquittoTool(t, "mosquitto_pub"), "-h", "127.0.0.1", "-p", port, "-k", "20", "-t", "flags/tls", "-m", "over tls", "-r", "-q", "1")
	if code := pub.exitCode(); code != 0 {
		t.Fatalf("mosquitto_pub: exit %d\n%s", code, pub.out)
	}
	sub := startProc(t, mosquittoTool(t, "mosquitto_sub"), "-h", "127.0.0.1", "-p", tlsPort, "--cafile", caFile, "-k", "20",
		"-t", "flags/tls", "-C", "1", "-W", "10")
	if code := sub.exitCode(); code != 0 || strings.TrimSpace(sub.out.String()) != "over tls" {
		t.Errorf("mosquitto_sub over the TLS listener the flags added: exit %d, output %q", code, sub.out)
	}

	_, ack := v5Connect(t, "127.0.0.1:"+port) // asks for 60 seconds
	if !ack.Properties.HasServerKeepAlive || ack.Properties.ServerKeepAlive != 30 {
		t.Errorf("CONNACK Server Keep Alive %d (present %v), want 30 from --max-keepalive",
			ack.Properties.ServerKeepAlive, ack.Properties.HasServerKeepAlive)
	}
}
