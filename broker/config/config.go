// Package config is the broker's configuration file: the YAML document the
// operator renders into the <name>-config ConfigMap and that a user can write
// by hand to run fleetmq-broker on its own. Every key is documented on its
// field; docs/broker-config.md shows a complete example.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Config is the whole broker configuration.
type Config struct {
	// Listeners are the network endpoints clients connect to. Without any,
	// the broker listens on 127.0.0.1:1883 only, like Mosquitto 2.
	Listeners []Listener `yaml:"listeners,omitempty" json:"listeners,omitempty"`
	// AllowAnonymous lets clients connect without a user name. The default
	// is false when a config file is given; the built-in local-only default
	// (no config file, no listeners) allows anonymous clients.
	AllowAnonymous bool `yaml:"allowAnonymous,omitempty" json:"allowAnonymous,omitempty"`
	// PasswordFile is a Mosquitto-format password file (user:hash lines).
	PasswordFile string `yaml:"passwordFile,omitempty" json:"passwordFile,omitempty"`
	// ACLFile is a Mosquitto-format ACL file. Without one every
	// authenticated client may publish and subscribe to everything.
	ACLFile string `yaml:"aclFile,omitempty" json:"aclFile,omitempty"`
	// Limits bound what each client and the broker as a whole may use.
	Limits Limits `yaml:"limits,omitempty" json:"limits,omitempty"`
	// Metrics serves Prometheus metrics and the /healthz and /readyz probes.
	Metrics Metrics `yaml:"metrics,omitempty" json:"metrics,omitempty"`
	// SysInterval is how often the $SYS/broker/... topics are published,
	// in seconds (default 10; 0 turns them off, as in Mosquitto).
	SysInterval *int `yaml:"sysInterval,omitempty" json:"sysInterval,omitempty"`
	// Log sets the log level and format.
	Log Log `yaml:"log,omitempty" json:"log,omitempty"`
}

// Listener is one network endpoint.
type Listener struct {
	// Name identifies the listener in logs and metrics, e.g. "mqtt".
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Address is host:port to listen on, e.g. "0.0.0.0:1883" or ":8883".
	Address string `yaml:"address" json:"address"`
	// Protocol is "mqtt" (MQTT over TCP, the default) or "websocket".
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	// Path is the HTTP path of a websocket listener (default "/mqtt").
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// TLS turns the listener into a TLS listener when set.
	TLS *TLS `yaml:"tls,omitempty" json:"tls,omitempty"`
	// ProxyProtocol makes every connection start with a PROXY protocol v1 or
	// v2 header, as a load balancer (AWS NLB, HAProxy, ...) sends it, before
	// TLS and MQTT; the client address it carries is the one in logs and
	// given to authentication. A connection without one is closed.
	ProxyProtocol bool `yaml:"proxyProtocol,omitempty" json:"proxyProtocol,omitempty"`
	// TrustedProxies are the addresses or CIDR ranges of the load balancers
	// that may connect to a proxyProtocol listener; connections from
	// anywhere else are closed on accept, so that no client can claim
	// another's address. Empty trusts every peer: then nothing but the load
	// balancer must be able to reach the listener.
	TrustedProxies []string `yaml:"trustedProxies,omitempty" json:"trustedProxies,omitempty"`
}

// TLS configures a TLS listener. Files are re-read when they change.
type TLS struct {
	// CertFile is the PEM serving certificate (chain).
	CertFile string `yaml:"certFile" json:"certFile"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `yaml:"keyFile" json:"keyFile"`
	// CAFile is the PEM bundle that client certificates are verified against.
	CAFile string `yaml:"caFile,omitempty" json:"caFile,omitempty"`
	// ClientAuth is "none" (default), "request" or "require".
	ClientAuth string `yaml:"clientAuth,omitempty" json:"clientAuth,omitempty"`
	// UseCNAsUsername takes the user name from the client certificate's
	// common name instead of the CONNECT packet.
	UseCNAsUsername bool `yaml:"useCNAsUsername,omitempty" json:"useCNAsUsername,omitempty"`
}

// Limits bound resource use. Zero means the default written on each field.
type Limits struct {
	// MaxConnections is the most concurrent client connections (default 0: unlimited).
	MaxConnections int `yaml:"maxConnections,omitempty" json:"maxConnections,omitempty"`
	// MaxPacketSize is the largest packet accepted and sent, in bytes
	// (default 1 MiB; at most 268435455).
	MaxPacketSize int `yaml:"maxPacketSize,omitempty" json:"maxPacketSize,omitempty"`
	// ReceiveMaximum is how many QoS 1/2 PUBLISH a client may have unacknowledged
	// towards the broker (default 1024; announced in CONNACK).
	ReceiveMaximum int `yaml:"receiveMaximum,omitempty" json:"receiveMaximum,omitempty"`
	// MaxInflight caps QoS 1/2 messages in flight to one client, whatever
	// the client's own Receive Maximum (default 1024).
	MaxInflight int `yaml:"maxInflight,omitempty" json:"maxInflight,omitempty"`
	// MaxQueuedMessages is the most messages queued for one session, online
	// or offline (default 10000). Beyond it new messages are dropped and counted.
	MaxQueuedMessages int `yaml:"maxQueuedMessages,omitempty" json:"maxQueuedMessages,omitempty"`
	// MaxQueuedBytes is the most payload bytes queued for one session (default 64 MiB).
	MaxQueuedBytes int64 `yaml:"maxQueuedBytes,omitempty" json:"maxQueuedBytes,omitempty"`
	// MaxSessionExpiry caps the Session Expiry Interval a client may ask for,
	// in seconds (default 0: no cap). v3 persistent sessions use this value
	// too when set.
	MaxSessionExpiry uint32 `yaml:"maxSessionExpiry,omitempty" json:"maxSessionExpiry,omitempty"`
	// MaxKeepAlive caps the Keep Alive a client may ask for, in seconds; v5
	// clients are told with Server Keep Alive (default 0: no cap).
	MaxKeepAlive uint16 `yaml:"maxKeepAlive,omitempty" json:"maxKeepAlive,omitempty"`
	// TopicAliasMaximum is how many topic aliases a client may set (default 65535, 0 disables).
	TopicAliasMaximum *int `yaml:"topicAliasMaximum,omitempty" json:"topicAliasMaximum,omitempty"`
	// MaxTopicLength is the longest topic name or filter, in bytes (default 65535).
	MaxTopicLength int `yaml:"maxTopicLength,omitempty" json:"maxTopicLength,omitempty"`
	// MaxTopicLevels is the most '/'-separated levels in a topic (default 128).
	MaxTopicLevels int `yaml:"maxTopicLevels,omitempty" json:"maxTopicLevels,omitempty"`
	// MaxRetainedMessages is the most retained messages kept (default 0: unlimited).
	MaxRetainedMessages int `yaml:"maxRetainedMessages,omitempty" json:"maxRetainedMessages,omitempty"`
}

// Metrics configures the HTTP endpoint for metrics and health probes.
type Metrics struct {
	// Address is host:port of the HTTP endpoint, e.g. ":9234". Empty disables it.
	Address string `yaml:"address,omitempty" json:"address,omitempty"`
}

// Log configures logging.
type Log struct {
	// Level is "debug", "info" (default), "warn" or "error".
	Level string `yaml:"level,omitempty" json:"level,omitempty"`
	// Format is "text" (default) or "json".
	Format string `yaml:"format,omitempty" json:"format,omitempty"`
}

// Defaults for zero-valued limits.
const (
	DefaultMaxPacketSize     = 1 << 20
	DefaultReceiveMaximum    = 1024
	DefaultMaxInflight       = 1024
	DefaultMaxQueuedMessages = 10000
	DefaultMaxQueuedBytes    = 64 << 20
	DefaultTopicAliasMaximum = 65535
	DefaultMaxTopicLength    = 65535
	DefaultMaxTopicLevels    = 128
	DefaultSysInterval       = 10
	DefaultAddress           = "127.0.0.1:1883"
)

// Default is the configuration used without a config file: like Mosquitto 2
// without one, a local-only listener that allows anonymous clients.
func Default() *Config {
	c := &Config{
		Listeners:      []Listener{{Name: "mqtt", Address: DefaultAddress}},
		AllowAnonymous: true,
	}
	c.ApplyDefaults()
	return c
}

// ApplyDefaults fills every zero-valued field that has a default.
func (c *Config) ApplyDefaults() {
	if len(c.Listeners) == 0 {
		c.Listeners = nil // "listeners: []" means the same as no key: the local default
	}
	l := &c.Limits
	setDefault(&l.MaxPacketSize, DefaultMaxPacketSize)
	setDefault(&l.ReceiveMaximum, DefaultReceiveMaximum)
	setDefault(&l.MaxInflight, DefaultMaxInflight)
	setDefault(&l.MaxQueuedMessages, DefaultMaxQueuedMessages)
	if l.MaxQueuedBytes == 0 {
		l.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if l.TopicAliasMaximum == nil {
		v := DefaultTopicAliasMaximum
		l.TopicAliasMaximum = &v
	}
	setDefault(&l.MaxTopicLength, DefaultMaxTopicLength)
	setDefault(&l.MaxTopicLevels, DefaultMaxTopicLevels)
	if c.SysInterval == nil {
		v := DefaultSysInterval
		c.SysInterval = &v
	}
	for i := range c.Listeners {
		ln := &c.Listeners[i]
		if ln.Protocol == "" {
			ln.Protocol = "mqtt"
		}
		if ln.Name == "" {
			ln.Name = ln.Protocol + "-" + portOf(ln.Address)
		}
		if ln.Protocol == "websocket" && ln.Path == "" {
			ln.Path = "/mqtt"
		}
		if ln.TLS != nil && ln.TLS.ClientAuth == "" {
			ln.TLS.ClientAuth = "none"
		}
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}

func setDefault(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func portOf(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return port
	}
	return addr
}

// Validate reports every problem in c, one per line, naming the key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	names := map[string]bool{}
	addrs := map[string]bool{}
	for i, ln := range c.Listeners {
		key := fmt.Sprintf("listeners[%d]", i)
		if ln.Address == "" {
			bad("%s.address: required, e.g. \"0.0.0.0:1883\"", key)
		} else if _, port, err := net.SplitHostPort(ln.Address); err != nil {
			bad("%s.address: %q is not host:port: %v", key, ln.Address, err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			bad("%s.address: port %q must be a number from 0 to 65535", key, port)
		}
		if names[ln.Name] {
			bad("%s.name: %q is used by another listener; names must be unique", key, ln.Name)
		}
		names[ln.Name] = true
		if addrs[ln.Address] && !strings.HasSuffix(ln.Address, ":0") {
			bad("%s.address: %q is used by another listener", key, ln.Address)
		}
		addrs[ln.Address] = true
		switch ln.Protocol {
		case "mqtt", "websocket":
		default:
			bad("%s.protocol: %q must be \"mqtt\" or \"websocket\"", key, ln.Protocol)
		}
		if ln.Protocol == "websocket" && !strings.HasPrefix(ln.Path, "/") {
			bad("%s.path: %q must start with /", key, ln.Path)
		}
		if len(ln.TrustedProxies) > 0 && !ln.ProxyProtocol {
			bad("%s.trustedProxies: needs proxyProtocol: true", key)
		}
		for j, tp := range ln.TrustedProxies {
			if _, _, err := net.ParseCIDR(tp); err != nil && net.ParseIP(tp) == nil {
				bad("%s.trustedProxies[%d]: %q is neither an IP address nor a CIDR range such as 10.0.0.0/8", key, j, tp)
			}
		}
		if t := ln.TLS; t != nil {
			if t.CertFile == "" || t.KeyFile == "" {
				bad("%s.tls: certFile and keyFile are both required", key)
			}
			switch t.ClientAuth {
			case "none", "request", "require":
			default:
				bad("%s.tls.clientAuth: %q must be none, request or require", key, t.ClientAuth)
			}
			if t.ClientAuth != "none" && t.CAFile == "" {
				bad("%s.tls.caFile: required when clientAuth is %s", key, t.ClientAuth)
			}
			if t.UseCNAsUsername && t.ClientAuth != "require" {
				bad("%s.tls.useCNAsUsername: needs clientAuth: require", key)
			}
		}
	}
	l := c.Limits
	if l.MaxPacketSize < 0 || l.MaxPacketSize > 268435455 {
		bad("limits.maxPacketSize: %d must be between 1 and 268435455", l.MaxPacketSize)
	}
	if l.ReceiveMaximum < 0 || l.ReceiveMaximum > 65535 {
		bad("limits.receiveMaximum: %d must be between 1 and 65535", l.ReceiveMaximum)
	}
	if l.MaxInflight < 0 || l.MaxInflight > 65535 {
		bad("limits.maxInflight: %d must be between 1 and 65535", l.MaxInflight)
	}
	if l.TopicAliasMaximum != nil && (*l.TopicAliasMaximum < 0 || *l.TopicAliasMaximum > 65535) {
		bad("limits.topicAliasMaximum: %d must be between 0 and 65535", *l.TopicAliasMaximum)
	}
	if l.MaxTopicLength < 0 || l.MaxTopicLength > 65535 {
		bad("limits.maxTopicLength: %d must be between 1 and 65535", l.MaxTopicLength)
	}
	for name, v := range map[string]int{
		"maxConnections": l.MaxConnections, "maxQueuedMessages": l.MaxQueuedMessages,
		"maxTopicLevels": l.MaxTopicLevels, "maxRetainedMessages": l.MaxRetainedMessages,
	} {
		if v < 0 {
			bad("limits.%s: %d must not be negative", name, v)
		}
	}
	if l.MaxQueuedBytes < 0 {
		bad("limits.maxQueuedBytes: %d must not be negative", l.MaxQueuedBytes)
	}
	if c.SysInterval != nil && (*c.SysInterval < 0 || *c.SysInterval > 86400) {
		bad("sysInterval: %d must be between 0 (off) and 86400 seconds", *c.SysInterval)
	}
	if c.Metrics.Address != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Address); err != nil {
			bad("metrics.address: %q is not host:port: %v", c.Metrics.Address, err)
		}
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		bad("log.level: %q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		bad("log.format: %q must be text or json", c.Log.Format)
	}
	return errors.Join(errs...)
}

// Parse decodes a YAML config, rejecting unknown keys, applies defaults and
// validates. name is used in error messages ("broker.yaml: line 3: ...").
func Parse(name string, data []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// Load reads and parses the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Marshal renders c as YAML, the inverse of Parse. The operator uses it so
// that the file it writes is exactly what the broker reads.
func Marshal(c *Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
