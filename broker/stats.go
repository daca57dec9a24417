package broker

import "sync/atomic"

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
}

// StatsSnapshot is a copy of Stats at one moment.
type StatsSnapshot struct {
	ConnectionsAccepted, ConnectionsCurrent, ClientsConnected, ConnectsRefused int64
	MalformedPackets, ProtocolErrors, KeepAliveTimeouts, Panics                int64
	MessagesReceived, MessagesSent                                             [3]int64
	BytesReceived, BytesSent                                                   int64
	DroppedQueueFull, DroppedTooLarge, DroppedExpired, DroppedNoRoute          int64
	RetainedMessages, Subscriptions, Sessions                                  int64
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
	return out
}
