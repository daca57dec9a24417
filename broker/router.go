package broker

import (
	"sync"

	"github.com/fleetmq/fleetmq/broker/topic"
)

// publish routes m to every matching subscription and returns how many
// subscribers took it. It is the one routing step for every message, local
// or (later) from a peer: retained storage, trie match, then one delivery
// per subscriber and one per shared group. pw, if not nil, is the calling
// reader's pendingWrites: subscribers with nobody writing to them are left
// to that reader to write to (see writer.go).
func (srv *Server) publish(m *Message, pw *pendingWrites) int {
	if m.Retain {
		srv.storeRetained(m)
	}
	r := srv.subs.Match(m.Topic)
	n := 0
	if subs := r.Subs; len(subs) > 0 {
		if hasDuplicateKeys(subs) {
			n += srv.deliverMerged(m, subs, pw)
		} else {
			for i := range subs {
				if d, ok := deliveryFor(m, &subs[i]); ok && subs[i].Key.deliver(d, pw) {
					n++
				}
			}
		}
	}
	for _, g := range r.Groups {
		if srv.deliverShared(m, g, pw) {
			n++
		}
	}
	if n == 0 {
		srv.stats.DroppedNoRoute.Add(1)
	}
	return n
}

// deliveryFor builds the delivery of m for one subscription; ok is false
// when No Local excludes the publisher itself [MQTT-3.8.3-3].
func deliveryFor(m *Message, sub *topic.Sub[subscriber]) (delivery, bool) {
	if sub.NoLocal && m.ClientID != "" {
		if s, isSession := sub.Key.(*session); isSession && s.clientID == m.ClientID {
			return delivery{}, false
		}
	}
	d := delivery{
		msg: m,
		qos: min(m.QoS, sub.QoS),
		// [MQTT-3.3.1-9] / v5 Retain As Published: an established
		// subscription gets RETAIN 0 unless it asked to keep the flag.
		retain: m.Retain && sub.RetainAsPublished,
	}
	if sub.SubscriptionID != 0 {
		d.subIDs = []uint32{sub.SubscriptionID}
	}
	return d, true
}

// deliverShared hands m to one member of a shared group: the next in round
// robin that is online, or the next one at all when none is.
func (srv *Server) deliverShared(m *Message, g *topic.Group[subscriber], pw *pendingWrites) bool {
	members := g.Members
	if len(members) == 0 {
		return false
	}
	start := g.Next()
	for i := range members {
		sub := &members[(start+i)%len(members)]
		if !sub.Key.online() {
			continue
		}
		if d, ok := deliveryFor(m, sub); ok && sub.Key.deliver(d, pw) {
			return true
		}
	}
	// Nobody online could take it: queue it for the member whose turn it is.
	sub := &members[start%len(members)]
	d, ok := deliveryFor(m, sub)
	return ok && sub.Key.deliver(d, pw)
}

// hasDuplicateKeys reports whether one subscriber appears more than once,
// i.e. it has overlapping subscriptions. Small results are checked pairwise,
// large ones with a pooled set.
func hasDuplicateKeys(subs []topic.Sub[subscriber]) bool {
	if len(subs) < 2 {
		return false
	}
	if len(subs) <= 16 {
		for i := 1; i < len(subs); i++ {
			for j := range i {
				if subs[i].Key == subs[j].Key {
					return true
				}
			}
		}
		return false
	}
	seen := keySetPool.Get().(map[subscriber]int)
	defer func() { clear(seen); keySetPool.Put(seen) }()
	for i := range subs {
		if _, dup := seen[subs[i].Key]; dup {
			return true
		}
		seen[subs[i].Key] = i
	}
	return false
}

var keySetPool = sync.Pool{New: func() any { return make(map[subscriber]int) }}

// deliverMerged delivers once per subscriber when some have overlapping
// subscriptions: the highest QoS of the matches, every subscription
// identifier, and the retain flag if any match keeps it [MQTT-3.3.4-2,
// MQTT-3.3.4-3, MQTT-3.3.4-5].
func (srv *Server) deliverMerged(m *Message, subs []topic.Sub[subscriber], pw *pendingWrites) int {
	merged := make(map[subscriber]*delivery, len(subs))
	order := make([]subscriber, 0, len(subs))
	for i := range subs {
		d, ok := deliveryFor(m, &subs[i])
		if !ok {
			continue
		}
		prev := merged[subs[i].Key]
		if prev == nil {
			merged[subs[i].Key] = &d
			order = append(order, subs[i].Key)
			continue
		}
		prev.qos = max(prev.qos, d.qos)
		prev.retain = prev.retain || d.retain
		prev.subIDs = append(prev.subIDs, d.subIDs...)
	}
	n := 0
	for _, k := range order {
		if k.deliver(*merged[k], pw) {
			n++
		}
	}
	return n
}
