package broker

// Prometheus metrics and the /healthz and /readyz probes, served on
// metrics.address. The collector reads the broker's atomic counters at
// scrape time, so the data path pays nothing for being observed.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const metricsNamespace = "fleetmq_broker"

func metricDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metricsNamespace+"_"+name, help, labels, nil)
}

// counterMetric is one unlabelled metric read from a stats snapshot.
type counterMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*StatsSnapshot) int64
}

var plainMetrics = []counterMetric{
	{metricDesc("connections", "Network connections open now."), prometheus.GaugeValue,
		func(s *StatsSnapshot) int64 { return s.ConnectionsCurrent }},
	{metricDesc("connections_accepted_total", "Network connections accepted."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.ConnectionsAccepted }},
	{metricDesc("clients_connected", "Clients past CONNACK now."), prometheus.GaugeValue,
		func(s *StatsSnapshot) int64 { return s.ClientsConnected }},
	{metricDesc("connects_refused_total", "CONNECTs answered with a failure code."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.ConnectsRefused }},
	{metricDesc("auth_failures_total", "CONNECTs refused for their credentials, or for taking over another user's session."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.AuthFailures }},
	{metricDesc("connections_revoked_total", "Connections closed because a reload removed their user or changed its password."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.ConnectionsRevoked }},
	{metricDesc("bytes_received_total", "Bytes read from clients."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.BytesReceived }},
	{metricDesc("bytes_sent_total", "Bytes written to clients."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.BytesSent }},
	{metricDesc("retained_messages", "Retained messages stored."), prometheus.GaugeValue,
		func(s *StatsSnapshot) int64 { return s.RetainedMessages }},
	{metricDesc("subscriptions", "Subscriptions held, shared ones included."), prometheus.GaugeValue,
		func(s *StatsSnapshot) int64 { return s.Subscriptions }},
	{metricDesc("subscriptions_revoked_total", "Subscriptions removed because a reloaded ACL no longer allows them."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.SubscriptionsRevoked }},
	{metricDesc("sessions", "Sessions held, online and offline."), prometheus.GaugeValue,
		func(s *StatsSnapshot) int64 { return s.Sessions }},
	{metricDesc("reloads_total", "Changed files (config, ACL, passwords, certificates) applied live."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.Reloads }},
	{metricDesc("reload_errors_total", "Changed files that failed to load; the previous version stays in force."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.ReloadErrors }},
	{metricDesc("malformed_packets_total", "Connections ended for a malformed packet."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.MalformedPackets }},
	{metricDesc("protocol_errors_total", "Connections ended for a protocol violation."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.ProtocolErrors }},
	{metricDesc("keepalive_timeouts_total", "Connections ended for silence beyond 1.5 times the keep alive."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.KeepAliveTimeouts }},
	{metricDesc("panics_total", "Recovered panics in connection handling (each a bug)."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.Panics }},
	{metricDesc("proxy_header_errors_total", "Connections to a proxyProtocol listener closed for a missing or invalid PROXY protocol header."), prometheus.CounterValue,
		func(s *StatsSnapshot) int64 { return s.ProxyHeaderErrors }},
}

var (
	descInfo = metricDesc("info", "Broker version and the revisions of the ACL and password file in force (always 1).",
		"version", "acl_revision", "users_revision")
	descStartTime         = metricDesc("start_time_seconds", "When the broker started, in Unix seconds.")
	descMessagesReceived  = metricDesc("messages_received_total", "PUBLISH packets received, by QoS.", "qos")
	descMessagesSent      = metricDesc("messages_sent_total", "PUBLISH packets sent, by QoS.", "qos")
	descMessagesDropped   = metricDesc("messages_dropped_total", "Messages not delivered, by reason.", "reason")
	descACLDenials        = metricDesc("acl_denials_total", "Actions refused by the ACL, by action (read: deliveries withheld).", "action")
	descInflight          = metricDesc("messages_inflight", "Outbound QoS 1 and 2 messages sent and not yet acknowledged.")
	descQueued            = metricDesc("messages_queued", "Messages queued for sessions, online or offline.")
	descListenerConns     = metricDesc("listener_connections", "Network connections open now, by listener.", "listener")
	descListenerAccepted  = metricDesc("listener_connections_accepted_total", "Network connections accepted, by listener.", "listener")
	descCertificateExpiry = metricDesc("tls_certificate_expiry_seconds", "When the serving certificate in force expires, in Unix seconds, by listener.", "listener")
)

// brokerCollector is a prometheus.Collector over one Server.
type brokerCollector struct{ srv *Server }

// Collector returns a Prometheus collector of the broker's metrics, all
// named fleetmq_broker_*. The handler on metrics.address registers it; an
// embedder can register it in its own registry.
func (srv *Server) Collector() prometheus.Collector { return brokerCollector{srv} }

// Describe implements prometheus.Collector.
func (brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range plainMetrics {
		ch <- m.desc
	}
	for _, d := range []*prometheus.Desc{descInfo, descStartTime, descMessagesReceived, descMessagesSent,
		descMessagesDropped, descACLDenials, descInflight, descQueued, descListenerConns,
		descListenerAccepted, descCertificateExpiry} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	srv := c.srv
	s := srv.stats.Snapshot()
	for _, m := range plainMetrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, float64(m.value(&s)))
	}
	var aclRev, usersRev string
	if acl := srv.files.acl.Load(); acl != nil {
		aclRev = acl.Revision()
	}
	if pf := srv.files.passwords.Load(); pf != nil {
		usersRev = pf.Revision()
	}
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, Version, aclRev, usersRev)
	ch <- prometheus.MustNewConstMetric(descStartTime, prometheus.GaugeValue, float64(srv.started.UnixNano())/1e9)
	for q := range 3 {
		qos := strconv.Itoa(q)
		ch <- prometheus.MustNewConstMetric(descMessagesReceived, prometheus.CounterValue, float64(s.MessagesReceived[q]), qos)
		ch <- prometheus.MustNewConstMetric(descMessagesSent, prometheus.CounterValue, float64(s.MessagesSent[q]), qos)
	}
	for reason, n := range map[string]int64{
		"queue_full": s.DroppedQueueFull, "too_large": s.DroppedTooLarge,
		"expired": s.DroppedExpired, "no_subscribers": s.DroppedNoRoute,
	} {
		ch <- prometheus.MustNewConstMetric(descMessagesDropped, prometheus.CounterValue, float64(n), reason)
	}
	for action, n := range map[string]int64{
		"publish": s.ACLDeniedPublish, "subscribe": s.ACLDeniedSubscribe, "read": s.ACLDeniedRead,
	} {
		ch <- prometheus.MustNewConstMetric(descACLDenials, prometheus.CounterValue, float64(n), action)
	}
	inflight, queued := srv.pendingMessages()
	ch <- prometheus.MustNewConstMetric(descInflight, prometheus.GaugeValue, float64(inflight))
	ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(queued))
	for name, l := range s.Listeners {
		ch <- prometheus.MustNewConstMetric(descListenerConns, prometheus.GaugeValue, float64(l.Current), name)
		ch <- prometheus.MustNewConstMetric(descListenerAccepted, prometheus.CounterValue, float64(l.Accepted), name)
	}
	srv.files.tls.Range(func(_, v any) bool {
		ep := v.(*tlsEndpoint)
		if st := ep.state.Load(); st != nil {
			ch <- prometheus.MustNewConstMetric(descCertificateExpiry, prometheus.GaugeValue, float64(st.notAfter.Unix()), ep.name)
		}
		return true
	})
}

// pendingMessages counts in-flight and queued messages over all sessions.
// It locks one session at a time, never the server while doing so, so a
// scrape does not hold up connects.
func (srv *Server) pendingMessages() (inflight, queued int64) {
	srv.mu.Lock()
	sessions := make([]*session, 0, len(srv.sessions))
	for _, s := range srv.sessions {
		sessions = append(sessions, s)
	}
	srv.mu.Unlock()
	for _, s := range sessions {
		s.mu.Lock()
		inflight += int64(len(s.inflight))
		queued += int64(s.queue.len())
		s.mu.Unlock()
	}
	return inflight, queued
}

// HTTPHandler serves /metrics (Prometheus, with Go runtime and process
// metrics), /healthz (200 while the process serves HTTP) and /readyz (200
// with Health as JSON once listeners are open; 503 before and during
// shutdown). Start serves it on metrics.address.
func (srv *Server) HTTPHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(srv.Collector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		h := srv.Health()
		w.Header().Set("Content-Type", "application/json")
		if !h.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(h)
	})
	return mux
}

// startHTTP serves HTTPHandler on addr until Shutdown.
func (srv *Server) startHTTP(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	hs := &http.Server{Handler: srv.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
	f := &srv.files
	f.httpMu.Lock()
	f.httpSrv, f.httpAddr = hs, ln.Addr()
	f.httpMu.Unlock()
	srv.log.Info("Serving metrics and health probes", "address", ln.Addr().String())
	f.bgWG.Add(1)
	go func() {
		defer f.bgWG.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			srv.log.Error("Metrics listener stopped", "error", err)
		}
	}()
	return nil
}

// MetricsAddr returns the address /metrics, /healthz and /readyz are
// served on, or nil when metrics.address is empty or Start has not run.
func (srv *Server) MetricsAddr() net.Addr {
	srv.files.httpMu.Lock()
	defer srv.files.httpMu.Unlock()
	return srv.files.httpAddr
}

// startBackground starts what a started server runs besides listeners: the
// metrics endpoint (when metricsAddress is set) and the $SYS publisher.
func (srv *Server) startBackground(metricsAddress string) error {
	if metricsAddress != "" {
		if err := srv.startHTTP(metricsAddress); err != nil {
			return err
		}
	}
	srv.files.sysOnce.Do(func() {
		srv.files.bgWG.Add(1)
		go srv.runSys()
	})
	return nil
}

// stopBackground stops the watcher, the $SYS publisher and the metrics
// endpoint. Shutdown calls it first.
func (srv *Server) stopBackground() {
	f := &srv.files
	f.stopOnce.Do(func() {
		close(f.stop)
		f.httpMu.Lock()
		hs := f.httpSrv
		f.httpMu.Unlock()
		if hs != nil {
			_ = hs.Close()
		}
	})
	f.bgWG.Wait()
}
