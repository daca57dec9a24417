package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MQTTUserSpec is the desired state of one broker user.
type MQTTUserSpec struct {
	// brokerRef names the MQTTBroker in this namespace that the user belongs to. It cannot
	// change: create a new MQTTUser to move a user to another broker.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="brokerRef cannot change: create a new MQTTUser for the other broker and delete this one"
	BrokerRef BrokerReference `json:"brokerRef"`

	// username is the name the client sends in CONNECT (or the common name of its client
	// certificate). Empty uses metadata.name. No ':' or whitespace, as the password file
	// and the ACL file separate fields with them.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[^:\x00-\x20\x7F]+$`
	Username string `json:"username,omitempty"`

	// authentication is how the user proves who it is: a password from a Secret you
	// manage (passwordSecretRef), a password the operator generates (generate, the
	// default), or a client certificate issued by the broker's CA (tls).
	// +optional
	// +kubebuilder:default={generate: {}}
	Authentication UserAuthentication `json:"authentication,omitzero"`

	// acls are the topics this user may read (subscribe), write (publish), both, or is
	// denied, on top of the broker's spec.authorization rules. ACL changes apply live,
	// without restarting the broker pods.
	// +optional
	// +listType=map
	// +listMapKey=topic
	// +kubebuilder:validation:MaxItems=256
	ACLs []ACLRule `json:"acls,omitempty"`
}

// BrokerReference names an MQTTBroker in the same namespace.
type BrokerReference struct {
	// name of the MQTTBroker.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// UserAuthentication holds at most one way for a user to authenticate. When none is set the
// operator generates a password, as with generate: {}.
// +kubebuilder:validation:XValidation:rule="[has(self.passwordSecretRef), has(self.generate), has(self.tls)].filter(x, x).size() <= 1",message="choose one of authentication.passwordSecretRef, authentication.generate or authentication.tls"
type UserAuthentication struct {
	// passwordSecretRef takes the password from a key of a Secret in this namespace that
	// you manage. The operator stores only its hash in the broker's password file, and
	// picks up changes to the Secret.
	// +optional
	PasswordSecretRef *SecretKeyReference `json:"passwordSecretRef,omitempty"`

	// generate has the operator create a random password and store it with the username in
	// a Secret (status.secretName, keys username and password) for clients to mount.
	// +optional
	Generate *GeneratedPassword `json:"generate,omitempty"`

	// tls has the operator issue a client certificate from the broker's CA, with the
	// username as common name, into a kubernetes.io/tls Secret (status.secretName, keys
	// tls.crt, tls.key and ca.crt). The broker's tls.clientAuth must be request or require.
	// +optional
	TLS *ClientCertificate `json:"tls,omitempty"`
}

// SecretKeyReference names one key of a Secret in the same namespace.
type SecretKeyReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key in the Secret's data that holds the password.
	// +optional
	// +kubebuilder:default=password
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// GeneratedPassword configures a password the operator generates. The password is created
// once and kept; delete the Secret to have a new one generated.
type GeneratedPassword struct {
	// secretName is the Secret the credentials are written to. Empty uses
	// <metadata.name>-mqtt-credentials.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`
}

// ClientCertificate configures a client certificate the operator issues and renews.
// +kubebuilder:validation:XValidation:rule="!has(self.duration) || !has(self.renewBefore) || duration(self.renewBefore) < duration(self.duration)",message="tls.renewBefore must be shorter than tls.duration, e.g. duration: 2160h with renewBefore: 720h"
type ClientCertificate struct {
	// secretName is the Secret the certificate is written to. Empty uses
	// <metadata.name>-mqtt-tls.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`

	// duration is how long the certificate is valid, e.g. 2160h (90 days). At least 1h.
	// +optional
	// +kubebuilder:default="2160h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="tls.duration must be at least 1h, e.g. 2160h"
	Duration *metav1.Duration `json:"duration,omitempty"`

	// renewBefore is how long before expiry the certificate is renewed, e.g. 720h (30 days).
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5m')",message="tls.renewBefore must be at least 5m, e.g. 720h"
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`
}

// MQTTUserStatus is the observed state of a broker user.
type MQTTUserStatus struct {
	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions hold Ready: True once the user's credentials and ACL lines are in the
	// broker's files.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// username is the username in effect (spec.username, or metadata.name when that is empty).
	// +optional
	Username string `json:"username,omitempty"`

	// secretName is the Secret that holds the credentials clients use: the generated
	// password or the issued client certificate. Empty with passwordSecretRef, where the
	// password is already in your Secret.
	// +optional
	SecretName string `json:"secretName,omitempty"`
}

// MQTTUser is one user of an MQTTBroker: its credentials and the topics it may use. Keep
// MQTTUsers in git; a change reaches every broker pod without a restart.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=mqu,categories=fleetmq
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Broker",type=string,JSONPath=".spec.brokerRef.name",description="The MQTTBroker the user belongs to"
// +kubebuilder:printcolumn:name="Username",type=string,JSONPath=".status.username",description="The username in effect"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type==\"Ready\")].status",description="Whether the user is in the broker's files"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type MQTTUser struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata; its name is the default username.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired user.
	// +required
	Spec MQTTUserSpec `json:"spec"`

	// status is the observed user, written by the operator.
	// +optional
	Status MQTTUserStatus `json:"status,omitzero"`
}

// MQTTUserList is a list of MQTTUsers.
// +kubebuilder:object:root=true
type MQTTUserList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the MQTTUsers.
	Items []MQTTUser `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MQTTUser{}, &MQTTUserList{})
}
