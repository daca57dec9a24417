package v1alpha1

// ACLAccess is what an ACL rule grants on a topic filter. The words are those of the broker's
// ACL file, so a rule reads the same in a CR and in the rendered <name>-acl ConfigMap.
// +kubebuilder:validation:Enum=read;write;readwrite;deny
type ACLAccess string

// ACL access words.
const (
	// ACLRead lets a client subscribe to (and receive from) matching topics.
	ACLRead ACLAccess = "read"
	// ACLWrite lets a client publish to matching topics.
	ACLWrite ACLAccess = "write"
	// ACLReadWrite grants both read and write.
	ACLReadWrite ACLAccess = "readwrite"
	// ACLDeny refuses both, overriding any read or write rule that also matches.
	ACLDeny ACLAccess = "deny"
)

// ACLRule grants or denies access to the topics that match one MQTT topic filter.
type ACLRule struct {
	// topic is an MQTT topic filter: levels separated by '/', '+' matching exactly one level
	// and '#' matching the rest, e.g. "sensors/+/temperature" or "devices/42/#". In
	// spec.authorization.rules of an MQTTBroker, "%c" is replaced by the client identifier
	// and "%u" by the username when a client is checked; in an MQTTUser the filter is used as
	// written.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^[^\x00-\x1F\x7F]+$`
	// +kubebuilder:validation:XValidation:rule="!self.contains('#') || self == '#' || (self.endsWith('/#') && self.indexOf('#') == size(self) - 1)",message="'#' must be the whole last level of a topic filter, e.g. sensors/# (MQTT-4.7.1-2)"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([+]|[^+/]*)(/([+]|[^+/]*))*$')",message="'+' must fill a whole topic level, e.g. sensors/+/temperature, not sensors/a+ (MQTT-4.7.1-3)"
	Topic string `json:"topic"`

	// access is what the rule grants on matching topics: read (subscribe), write (publish),
	// readwrite, or deny (refuse both, even if another rule grants them).
	// +required
	Access ACLAccess `json:"access"`
}
