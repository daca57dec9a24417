package builder

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

// The CRD defaults every field below, but objects created before a default was added, or
// built in tests and tools, may leave them nil; the builder falls back to the same values
// so that it never depends on API-server defaulting.
const (
	// DefaultCertDuration is how long an issued certificate is valid without spec.tls.duration.
	DefaultCertDuration = 90 * 24 * time.Hour
	// DefaultRenewBefore is how long before expiry a certificate is renewed without
	// spec.tls.renewBefore.
	DefaultRenewBefore = 30 * 24 * time.Hour
	// CAValidity is the lifetime of the operator CA.
	CAValidity = 10 * 365 * 24 * time.Hour
	// CARenewBefore is how long before its expiry the operator CA's certificate is renewed
	// (RenewCA): a year in which clients that pinned the old certificate still work and can
	// be given the new one.
	CARenewBefore = 365 * 24 * time.Hour
)

// Replicas is spec.replicas, or 1.
func Replicas(b *v1.MQTTBroker) int32 {
	if b.Spec.Replicas == nil {
		return 1
	}
	return *b.Spec.Replicas
}

// TLSEnabled is spec.tls.enabled, or true.
func TLSEnabled(b *v1.MQTTBroker) bool {
	return b.Spec.TLS.Enabled == nil || *b.Spec.TLS.Enabled
}

// Listeners is spec.listeners, or the default: mqtt on 1883 and, with TLS enabled, mqtts on
// 8883 (a default TLS listener without TLS would be refused, so it is left out then). Empty
// ws/wss paths are filled with v1.DefaultWebSocketPath. The result is a copy.
func Listeners(b *v1.MQTTBroker) []v1.ListenerSpec {
	if len(b.Spec.Listeners) == 0 {
		ls := []v1.ListenerSpec{{Name: "mqtt", Protocol: v1.ProtocolMQTT, Port: 1883}}
		if TLSEnabled(b) {
			ls = append(ls, v1.ListenerSpec{Name: "mqtts", Protocol: v1.ProtocolMQTTS, Port: 8883})
		}
		return ls
	}
	ls := make([]v1.ListenerSpec, len(b.Spec.Listeners))
	for i, l := range b.Spec.Listeners {
		if l.Protocol.UsesWebSocket() && l.Path == "" {
			l.Path = v1.DefaultWebSocketPath
		}
		ls[i] = l
	}
	return ls
}

// ClientAuth is spec.tls.clientAuth, or none.
func ClientAuth(b *v1.MQTTBroker) v1.ClientAuth {
	if b.Spec.TLS.ClientAuth == "" {
		return v1.ClientAuthNone
	}
	return b.Spec.TLS.ClientAuth
}

// CertDuration is spec.tls.duration, or DefaultCertDuration.
func CertDuration(b *v1.MQTTBroker) time.Duration {
	if d := b.Spec.TLS.Duration; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return DefaultCertDuration
}

// RenewBefore is spec.tls.renewBefore, or DefaultRenewBefore.
func RenewBefore(b *v1.MQTTBroker) time.Duration {
	if d := b.Spec.TLS.RenewBefore; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return DefaultRenewBefore
}

// DefaultAction is spec.authorization.defaultAction, or deny.
func DefaultAction(b *v1.MQTTBroker) v1.ACLDefaultAction {
	if b.Spec.Authorization.DefaultAction == "" {
		return v1.ACLDefaultDeny
	}
	return b.Spec.Authorization.DefaultAction
}

func persistenceEnabled(b *v1.MQTTBroker) bool {
	return b.Spec.Persistence.Enabled != nil && *b.Spec.Persistence.Enabled
}

func allowAnonymous(b *v1.MQTTBroker) bool {
	return b.Spec.Authentication.AllowAnonymous != nil && *b.Spec.Authentication.AllowAnonymous
}

// Validate reports what the CRD schema lets through but the rendered pods could not run
// with, one problem per line, each naming the field and what to do. ConfigMap calls it, so
// nothing is rendered for a broker that fails it.
func Validate(b *v1.MQTTBroker) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	names := map[string]int{}
	ports := map[int32]int{}
	for i, l := range Listeners(b) {
		key := fmt.Sprintf("spec.listeners[%d]", i)
		if j, dup := names[l.Name]; dup {
			bad("%s.name: %q is also the name of spec.listeners[%d]; give each listener its own name", key, l.Name, j)
		}
		names[l.Name] = i
		if j, dup := ports[l.Port]; dup {
			bad("%s.port: %d is also the port of spec.listeners[%d]; give each listener its own port", key, l.Port, j)
		}
		ports[l.Port] = i
		// The name names container and Service ports, which must be an IANA_SVC_NAME (e.g.
		// at least one letter); the metrics port is named and numbered by the operator on
		// the same pods and peers Service.
		if msgs := validation.IsValidPortName(l.Name); len(msgs) > 0 {
			bad("%s.name: %q cannot name a Kubernetes port (%s), e.g. use mqtt-%s", key, l.Name, strings.Join(msgs, "; "), l.Name)
		}
		if l.Name == MetricsPortName {
			bad("%s.name: %q is reserved for the metrics port; choose another name", key, l.Name)
		}
		if l.Port == MetricsPort {
			bad("%s.port: %d is where the broker serves metrics and health probes; choose another port", key, l.Port)
		}
		if l.Port < 1 || l.Port > 65535 {
			bad("%s.port: %d must be between 1 and 65535", key, l.Port)
		}
		switch l.Protocol {
		case v1.ProtocolMQTT, v1.ProtocolWS, v1.ProtocolMQTTS, v1.ProtocolWSS:
		default:
			bad("%s.protocol: %q must be mqtt, mqtts, ws or wss", key, l.Protocol)
		}
		if l.Protocol.UsesTLS() && !TLSEnabled(b) {
			bad("%s.protocol: %s needs TLS: set spec.tls.enabled to true, or use %s", key, l.Protocol,
				strings.TrimSuffix(string(l.Protocol), "s"))
		}
	}
	if r := Replicas(b); r < 0 {
		bad("spec.replicas: %d must be 0 or more", r)
	}
	switch ClientAuth(b) {
	case v1.ClientAuthNone, v1.ClientAuthRequest, v1.ClientAuthRequire:
	default:
		bad("spec.tls.clientAuth: %q must be none, request or require", b.Spec.TLS.ClientAuth)
	}
	if RenewBefore(b) >= CertDuration(b) {
		bad("spec.tls.renewBefore: %s must be shorter than spec.tls.duration (%s)", RenewBefore(b), CertDuration(b))
	}
	return errors.Join(errs...)
}
