// Package builder renders every object the operator owns for an MQTTBroker: the broker's
// config, ACL and password files (exactly the files broker/config and broker/auth read),
// its certificates, Services, StatefulSet, PodDisruptionBudget, RBAC and ServiceMonitor.
//
// Every function is pure and deterministic: no API client, no clock (time is passed in), no
// randomness except key and serial generation. Rendering an unchanged broker twice gives
// byte-identical objects, so the reconciler makes no write on an idle resync. No builder sets
// owner references; the reconciler does.
package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

// Keys, mount directories, ports and annotations shared by the rendered objects and the
// broker pods that read them.
const (
	// ConfigKey is the key of the broker.yaml file in the <name>-config ConfigMap.
	ConfigKey = "broker.yaml"
	// ACLKey is the key of the ACL file in the <name>-acl ConfigMap.
	ACLKey = "acl"
	// PasswdKey is the key of the password file in the <name>-users Secret.
	PasswdKey = "passwd"

	// ConfigDir is where the <name>-config ConfigMap is mounted in broker pods.
	ConfigDir = "/etc/fleetmq/config"
	// ACLDir is where the <name>-acl ConfigMap is mounted.
	ACLDir = "/etc/fleetmq/acl"
	// UsersDir is where the <name>-users Secret is mounted.
	UsersDir = "/etc/fleetmq/users"
	// TLSDir is where the serving certificate Secret is mounted.
	TLSDir = "/etc/fleetmq/tls"
	// DataDir is where each pod's store lives: its PersistentVolumeClaim, or an emptyDir
	// when persistence is off.
	DataDir = "/var/lib/fleetmq"

	// MetricsPort serves /metrics, /healthz and /readyz on 0.0.0.0 in every broker pod.
	MetricsPort = 9090
	// MetricsPortName names MetricsPort on the pods and the peers Service; the
	// ServiceMonitor scrapes it by this name.
	MetricsPortName = "metrics"

	// RevisionAnnotation holds Revision of the content of the ACL ConfigMap and the users
	// Secret: the same short hash the broker reports for the file it loaded, so status can
	// tell when every pod runs the current ACL.
	RevisionAnnotation = "mqtt.fleetmq.io/revision"
	// RestartHashAnnotation on the pod template holds RestartHash. Only settings the broker
	// cannot apply live feed it, so ACL, user, certificate and limit changes never roll pods.
	RestartHashAnnotation = "mqtt.fleetmq.io/restart-hash"
	// ServiceRoleLabel tells the client Service ("client") from the headless peers Service
	// ("peers"), which carry the same app.kubernetes.io labels; the ServiceMonitor selects
	// the peers Service by it.
	ServiceRoleLabel = "mqtt.fleetmq.io/service"

	// BrokerBinary is the broker's executable in the fleetmq image (which also holds the
	// operator, so the command must be explicit).
	BrokerBinary = "fleetmq-broker"
	// BrokerContainerName is the name of the broker container in each pod.
	BrokerContainerName = "broker"
)

// ConfigName is the ConfigMap holding broker.yaml.
func ConfigName(b *v1.MQTTBroker) string { return b.Name + "-config" }

// ACLName is the ConfigMap holding the rendered ACL file.
func ACLName(b *v1.MQTTBroker) string { return b.Name + "-acl" }

// UsersName is the Secret holding the hashed password file.
func UsersName(b *v1.MQTTBroker) string { return b.Name + "-users" }

// CAName is the Secret holding the operator CA of this broker (tls.crt, tls.key, ca.crt).
func CAName(b *v1.MQTTBroker) string { return b.Name + "-ca" }

// TLSName is the kubernetes.io/tls Secret holding the serving certificate issued by the
// operator CA or by cert-manager.
func TLSName(b *v1.MQTTBroker) string { return b.Name + "-tls" }

// TLSSecretName is the Secret the broker pods mount at TLSDir: spec.tls.secretName when the
// user brings their own certificate, else TLSName. It is "" when TLS is disabled.
func TLSSecretName(b *v1.MQTTBroker) string {
	switch {
	case !TLSEnabled(b):
		return ""
	case b.Spec.TLS.SecretName != "":
		return b.Spec.TLS.SecretName
	}
	return TLSName(b)
}

// PeersName is the headless Service that gives each pod a DNS name and lets peers find
// each other.
func PeersName(b *v1.MQTTBroker) string { return b.Name + "-peers" }

// ServiceAccountName names the broker pods' ServiceAccount, and its Role and RoleBinding.
func ServiceAccountName(b *v1.MQTTBroker) string { return b.Name + "-broker" }

// SelectorLabels select the broker pods of b. They never change after creation, since a
// StatefulSet's selector is immutable.
func SelectorLabels(b *v1.MQTTBroker) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     "fleetmq-broker",
		"app.kubernetes.io/instance": b.Name,
	}
}

// Labels go on every object rendered for b: the selector labels plus managed-by and
// component.
func Labels(b *v1.MQTTBroker) map[string]string {
	l := SelectorLabels(b)
	l["app.kubernetes.io/managed-by"] = "fleetmq-operator"
	l["app.kubernetes.io/component"] = "broker"
	return l
}

// Revision identifies file content: the first 16 hex characters of its SHA-256, the same
// revision broker/auth reports for a loaded ACL or password file.
func Revision(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// mergeMaps returns extra overlaid by own (labels or annotations): the operator's keys
// win, because the selector and the restart hash must not be overridden by a user's template.
func mergeMaps(extra, own map[string]string) map[string]string {
	out := make(map[string]string, len(extra)+len(own))
	maps.Copy(out, extra)
	maps.Copy(out, own)
	return out
}
