package broker_test

import (
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// rawWait bounds every wait of a raw client for a packet that must come.
const rawWait = 5 * time.Second

// quietWait is how long a raw client listens to show that a packet does
// not come. It is a bounded wait for a negative, not a speed measurement.
const quietWait = 300 * time.Millisecond

// rawClient speaks MQTT over a plain TCP connection with the broker's own
// codec, for the behaviour that real client libraries hide or refuse to
// produce: withheld acknowledgements, duplicate packet ids, protocol
// violations and exact reason codes.
type rawClient struct {
	t   testing.TB
	nc  net.Conn
	v   packet.Version
	buf []byte // bytes read but not yet decoded
}

// dialRaw opens a TCP connection to the broker; the test closes it at the end.
func dialRaw(t testing.TB, addr string, v packet.Version) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, rawWait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawClient{t: t, nc: nc, v: v}
}

// connectRaw dials and completes CONNECT/CONNACK with the given CONNECT,
// failing the test unless the broker accepts it.
func connectRaw(t testing.TB, addr string, cp *packet.Connect) (*rawClient, *packet.Connack) {
	t.Helper()
	v := cp.Version
	if v == 0 {
		v = packet.V5
		cp.Version = v
	}
	c := dialRaw(t, addr, v)
	ack := c.connect(cp)
	if ack.ReasonCode != packet.Success {
		t.Fatalf("CONNECT %q refused: %v", cp.ClientID, ack.ReasonCode)
	}
	return c, ack
}

// connect sends cp and returns the CONNACK, whatever its code.
func (c *rawClient) connect(cp *packet.Connect) *packet.Connack {
	c.t.Helper()
	if cp.Version == 0 {
		cp.Version = c.v
	}
	c.send(cp)
	return c.expect(packet.CONNACK).(*packet.Connack)
}

// send encodes p for the client's version and writes it.
func (c *rawClient) send(p packet.Packet) {
	c.t.Helper()
	b, err := p.Encode(nil, c.v)
	if err != nil {
		c.t.Fatalf("encode %s: %v", p.PacketType(), err)
	}
	c.sendBytes(b)
}

// sendBytes writes raw bytes, for packets the encoder refuses to build.
func (c *rawClient) sendBytes(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(rawWait))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// errQuiet is returned by read when nothing arrived within the wait.
var errQuiet = errors.New("no packet within the wait")

// read returns the next packet, errQuiet when none arrives within wait, or
// io.EOF once the broker has closed the connection.
func (c *rawClient) read(wait time.Duration) (packet.Packet, error) {
	deadline := time.Now().Add(wait)
	for {
		fh, n, err := packet.ReadFixedHeader(c.buf)
		if err != nil {
			return nil, err
		}
		if n > 0 && len(c.buf) >= n+fh.Remaining {
			// Copy the body out: decoded PUBLISH topics and payloads alias it.
			body := slices.Clone(c.buf[n : n+fh.Remaining])
			c.buf = c.buf[n+fh.Remaining:]
			return packet.Decode(fh, body, c.v)
		}
		_ = c.nc.SetReadDeadline(deadline)
		var chunk [4096]byte
		m, err := c.nc.Read(chunk[:])
		c.buf = append(c.buf, chunk[:m]...)
		if err != nil && m == 0 {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, errQuiet
			}
			return nil, io.EOF // closed or reset: either way the broker ended it
		}
	}
}

// next returns the next packet, failing the test when none comes.
func (c *rawClient) next() packet.Packet {
	c.t.Helper()
	p, err := c.read(rawWait)
	if err != nil {
		c.t.Fatalf("waiting for a packet: %v", err)
	}
	return p
}

// expect returns the next packet, failing the test unless it has type t.
func (c *rawClient) expect(t packet.Type) packet.Packet {
	c.t.Helper()
	p := c.next()
	if p.PacketType() != t {
		c.t.Fatalf("got %s (%+v), want %s", p.PacketType(), p, t)
	}
	return p
}

// expectPublish returns the next packet, which must be a PUBLISH.
func (c *rawClient) expectPublish() *packet.Publish {
	c.t.Helper()
	return c.expect(packet.PUBLISH).(*packet.Publish)
}

// expectAck returns the next packet, which must be the acknowledgement t
// for packet id.
func (c *rawClient) expectAck(t packet.Type, id uint16) *packet.Ack {
	c.t.Helper()
	a := c.expect(t).(*packet.Ack)
	if a.PacketID != id {
		c.t.Fatalf("%s for packet id %d, want %d", t, a.PacketID, id)
	}
	return a
}

// expectQuiet fails the test if any packet arrives within quietWait.
func (c *rawClient) expectQuiet() {
	c.t.Helper()
	p, err := c.read(quietWait)
	if err == nil {
		c.t.Fatalf("unexpected %s: %+v", p.PacketType(), p)
	}
	if err != errQuiet {
		c.t.Fatalf("connection ended while expecting silence: %v", err)
	}
}

// expectDisconnect asserts that the broker ends the connection: a v5
// client first gets DISCONNECT with reason rc; a v3 client is just closed.
func (c *rawClient) expectDisconnect(rc packet.ReasonCode) {
	c.t.Helper()
	if c.v == packet.V5 {
		d := c.expect(packet.DISCONNECT).(*packet.Disconnect)
		if d.ReasonCode != rc {
			c.t.Fatalf("DISCONNECT reason %#02x (%v), want %#02x (%v)", byte(d.ReasonCode), d.ReasonCode, byte(rc), rc)
		}
	}
	c.expectClosed()
}

// expectClosed asserts that the broker closes the connection, skipping
// nothing but a final DISCONNECT.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	for {
		p, err := c.read(rawWait)
		if err == io.EOF {
			return
		}
		if err != nil {
			c.t.Fatalf("connection still open: %v", err)
		}
		if p.PacketType() != packet.DISCONNECT {
			c.t.Fatalf("got %s while waiting for the connection to close", p.PacketType())
		}
	}
}

// subscribe sends SUBSCRIBE and returns the SUBACK reason codes.
func (c *rawClient) subscribe(id uint16, subID uint32, subs ...packet.Subscription) []packet.ReasonCode {
	c.t.Helper()
	s := &packet.Subscribe{PacketID: id, Subscriptions: subs}
	if subID != 0 {
		s.Properties.SubscriptionIDs = []uint32{subID}
	}
	c.send(s)
	ack := c.expect(packet.SUBACK).(*packet.Suback)
	if ack.PacketID != id {
		c.t.Fatalf("SUBACK for packet id %d, want %d", ack.PacketID, id)
	}
	return ack.ReasonCodes
}

// ack sends an acknowledgement of type t for packet id.
func (c *rawClient) ack(t packet.Type, id uint16) {
	c.t.Helper()
	c.send(&packet.Ack{Type: t, PacketID: id})
}

// close drops the connection without DISCONNECT, as a crashed client does.
func (c *rawClient) close() { _ = c.nc.Close() }

// rawSub is a subscription with options, for rawClient.subscribe.
func rawSub(filter string, qos byte) packet.Subscription {
	return packet.Subscription{Filter: filter, QoS: qos}
}

// publish sends a PUBLISH and completes its QoS 1 or 2 exchange, for a
// client that receives nothing else meanwhile. It returns the reason code
// of the PUBACK or PUBREC.
func (c *rawClient) publish(topic string, qos byte, id uint16, payload string) packet.ReasonCode {
	c.t.Helper()
	c.send(&packet.Publish{Topic: []byte(topic), QoS: qos, PacketID: id, Payload: []byte(payload)})
	switch qos {
	case 1:
		return c.expectAck(packet.PUBACK, id).ReasonCode
	case 2:
		rc := c.expectAck(packet.PUBREC, id).ReasonCode
		c.ack(packet.PUBREL, id)
		c.expectAck(packet.PUBCOMP, id)
		return rc
	}
	return packet.Success
}

// sync waits until the broker has handled everything sent so far: it
// answers a PINGREQ only after the packets before it.
func (c *rawClient) sync() {
	c.t.Helper()
	c.send(&packet.Pingreq{})
	c.expect(packet.PINGRESP)
}
