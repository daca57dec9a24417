package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestParseRejectsBadInput checks that each mistake a user can make in the
// config file is refused with a message that names the key (and the line,
// where YAML knows it) and says what is expected.
func TestParseRejectsBadInput(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "listeners: []\nallowAnonymus: true\n", "line 2: field allowAnonymus not found"},
		{"wrong type", "limits:\n  maxInflight: many\n", "line 2"},
		{"listener without address", "listeners:\n  - name: a\n", "listeners[0].address: required"},
		{"address without port", "listeners:\n  - address: 127.0.0.1\n", "is not host:port"},
		{"port out of range", "listeners:\n  - address: 127.0.0.1:70000\n", "must be a number from 0 to 65535"},
		{"duplicate names", "listeners:\n  - {name: a, address: 127.0.0.1:1}\n  - {name: a, address: 127.0.0.1:2}\n", `"a" is used by another listener`},
		{"duplicate addresses", "listeners:\n  - {name: a, address: 127.0.0.1:1}\n  - {name: b, address: 127.0.0.1:1}\n", `"127.0.0.1:1" is used by another listener`},
		{"unknown protocol", "listeners:\n  - {address: 127.0.0.1:1, protocol: quic}\n", `protocol: "quic" must be "mqtt" or "websocket"`},
		{"websocket path", "listeners:\n  - {address: 127.0.0.1:1, protocol: websocket, path: mqtt}\n", `path: "mqtt" must start with /`},
		{"tls without key", "listeners:\n  - {address: 127.0.0.1:1, tls: {certFile: c}}\n", "certFile and keyFile are both required"},
		{"client auth without CA", "listeners:\n  - {address: 127.0.0.1:1, tls: {certFile: c, keyFile: k, clientAuth: require}}\n", "caFile: required when clientAuth is require"},
		{"unknown client auth", "listeners:\n  - {address: 127.0.0.1:1, tls: {certFile: c, keyFile: k, clientAuth: maybe}}\n", `clientAuth: "maybe" must be none, request or require`},
		{"trusted proxies without the PROXY protocol", "listeners:\n  - {address: 127.0.0.1:1, trustedProxies: [10.0.0.0/8]}\n", "trustedProxies: needs proxyProtocol: true"},
		{"a trusted proxy that is no address", "listeners:\n  - {address: 127.0.0.1:1, proxyProtocol: true, trustedProxies: [10.0.0.0/8, lb.example]}\n", `trustedProxies[1]: "lb.example" is neither an IP address nor a CIDR range`},
		{"CN without require", "listeners:\n  - {address: 127.0.0.1:1, tls: {certFile: c, keyFile: k, caFile: a, clientAuth: request, useCNAsUsername: true}}\n", "useCNAsUsername: needs clientAuth: require"},
		{"packet size", "limits: {maxPacketSize: 268435456}\n", "limits.maxPacketSize"},
		{"receive maximum", "limits: {receiveMaximum: 70000}\n", "limits.receiveMaximum"},
		{"negative queue", "limits: {maxQueuedMessages: -1}\n", "limits.maxQueuedMessages: -1 must not be negative"},
		{"topic alias maximum", "limits: {topicAliasMaximum: -1}\n", "limits.topicAliasMaximum"},
		{"sys interval", "sysInterval: -5\n", "sysInterval: -5 must be between 0"},
		{"metrics address", "metrics: {address: nine}\n", `metrics.address: "nine" is not host:port`},
		{"log level", "log: {level: loud}\n", `log.level: "loud" must be debug, info, warn or error`},
		{"log format", "log: {format: xml}\n", `log.format: "xml" must be text or json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("broker.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.yaml)
			}
			if !strings.HasPrefix(err.Error(), "broker.yaml: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to name the file and contain %q", err, tt.want)
			}
		})
	}
}

// TestParseReportsEveryProblem checks that one run shows all mistakes, not
// just the first, so a user fixes the file in one go.
func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse("b.yaml", []byte("log: {level: loud, format: xml}\nlimits: {maxQueuedBytes: -1}\n"))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"log.level", "log.format", "limits.maxQueuedBytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// TestDefaults checks the documented defaults: an empty file is a valid
// config, and with no listeners the broker is local-only.
func TestDefaults(t *testing.T) {
	c, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.AllowAnonymous {
		t.Error("a config file allows anonymous clients by default; it must not")
	}
	l := c.Limits
	if l.MaxPacketSize != DefaultMaxPacketSize || l.ReceiveMaximum != DefaultReceiveMaximum ||
		l.MaxTopicLength != DefaultMaxTopicLength || l.MaxTopicLevels != DefaultMaxTopicLevels ||
		l.TopicAliasMaximum == nil || *l.TopicAliasMaximum != DefaultTopicAliasMaximum {
		t.Errorf("defaults not applied: %+v", l)
	}
	if c.SysInterval == nil || *c.SysInterval != DefaultSysInterval {
		t.Errorf("sysInterval = %v, want %d", c.SysInterval, DefaultSysInterval)
	}
	d := Default()
	if len(d.Listeners) != 1 || d.Listeners[0].Address != DefaultAddress || !d.AllowAnonymous {
		t.Errorf("Default() = %+v, want one anonymous listener on %s", d, DefaultAddress)
	}
}

// TestMarshalRoundTrip checks that what Marshal writes (the operator's
// rendering) parses back to the same config.
func TestMarshalRoundTrip(t *testing.T) {
	in := `listeners:
  - {name: mqtt, address: 0.0.0.0:1883}
  - name: mqtts
    address: 0.0.0.0:8883
    tls: {certFile: /t/tls.crt, keyFile: /t/tls.key, caFile: /t/ca.crt, clientAuth: require, useCNAsUsername: true}
  - {name: ws, address: 0.0.0.0:8080, protocol: websocket, path: /mqtt}
passwordFile: /u/passwd
aclFile: /a/acl
limits: {maxConnections: 10, maxInflight: 5, topicAliasMaximum: 0, maxSessionExpiry: 3600}
metrics: {address: 0.0.0.0:9090}
sysInterval: 0
log: {level: debug, format: json}
`
	c, err := Parse("in.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("out.yaml", out)
	if err != nil {
		t.Fatalf("Marshal wrote a file Parse refuses: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(c, back) {
		t.Errorf("round trip changed the config:\n%+v\n%+v\n%s", c, back, out)
	}
	if *back.Limits.TopicAliasMaximum != 0 || *back.SysInterval != 0 {
		t.Error("explicit zeros were lost: 0 turns topic aliases and $SYS off and must survive")
	}
}

// FuzzParse checks that no input panics Parse and that every accepted
// config survives Marshal and Parse unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte("listeners:\n  - {name: a, address: 127.0.0.1:1883}\nallowAnonymous: true\n"))
	f.Add([]byte("limits: {maxInflight: 10, topicAliasMaximum: 0}\nlog: {level: warn}\n"))
	f.Add([]byte("listeners:\n  - {address: ':8883', tls: {certFile: c, keyFile: k, caFile: a, clientAuth: request}}\n"))
	f.Add([]byte("sysInterval: 0\nmetrics: {address: '[::1]:9090'}\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		out, err := Marshal(c)
		if err != nil {
			t.Fatalf("Marshal of an accepted config: %v", err)
		}
		back, err := Parse("again.yaml", out)
		if err != nil {
			t.Fatalf("Marshal wrote a file Parse refuses: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, back) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, back)
		}
	})
}
