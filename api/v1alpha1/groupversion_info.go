// Package v1alpha1 is the v1alpha1 API of the mqtt.fleetmq.io group: MQTTBroker, a fleet of
// FleetMQ broker pods that act as one broker, and MQTTUser, one user of such a fleet with its
// credentials and ACL, kept as YAML in git.
//
// +kubebuilder:object:generate=true
// +groupName=mqtt.fleetmq.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "mqtt.fleetmq.io", Version: "v1alpha1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds MQTTBroker and MQTTUser (and their lists) to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
