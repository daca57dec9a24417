// Command fleetmq-broker runs the FleetMQ MQTT broker.
//
// Without arguments it behaves like Mosquitto 2 without a config file: it
// listens on 127.0.0.1:1883 only and admits anonymous local clients. With
// --config it reads the YAML file that the operator renders (documented in
// docs/broker-config.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fleetmq/fleetmq/broker"
	"github.com/fleetmq/fleetmq/broker/config"
)

// shutdownGrace bounds how long SIGTERM waits for clients to be told and
// connections to close.
const shutdownGrace = 10 * time.Second

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fleetmq-broker:", err)
		os.Exit(1)
	}
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func run(args []string, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "passwd":
			return runPasswd(args[1:], os.Stdin, stderr)
		case "validate":
			return runValidate(args[1:], os.Stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("fleetmq-broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configPath     = fs.String("config", "", "YAML config file (see docs/broker-config.md)")
		allowAnonymous = fs.Bool("allow-anonymous", false, "admit clients without a user name")
		logLevel       = fs.String("log-level", "", "debug, info, warn or error (overrides log.level)")
		logFormat      = fs.String("log-format", "", "text or json (overrides log.format)")
		showVersion    = fs.Bool("version", false, "print the version and exit")
		watch          = fs.Bool("watch", true, "apply changes to the config, password, ACL and TLS files as they happen (SIGHUP reloads either way)")
		listen         listFlag
	)
	fs.Var(&listen, "listen", "MQTT listener address host:port (repeatable; replaces the config's listeners)")
	var files fileFlags
	files.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fleetmq-broker [flags]\n"+
			"       fleetmq-broker passwd FILE USER\n"+
			"       fleetmq-broker validate --config FILE [--acl-file FILE] [--password-file FILE]\n\n"+
			"Without flags: listen on %s and allow anonymous local clients.\n\nFlags:\n", config.DefaultAddress)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *showVersion {
		fmt.Fprintln(os.Stdout, "fleetmq-broker", broker.Version)
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see --help", fs.Arg(0))
	}

	// applyFlags puts the flags over a config read from the file, at start
	// and at every reload, so that a flag keeps winning over the file.
	applyFlags := func(cfg *config.Config) {
		if len(listen) > 0 {
			if *configPath == "" {
				// Listening beyond the local default is a deliberate choice; like
				// Mosquitto 2, anonymous access then needs asking for.
				cfg.AllowAnonymous = false
			}
			cfg.Listeners = nil
			for _, addr := range listen {
				cfg.Listeners = append(cfg.Listeners, config.Listener{Address: addr})
			}
		}
		if *allowAnonymous {
			cfg.AllowAnonymous = true
		}
		if *logLevel != "" {
			cfg.Log.Level = *logLevel
		}
		if *logFormat != "" {
			cfg.Log.Format = *logFormat
		}
		files.apply(cfg)
	}
	cfg := config.Default()
	if *configPath != "" {
		var err error
		if cfg, err = config.Load(*configPath); err != nil {
			return err
		}
	}
	applyFlags(cfg)
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}

	level := new(slog.LevelVar)
	log := newLogger(cfg.Log, stderr, level)
	srv, err := broker.New(cfg, broker.Options{Logger: log})
	if err != nil {
		return err // a broken password or ACL file: file:line
	}
	err = srv.SetConfigSource(broker.ConfigSource{
		Path:     *configPath,
		Override: applyFlags,
		OnApply:  func(c *config.Config) { level.Set(logLevelOf(c.Log.Level)) },
	})
	if err != nil {
		return err
	}
	if !cfg.AllowAnonymous && cfg.PasswordFile == "" {
		log.Warn("Anonymous access is off and no password file is set: no client can connect; use --allow-anonymous or set passwordFile")
	}
	// Signals are caught before the listeners open: a client (or a
	// kubelet) that sees the port may signal at once, and an uncaught
	// SIGTERM or SIGHUP would kill the process without a clean shutdown.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := srv.Start(); err != nil {
		return err
	}
	log.Info("FleetMQ broker started", "version", broker.Version, "allowAnonymous", cfg.AllowAnonymous)

	// Mounted files are watched and applied live; SIGHUP re-reads them on
	// demand, as with Mosquitto.
	if *watch {
		if err := srv.Watch(ctx); err != nil {
			log.Warn("Files are not watched for changes; send SIGHUP to reload them", "error", err)
		}
	}
wait:
	for {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading files")
			_ = srv.Reload() // failures are logged, counted and shown on /readyz
		case <-ctx.Done():
			break wait
		}
	}
	log.Info("Shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	log.Info("Stopped")
	return nil
}

// newLogger builds the logger; level is set from c and can be changed
// later (a reloaded log.level).
func newLogger(c config.Log, w io.Writer, level *slog.LevelVar) *slog.Logger {
	level.Set(logLevelOf(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func logLevelOf(name string) slog.Level {
	switch name {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
