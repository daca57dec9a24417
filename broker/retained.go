package broker

import (
	"github.com/fleetmq/fleetmq/broker/topic"
)

// RetainedStore keeps the last retained message of each topic. The
// in-memory store is the default; a durable store on the pod's volume will
// implement the same interface.
type RetainedStore interface {
	// Set stores m as the retained message of m.Topic, replacing any.
	Set(m *Message)
	// Get returns the retained message of a topic.
	Get(topic string) (*Message, bool)
	// Delete removes the retained message of a topic; it reports whether
	// there was one.
	Delete(topic string) bool
	// Match calls fn for each retained message whose topic matches filter,
	// until fn returns false.
	Match(filter string, fn func(m *Message) bool)
	// Len returns how many retained messages are stored.
	Len() int
}

// NewMemoryRetained returns an in-memory RetainedStore.
func NewMemoryRetained() RetainedStore {
	return &memoryRetained{index: topic.NewIndex[*Message]()}
}

type memoryRetained struct {
	index *topic.Index[*Message]
}

func (r *memoryRetained) Set(m *Message)                { r.index.Set(m.Topic, m) }
func (r *memoryRetained) Get(t string) (*Message, bool) { return r.index.Get(t) }
func (r *memoryRetained) Delete(t string) bool          { return r.index.Delete(t) }
func (r *memoryRetained) Len() int                      { return r.index.Len() }
func (r *memoryRetained) Match(f string, fn func(*Message) bool) {
	r.index.Match(f, func(_ string, m *Message) bool { return fn(m) })
}

// storeRetained applies a PUBLISH with RETAIN set: an empty payload deletes
// the topic's retained message, anything else replaces it [MQTT-3.3.1-5,
// MQTT-3.3.1-6, MQTT-3.3.1-7].
func (srv *Server) storeRetained(m *Message) {
	if len(m.Payload) == 0 {
		if srv.retained.Delete(m.Topic) {
			srv.stats.RetainedMessages.Add(-1)
		}
		return
	}
	if max := srv.limits().MaxRetainedMessages; max > 0 && srv.retained.Len() >= max {
		if _, exists := srv.retained.Get(m.Topic); !exists {
			srv.stats.DroppedQueueFull.Add(1)
			srv.log.Warn("Retained message dropped: retained store full", "topic", m.Topic, "maxRetainedMessages", max)
			return
		}
	}
	_, existed := srv.retained.Get(m.Topic)
	srv.retained.Set(m)
	if !existed {
		srv.stats.RetainedMessages.Add(1)
	}
}

// sendRetained queues the retained messages matching a new subscription,
// with RETAIN set [MQTT-3.3.1-8]. Expired ones are removed instead.
func (srv *Server) sendRetained(s *session, filter string, opts topic.Options) {
	now := srv.now()
	var expired []string
	srv.retained.Match(filter, func(m *Message) bool {
		if m.expired(now) {
			expired = append(expired, m.Topic)
			return true
		}
		d := delivery{msg: m, qos: min(m.QoS, opts.QoS), retain: true}
		if opts.SubscriptionID != 0 {
			d.subIDs = []uint32{opts.SubscriptionID}
		}
		s.deliver(d, nil)
		return true
	})
	for _, t := range expired {
		if m, ok := srv.retained.Get(t); ok && m.expired(now) && srv.retained.Delete(t) {
			srv.stats.RetainedMessages.Add(-1)
		}
	}
}
