package broker

// $SYS/broker/... topics with the names Mosquitto uses, so dashboards and
// scripts written for Mosquitto work unchanged. They are published as
// retained messages every sysInterval seconds; a value that did not change
// since the last publication is not sent again (uptime always changes).
// Who may read them is up to the ACL: a filter starting with a wildcard
// never matches $SYS [MQTT-4.7.2-1], so "topic read #" does not expose
// them.

import (
	"strconv"
	"time"

	"github.com/fleetmq/fleetmq/broker/config"
)

// sysTopic is one $SYS topic and how to compute its value.
type sysTopic struct {
	name  string
	value func(srv *Server, s *StatsSnapshot) string
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

var sysTopics = []sysTopic{
	{"$SYS/broker/version", func(*Server, *StatsSnapshot) string { return "fleetmq version " + Version }},
	{"$SYS/broker/uptime", func(srv *Server, _ *StatsSnapshot) string {
		return itoa(int64(time.Since(srv.started)/time.Second)) + " seconds"
	}},
	{"$SYS/broker/clients/connected", func(_ *Server, s *StatsSnapshot) string { return itoa(s.ClientsConnected) }},
	{"$SYS/broker/clients/disconnected", func(_ *Server, s *StatsSnapshot) string {
		return itoa(max(0, s.Sessions-s.ClientsConnected))
	}},
	{"$SYS/broker/clients/total", func(_ *Server, s *StatsSnapshot) string { return itoa(s.Sessions) }},
	{"$SYS/broker/messages/received", func(_ *Server, s *StatsSnapshot) string { return itoa(sum3(s.MessagesReceived)) }},
	{"$SYS/broker/messages/sent", func(_ *Server, s *StatsSnapshot) string { return itoa(sum3(s.MessagesSent)) }},
	{"$SYS/broker/publish/messages/received", func(_ *Server, s *StatsSnapshot) string { return itoa(sum3(s.MessagesReceived)) }},
	{"$SYS/broker/publish/messages/sent", func(_ *Server, s *StatsSnapshot) string { return itoa(sum3(s.MessagesSent)) }},
	{"$SYS/broker/publish/messages/dropped", func(_ *Server, s *StatsSnapshot) string {
		return itoa(s.DroppedQueueFull + s.DroppedTooLarge + s.DroppedExpired)
	}},
	{"$SYS/broker/bytes/received", func(_ *Server, s *StatsSnapshot) string { return itoa(s.BytesReceived) }},
	{"$SYS/broker/bytes/sent", func(_ *Server, s *StatsSnapshot) string { return itoa(s.BytesSent) }},
	{"$SYS/broker/subscriptions/count", func(_ *Server, s *StatsSnapshot) string { return itoa(s.Subscriptions) }},
	{"$SYS/broker/retained messages/count", func(_ *Server, s *StatsSnapshot) string { return itoa(s.RetainedMessages) }},
}

func sum3(v [3]int64) int64 { return v[0] + v[1] + v[2] }

// runSys publishes the $SYS topics until the server stops. A reload wakes
// it, since sysInterval may have changed.
func (srv *Server) runSys() {
	defer srv.files.bgWG.Done()
	last := make(map[string]string, len(sysTopics))
	for {
		var tick <-chan time.Time
		var timer *time.Timer
		if sec := sysInterval(srv.cfg.Load()); sec > 0 {
			srv.publishSys(last)
			timer = time.NewTimer(time.Duration(sec) * time.Second)
			tick = timer.C
		}
		select {
		case <-srv.files.stop:
		case <-srv.files.sysWake:
		case <-tick:
		}
		if timer != nil {
			timer.Stop()
		}
		select {
		case <-srv.files.stop:
			return
		default:
		}
	}
}

// sysInterval is the config's sysInterval, defaulted for a config that
// was built without ApplyDefaults.
func sysInterval(cfg *config.Config) int {
	if cfg.SysInterval == nil {
		return config.DefaultSysInterval
	}
	return *cfg.SysInterval
}

// publishSys publishes every $SYS value that changed since the last call.
func (srv *Server) publishSys(last map[string]string) {
	s := srv.stats.Snapshot()
	for _, t := range sysTopics {
		v := t.value(srv, &s)
		if last[t.name] == v {
			continue
		}
		last[t.name] = v
		m := &Message{Topic: t.name, Payload: []byte(v), Retain: true}
		// Stored before matching, as publish does: a client subscribing
		// right now then finds the value either in the store (its
		// subscription's retained messages) or through the match. Matching
		// first let a subscription land in between and miss it.
		srv.storeRetained(m)
		if r := srv.subs.Match(t.name); len(r.Subs) == 0 && len(r.Groups) == 0 {
			// Nobody listens now: kept for later subscribers, and not
			// counted as a message that found no subscriber.
			continue
		}
		srv.publish(m, nil) // stores the same value again, which changes nothing
	}
}
