package auth

import (
	"fmt"
	"strings"
	"testing"
)

// benchACL builds a fleet-sized ACL: an anonymous section, users sections
// of six lines each, and the usual per-client patterns.
func benchACL(b *testing.B, users int) *ACL {
	b.Helper()
	var sb strings.Builder
	sb.WriteString("topic read public/#\ntopic read $SYS/broker/uptime\n")
	for i := range users {
		fmt.Fprintf(&sb, "user user%d\n", i)
		fmt.Fprintf(&sb, "topic deny devices/user%d/secret\n", i)
		fmt.Fprintf(&sb, "topic readwrite devices/user%d/#\n", i)
		fmt.Fprintf(&sb, "topic read fleet/+/status\n")
		fmt.Fprintf(&sb, "topic write logs/user%d\n", i)
		fmt.Fprintf(&sb, "topic read cmd/user%d/+/in\n", i)
	}
	sb.WriteString("pattern write clients/%c/state\npattern read users/%u/inbox/#\npattern deny users/%u/inbox/blocked\n")
	a, err := ParseACL("bench", []byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	return a
}

var benchSink bool

func BenchmarkCanPublish(b *testing.B) {
	a := benchACL(b, 10000)
	c := Client{ClientID: "c5000", Username: "user5000"}
	for _, bc := range []struct{ name, topic string }{
		{"user-grant", "logs/user5000"},
		{"pattern-grant", "clients/c5000/state"},
		{"denied", "devices/user1/cmd"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				benchSink = a.CanPublish(c, bc.topic)
			}
		})
	}
}

func BenchmarkCanRead(b *testing.B) {
	a := benchACL(b, 10000)
	c := Client{ClientID: "c5000", Username: "user5000"}
	for _, bc := range []struct{ name, topic string }{
		{"user-grant", "fleet/truck-17/status"},
		{"pattern-grant", "users/user5000/inbox/m1"},
		{"denied", "users/user5000/inbox/blocked"},
		{"anonymous", "public/news/today"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cl := c
			if bc.name == "anonymous" {
				cl = Client{ClientID: "a1", Anonymous: true}
			}
			b.ReportAllocs()
			for b.Loop() {
				benchSink = a.CanRead(cl, bc.topic)
			}
		})
	}
}

func BenchmarkCanSubscribe(b *testing.B) {
	a := benchACL(b, 10000)
	c := Client{ClientID: "c5000", Username: "user5000"}
	for _, bc := range []struct{ name, filter string }{
		{"wildcard", "fleet/+/status"},
		{"denied", "devices/user1/#"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				benchSink = a.CanSubscribe(c, bc.filter)
			}
		})
	}
}

func BenchmarkParseACL(b *testing.B) {
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, "user user%d\ntopic readwrite devices/user%d/#\ntopic read fleet/+/status\n", i, i)
	}
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseACL("bench", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify7 is the cost of one CONNECT against a mosquitto_passwd
// 2.0 entry (PBKDF2-SHA512, 101 rounds).
func BenchmarkVerify7(b *testing.B) {
	h, err := HashPassword([]byte("secret"))
	if err != nil {
		b.Fatal(err)
	}
	p, err := ParsePasswordFile("bench", []byte("alice:"+h+"\nbob:"+sha512Entry+"\n"))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, user, password string }{
		{"known", "alice", "secret"},
		{"wrong-password", "alice", "Secret"},
		{"unknown-user", "mallory", "secret"},
		{"sha512-legacy", "bob", "secret2"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pw := []byte(bc.password)
			b.ReportAllocs()
			for b.Loop() {
				benchSink = p.Verify(bc.user, pw)
			}
		})
	}
}
