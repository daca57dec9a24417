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
	fs := flag.NewFlagSet("fleetmq-broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configPath     = fs.String("config", "", "YAML config file (see docs/broker-config.md)")
		allowAnonymous = fs.Bool("allow-anonymous", false, "admit clients without a user name")
		logLevel       = fs.String("log-level", "", "debug, info, warn or error (overrides log.level)")
		logFormat      = fs.String("log-format", "", "text or json (overrides log.format)")
		showVersion    = fs.Bool("version", false, "print the version and exit")
		listen         listFlag
	)
	fs.Var(&listen, "listen", "MQTT listener address host:port (repeatable; replaces the config's listeners)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fleetmq-broker [flags]\n\nWithout flags: listen on %s and allow anonymous local clients.\n\nFlags:\n", config.DefaultAddress)
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

	cfg := config.Default()
	if *configPath != "" {
		var err error
		if cfg, err = config.Load(*configPath); err != nil {
			return err
		}
	}
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
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}

	log := newLogger(cfg.Log, stderr)
	srv, err := broker.New(cfg, broker.Options{Logger: log})
	if err != nil {
		return err
	}
	if !cfg.AllowAnonymous && cfg.PasswordFile == "" {
		log.Warn("Anonymous access is off and no password file is set: no client can connect; use --allow-anonymous or set passwordFile")
	}
	if err := srv.Start(); err != nil {
		return err
	}
	log.Info("FleetMQ broker started", "version", broker.Version, "allowAnonymous", cfg.AllowAnonymous)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	log.Info("Shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	log.Info("Stopped")
	return nil
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	switch c.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
