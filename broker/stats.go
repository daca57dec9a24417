package broker

import (
	"sync"
	"sync/atomic"
)

// Stats are the broker's running counters. They are plain atomics so the hot
// path pays one uncontended add per event; metrics exporters and $SYS topics
// read them with Snapshot.
type Stats struct {
	ConnectionsAccepted atomic.Int64 // network connections accepted
	ConnectionsCurrent  atomic.Int64 // network connections open now
	ClientsConnected    atomic.Int64 // clients past CONNACK now
	ConnectsRefused     atomic.Int64 // CONNECTs answered with a failure code
	MalformedPackets    atomic.Int64 // connections ended for a malformed or invalid packet
	ProtocolErrors      atomic.Int64 // connections ended for a protocol violation
	KeepAliveTimeouts   atomic.Int64 // connections ended for silence beyond 1.5x keep alive
	Panics              atomic.Int64 // recovered panics in connection handling
	ProxyHeaderErrors   atomic.Int64 // connections closed for a missing or invalid PROXY protocol header

	MessagesReceived [3]atomic.Int64 // PUBLISH received, by QoS
	MessagesSent     [3]atomic.Int64 // PUBLISH sent, by QoS
	BytesReceived    atomic.Int64
	BytesSent        atomic.Int64

	DroppedQueueFull atomic.Int64 // deliveries dropped: session queue at its limit
	DroppedTooLarge  atomic.Int64 // deliveries dropped: larger than the client's Maximum Packet Size
	DroppedExpired   atomic.Int64 // deliveries dropped: Message Expiry Interval elapsed
	DroppedNoRoute   atomic.Int64 // messages that matched no subscriber

	RetainedMessages atomic.Int64
	Subscriptions    atomic.Int64
	Sessions         atomic.Int64 // sessions held, online and offline

	AuthFailures         atomic.Int64 // CONNECTs refused for their credentials, or for another user's client id
	ACLDeniedPublish     atomic.Int64 // PUBLISH and will messages refused by the ACL
	ACLDeniedSubscribe   atomic.Int64 // subscriptions refused by the ACL
	ACLDeniedRead        atomic.Int64 // deliveries withheld by the ACL, queued ones dropped at an ACL reload included
	SubscriptionsRevoked atomic.Int64 // subscriptions removed because a reloaded ACL no longer allows them
	ConnectionsRevoked   atomic.Int64 // connections closed because their user was removed or its password changed
	Reloads              atomic.Int64 // changed files (config, ACL, passwords, certificates) applied live
	ReloadErrors         atomic.Int64 // changed files that failed to load; the previous content stays in force

	listeners sync.Map // listener name -> *ListenerStats
}

// ListenerStats are the connection counters of one listener.
type ListenerStats struct {
	Accepted atomic.Int64 // network connections accepted
	Current  atomic.Int64 // network connections open now
}

// Listener returns the counters of the named listener, creating them.
func (s *Stats) Listener(name string) *ListenerStats {
	if v, ok := s.listeners.Load(name); ok {
		return v.(*ListenerStats)
	}
	v, _ := s.listeners.LoadOrStore(name, new(ListenerStats))
	return v.(*ListenerStats)
}

// ListenerSnapshot is a copy of one listener's counters.
type ListenerSnapshot struct {
	Accepted, Current int64
}

// StatsSnapshot is a copy of Stats at one moment.
type StatsSnapshot struct {
	ConnectionsAccepted, ConnectionsCurrent, ClientsConnected, ConnectsRefused int64
	MalformedPackets, ProtocolErrors, KeepAliveTimeouts, Panics                int64
	ProxyHeaderErrors                                                          int64
	MessagesReceived, MessagesSent                                             [3]int64
	BytesReceived, BytesSent                                                   int64
	DroppedQueueFull, DroppedTooLarge, DroppedExpired, DroppedNoRoute          int64
	RetainedMessages, Subscriptions, Sessions                                  int64
	AuthFailures, ACLDeniedPublish, ACLDeniedSubscribe, ACLDeniedRead          int64
	SubscriptionsRevoked, ConnectionsRevoked, Reloads, ReloadErrors            int64
	Listeners                                                                  map[string]ListenerSnapshot
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	var out StatsSnapshot
	out.ConnectionsAccepted = s.ConnectionsAccepted.Load()
	out.ConnectionsCurrent = s.ConnectionsCurrent.Load()
	out.ClientsConnected = s.ClientsConnected.Load()
	out.ConnectsRefused = s.ConnectsRefused.Load()
	out.MalformedPackets = s.MalformedPackets.Load()
	out.ProtocolErrors = s.ProtocolErrors.Load()
	out.KeepAliveTimeouts = s.KeepAliveTimeouts.Load()
	out.Panics = s.Panics.Load()
	out.ProxyHeaderErrors = s.ProxyHeaderErrors.Load()
	for q := range 3 {
		out.MessagesReceived[q] = s.MessagesReceived[q].Load()
		out.MessagesSent[q] = s.MessagesSent[q].Load()
	}
	out.BytesReceived = s.BytesReceived.Load()
	out.BytesSent = s.BytesSent.Load()
	out.DroppedQueueFull = s.DroppedQueueFull.Load()
	out.DroppedTooLarge = s.DroppedTooLarge.Load()
	out.DroppedExpired = s.DroppedExpired.Load()
	out.DroppedNoRoute = s.DroppedNoRoute.Load()
	out.RetainedMessages = s.RetainedMessages.Load()
	out.Subscriptions = s.Subscriptions.Load()
	out.Sessions = s.Sessions.Load()
	out.AuthFailures = s.AuthFailures.Load()
	out.ACLDeniedPublish = s.ACLDeniedPublish.Load()
	out.ACLDeniedSubscribe = s.ACLDeniedSubscribe.Load()
	out.ACLDeniedRead = s.ACLDeniedRead.Load()
	out.SubscriptionsRevoked = s.SubscriptionsRevoked.Load()
	out.ConnectionsRevoked = s.ConnectionsRevoked.Load()
	out.Reloads = s.Reloads.Load()
	out.ReloadErrors = s.ReloadErrors.Load()
	out.Listeners = make(map[string]ListenerSnapshot)
	s.listeners.Range(func(k, v any) bool {
		ls := v.(*ListenerStats)
		out.Listeners[k.(string)] = ListenerSnapshot{Accepted: ls.Accepted.Load(), Current: ls.Current.Load()}
		return true
	})
	return out
}
