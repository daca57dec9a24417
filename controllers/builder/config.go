package builder

import (
	"fmt"
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/broker/config"
)

// configHeader opens the rendered broker.yaml so that someone reading the ConfigMap knows
// where it comes from and where to change it.
const configHeader = "# fleetmq-broker configuration, rendered by fleetmq-operator from the MQTTBroker spec.\n" +
	"# Edits here are overwritten: change the MQTTBroker instead. Reference: docs/broker-config.md\n"

// BrokerConfig is the broker configuration the pods of b run with. Listeners bind
// 0.0.0.0:<port>; TLS listeners read the Secret mounted at TLSDir; the password and ACL files
// are the mounted <name>-users and <name>-acl. Limits that the spec leaves unset are left
// out, so the broker applies its own defaults (documented on each spec field).
func BrokerConfig(b *v1.MQTTBroker) *config.Config {
	c := &config.Config{
		AllowAnonymous: allowAnonymous(b),
		PasswordFile:   path.Join(UsersDir, PasswdKey),
		ACLFile:        path.Join(ACLDir, ACLKey),
		Limits:         brokerLimits(&b.Spec.Limits),
		Metrics:        config.Metrics{Address: "0.0.0.0:" + strconv.Itoa(MetricsPort)},
		Log:            config.Log{Level: b.Spec.LogLevel},
	}
	for _, l := range Listeners(b) {
		bl := config.Listener{
			Name:           l.Name,
			Address:        "0.0.0.0:" + strconv.Itoa(int(l.Port)),
			Protocol:       "mqtt",
			ProxyProtocol:  l.ProxyProtocol,
			TrustedProxies: l.TrustedProxies,
		}
		if l.Protocol.UsesWebSocket() {
			bl.Protocol, bl.Path = "websocket", l.Path
		}
		if l.Protocol.UsesTLS() {
			bl.TLS = listenerTLS(b)
		}
		c.Listeners = append(c.Listeners, bl)
	}
	return c
}

// listenerTLS is the TLS block shared by every TLS listener of b.
func listenerTLS(b *v1.MQTTBroker) *config.TLS {
	t := &config.TLS{
		CertFile:   path.Join(TLSDir, corev1.TLSCertKey),
		KeyFile:    path.Join(TLSDir, corev1.TLSPrivateKeyKey),
		ClientAuth: string(ClientAuth(b)),
	}
	if ClientAuth(b) != v1.ClientAuthNone {
		// Only asked for when clients are verified: a user's own Secret may lack ca.crt.
		t.CAFile = path.Join(TLSDir, "ca.crt")
	}
	// With require, a client certificate issued by the broker CA is the credential and its
	// common name the username (MQTTUsers with authentication.tls get CN = username), as the
	// spec promises: "every client needs an MQTTUser (or a client certificate when
	// tls.clientAuth is require)". The broker accepts this only with require.
	t.UseCNAsUsername = ClientAuth(b) == v1.ClientAuthRequire
	return t
}

// brokerLimits copies the limits the spec sets; nil pointers stay zero (omitted), which the
// broker reads as its default. topicAliasMaximum is a pointer in both, since 0 is a
// meaningful value there (aliases off).
func brokerLimits(l *v1.LimitsSpec) config.Limits {
	i := func(p *int32) int {
		if p == nil {
			return 0
		}
		return int(*p)
	}
	var out config.Limits
	out.MaxConnections = i(l.MaxConnections)
	out.MaxPacketSize = i(l.MaxPacketSize)
	out.ReceiveMaximum = i(l.ReceiveMaximum)
	out.MaxInflight = i(l.MaxInflight)
	out.MaxQueuedMessages = i(l.MaxQueuedMessages)
	if l.MaxQueuedBytes != nil {
		out.MaxQueuedBytes = *l.MaxQueuedBytes
	}
	if l.MaxSessionExpiry != nil {
		out.MaxSessionExpiry = uint32(min(max(*l.MaxSessionExpiry, 0), 1<<32-1))
	}
	if l.MaxKeepAlive != nil {
		out.MaxKeepAlive = uint16(min(max(*l.MaxKeepAlive, 0), 65535))
	}
	if l.TopicAliasMaximum != nil {
		out.TopicAliasMaximum = new(int(*l.TopicAliasMaximum))
	}
	out.MaxTopicLength = i(l.MaxTopicLength)
	out.MaxTopicLevels = i(l.MaxTopicLevels)
	out.MaxRetainedMessages = i(l.MaxRetainedMessages)
	return out
}

// RenderConfig renders broker.yaml for b and checks it with the broker's own parser, so the
// operator never writes a file that the pods would refuse.
func RenderConfig(b *v1.MQTTBroker) ([]byte, error) {
	if err := Validate(b); err != nil {
		return nil, fmt.Errorf("MQTTBroker %s/%s: %w", b.Namespace, b.Name, err)
	}
	body, err := config.Marshal(BrokerConfig(b))
	if err != nil {
		return nil, fmt.Errorf("render broker.yaml: %w", err)
	}
	data := append([]byte(configHeader), body...)
	if _, err := config.Parse(ConfigKey, data); err != nil {
		return nil, fmt.Errorf("rendered broker.yaml is refused by the broker: %w", err)
	}
	return data, nil
}

// ConfigMap is the <name>-config ConfigMap holding broker.yaml. The broker watches the file
// and applies limit, authentication and log changes live; listener changes also change
// RestartHash, which rolls the pods.
func ConfigMap(b *v1.MQTTBroker) (*corev1.ConfigMap, error) {
	data, err := RenderConfig(b)
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(b, ConfigName(b)),
		Data:       map[string]string{ConfigKey: string(data)},
	}, nil
}

// objectMeta names an object of b in b's namespace with Labels(b).
func objectMeta(b *v1.MQTTBroker, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: b.Namespace, Labels: Labels(b)}
}
