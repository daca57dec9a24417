package main

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/fleetmq/fleetmq/broker/config"
)

// defaultTLSListen is where the TLS flags open a listener when the config
// has no TLS listener: local only, like the plain default.
const defaultTLSListen = "127.0.0.1:8883"

// fileFlags are the flags that mirror config keys for quick use. They are
// applied over the config file at start and again at every reload, so a
// flag keeps winning over the file.
type fileFlags struct {
	aclFile       string
	passwordFile  string
	maxKeepAlive  *uint16
	tlsCert       string
	tlsKey        string
	tlsCA         string
	tlsClientAuth string
	tlsListen     string
}

func (f *fileFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.aclFile, "acl-file", "", "Mosquitto-format ACL file (overrides aclFile)")
	fs.StringVar(&f.passwordFile, "password-file", "", "Mosquitto-format password file (overrides passwordFile)")
	fs.Func("max-keepalive", "cap on the client Keep Alive in `seconds`; v5 clients get Server Keep Alive (overrides limits.maxKeepAlive)", func(v string) error {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return fmt.Errorf("%q is not a number of seconds from 0 to 65535", v)
		}
		k := uint16(n)
		f.maxKeepAlive = &k
		return nil
	})
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate of every TLS listener; without one in the config, adds one on --tls-listen")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key for --tls-cert")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "PEM CA bundle that client certificates are verified against (clientAuth request unless --tls-client-auth)")
	fs.StringVar(&f.tlsClientAuth, "tls-client-auth", "", "none, request or require: client certificates on the TLS listeners")
	fs.StringVar(&f.tlsListen, "tls-listen", defaultTLSListen, "address of the TLS listener that the TLS flags add when the config has none")
}

// tlsSet reports whether any TLS flag was given.
func (f *fileFlags) tlsSet() bool {
	return f.tlsCert != "" || f.tlsKey != "" || f.tlsCA != "" || f.tlsClientAuth != ""
}

// apply writes the flags into cfg. The TLS flags set the files of every
// TLS listener of cfg; when it has none, they add a listener named "mqtts"
// on --tls-listen.
func (f *fileFlags) apply(cfg *config.Config) {
	if f.aclFile != "" {
		cfg.ACLFile = f.aclFile
	}
	if f.passwordFile != "" {
		cfg.PasswordFile = f.passwordFile
	}
	if f.maxKeepAlive != nil {
		cfg.Limits.MaxKeepAlive = *f.maxKeepAlive
	}
	if !f.tlsSet() {
		return
	}
	found := false
	for i := range cfg.Listeners {
		if t := cfg.Listeners[i].TLS; t != nil {
			f.applyTLS(t)
			found = true
		}
	}
	if !found {
		t := &config.TLS{}
		f.applyTLS(t)
		cfg.Listeners = append(cfg.Listeners, config.Listener{Name: "mqtts", Address: f.tlsListen, TLS: t})
	}
}

func (f *fileFlags) applyTLS(t *config.TLS) {
	if f.tlsCert != "" {
		t.CertFile = f.tlsCert
	}
	if f.tlsKey != "" {
		t.KeyFile = f.tlsKey
	}
	if f.tlsCA != "" {
		t.CAFile = f.tlsCA
		if t.ClientAuth == "" || t.ClientAuth == "none" {
			// A CA given on the command line is meant to be used: verify
			// the certificates clients offer.
			t.ClientAuth = "request"
		}
	}
	if f.tlsClientAuth != "" {
		t.ClientAuth = f.tlsClientAuth
	}
}
