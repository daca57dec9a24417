package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fleetmq/fleetmq/broker/packet"
)

// IdleConfig describes an idle-connection run: open many connections that
// send nothing but keepalives, hold them, and measure what they cost the
// broker in memory.
type IdleConfig struct {
	// Addr is the broker's TCP address, host:port.
	Addr string
	// Version is the MQTT protocol level; default 3.1.1.
	Version packet.Version
	// Connections to open. Default 15,000.
	Connections int
	// KeepAlive in seconds, sent in CONNECT; the run pings every
	// connection at half this interval while it holds them. Default 60.
	KeepAlive uint16
	// Settle is how long to hold the connections before measuring, so that
	// the broker finishes its per-connection set-up. Default 5s.
	Settle time.Duration
	// Concurrency is the number of handshakes in progress at once. Default 32.
	Concurrency int
	// ConnectTimeout bounds each handshake. Default 10s.
	ConnectTimeout time.Duration
	// BrokerPID, when above 0, is the broker's process id on this machine:
	// the run reads its resident memory before and after.
	BrokerPID int
}

func (c IdleConfig) withDefaults() IdleConfig {
	if c.Version == 0 {
		c.Version = packet.V311
	}
	if c.Connections == 0 {
		c.Connections = 15000
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 60
	}
	if c.Settle == 0 {
		c.Settle = 5 * time.Second
	}
	if c.Concurrency == 0 {
		c.Concurrency = 32
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	return c
}

// IdleResult is the outcome of an idle-connection run.
type IdleResult struct {
	Connections      int     `json:"connections"`      // requested
	Held             int     `json:"held"`             // open and answering a ping after the measurement
	Failed           int     `json:"failed"`           // could not connect
	SourceAddresses  int     `json:"source_addresses"` // local 127.0.0.x addresses used
	ConnectSeconds   float64 `json:"connect_seconds"`
	RSSBeforeKiB     int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB      int64   `json:"rss_after_kib,omitempty"`
	KiBPerConnection float64 `json:"kib_per_connection,omitempty"`
	Error            string  `json:"error,omitempty"`
}

// Idle opens cfg.Connections idle connections, holds them for cfg.Settle,
// reads the broker's resident memory, checks that the connections are still
// served, and closes them. The per-connection figure is the RSS growth
// divided by the connections held.
func Idle(ctx context.Context, cfg IdleConfig) (IdleResult, error) {
	cfg = cfg.withDefaults()
	res := IdleResult{Connections: cfg.Connections}
	if err := checkFileLimit(cfg.Connections); err != nil {
		return res, err
	}
	if cfg.BrokerPID > 0 {
		kib, err := ReadRSS(cfg.BrokerPID)
		if err != nil {
			return res, err
		}
		res.RSSBeforeKiB = kib
	}
	sources := sourceAddresses(cfg.Addr, cfg.Connections)
	res.SourceAddresses = len(sources)

	// Connections are kept in index order so that closing them is
	// deterministic; a failed slot stays nil.
	conns := make([]*conn, cfg.Connections)
	var (
		next     atomic.Int64
		failed   atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	// Give up early when the broker refuses connections wholesale.
	maxFailures := int64(cfg.Connections/100 + 10)
	connectCtx, cancelConnect := context.WithCancel(ctx)
	defer cancelConnect()
	started := time.Now()
	for range min(cfg.Concurrency, cfg.Connections) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for connectCtx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= cfg.Connections {
					return
				}
				o := dialOptions{
					addr:      cfg.Addr,
					version:   cfg.Version,
					clientID:  fmt.Sprintf("fmqb-idle-%d-%d", started.UnixNano()%1e6, i),
					keepAlive: cfg.KeepAlive,
					timeout:   cfg.ConnectTimeout,
					small:     true,
				}
				if len(sources) > 0 {
					o.localIP = sources[i%len(sources)]
				}
				c, err := dial(connectCtx, o)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					if failed.Add(1) > maxFailures {
						cancelConnect()
					}
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	res.ConnectSeconds = time.Since(started).Seconds()
	res.Failed = int(failed.Load())
	defer closeIdle(conns)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if firstErr != nil && int64(res.Failed) > maxFailures {
		return res, fmt.Errorf("%d connections failed, giving up; first failure: %w", res.Failed, firstErr)
	}

	if err := holdIdle(ctx, conns, cfg.Settle, time.Duration(cfg.KeepAlive)*time.Second/2); err != nil {
		return res, err
	}
	if cfg.BrokerPID > 0 {
		kib, err := ReadRSS(cfg.BrokerPID)
		if err != nil {
			return res, err
		}
		res.RSSAfterKiB = kib
	}
	res.Held = countAlive(conns, cfg.Concurrency)
	if res.Held > 0 && cfg.BrokerPID > 0 {
		res.KiBPerConnection = float64(res.RSSAfterKiB-res.RSSBeforeKiB) / float64(res.Held)
	}
	if firstErr != nil {
		res.Error = fmt.Sprintf("%d connections failed; first failure: %v", res.Failed, firstErr)
	}
	return res, nil
}

// checkFileLimit fails early, with the remedy, when the process may not open
// n sockets.
func checkFileLimit(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // unknown: let the dials report it
	}
	// The Go runtime raises the soft limit to the hard limit at start-up.
	const reserve = 64
	if uint64(n)+reserve > lim.Cur {
		return fmt.Errorf("%d connections need %d open files, but the limit is %d; lower the count or raise `ulimit -n`", n, n+reserve, lim.Cur)
	}
	return nil
}

// holdIdle waits for settle while pinging every connection at the
// keepalive interval, as a real idle device would.
func holdIdle(ctx context.Context, conns []*conn, settle, pingEvery time.Duration) error {
	done := time.NewTimer(settle)
	defer done.Stop()
	var tick <-chan time.Time
	if pingEvery > 0 && pingEvery < settle {
		t := time.NewTicker(pingEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done.C:
			return nil
		case <-tick:
			for _, c := range conns {
				if c != nil {
					_ = c.writeAndFlush(&packet.Pingreq{}, time.Now().Add(time.Second))
				}
			}
		}
	}
}

// countAlive pings every connection and counts those that answer.
func countAlive(conns []*conn, workers int) int {
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range conns {
		if c != nil {
			if err := c.writeAndFlush(&packet.Pingreq{}, deadline); err != nil {
				_ = c.nc.Close()
			}
		}
	}
	var (
		next  atomic.Int64
		alive atomic.Int64
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				if c := conns[i]; c != nil && answersPing(c, deadline) {
					alive.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(alive.Load())
}

// answersPing reads until a PINGRESP arrives (earlier keepalive answers may
// come first) or the deadline passes.
func answersPing(c *conn, deadline time.Time) bool {
	for {
		fh, _, err := c.readPacket(deadline)
		if err != nil {
			return false
		}
		if fh.Type == packet.PINGRESP {
			return true
		}
	}
}

func closeIdle(conns []*conn) {
	for _, c := range conns {
		if c != nil {
			c.disconnect()
		}
	}
}

// errProbeTimeout is returned by Probe when the broker never answered.
var errProbeTimeout = errors.New("no MQTT broker answered")

// Probe connects to addr until a CONNECT is accepted or timeout passes. It
// is how scripts wait for a broker they started to be ready.
func Probe(ctx context.Context, addr string, version packet.Version, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		c, err := dial(ctx, dialOptions{
			addr:     addr,
			version:  version,
			clientID: fmt.Sprintf("fmqb-probe-%d", attempt),
			timeout:  time.Until(deadline),
			small:    true,
		})
		if err == nil {
			c.disconnect()
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if last == nil {
		last = errProbeTimeout
	}
	return fmt.Errorf("%w at %s within %s: %w", errProbeTimeout, addr, timeout, last)
}
