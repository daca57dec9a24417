package v1alpha1

// Condition types of MQTTBroker and MQTTUser status. Ready follows the kstatus convention
// (https://github.com/kubernetes-sigs/cli-utils/tree/master/pkg/kstatus): it is True only
// when status.observedGeneration equals metadata.generation and everything the spec asks for
// is in place, so Flux and Argo CD health checks can wait on it.
const (
	// ConditionReady is True when the object is fully reconciled and serving: for an
	// MQTTBroker every replica is ready on the current spec; for an MQTTUser its credentials
	// and ACL lines are in the broker's files.
	ConditionReady = "Ready"
	// ConditionAvailable is True when at least one broker pod is ready to accept clients,
	// even while others roll or start.
	ConditionAvailable = "Available"
	// ConditionProgressing is True while the fleet moves towards the spec: pods rolling,
	// scaling, or a certificate being issued.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when something needs a person: an invalid reference, a
	// failed certificate, pods that do not become ready.
	ConditionDegraded = "Degraded"
	// ConditionTLSReady is True when the serving certificate exists, is valid and is not
	// due for renewal; False while it is issued or when issuing failed.
	ConditionTLSReady = "TLSReady"
	// ConditionACLSynced is True when the <name>-acl ConfigMap holds the ACL rendered from
	// the current spec, MQTTUsers and referenced ConfigMaps; False when a source failed to
	// parse, in which case the last good ACL stays in place.
	ConditionACLSynced = "ACLSynced"
)

// Condition reasons: CamelCase words that say why a condition has its status. Messages carry
// the detail (the object and line at fault, what to do next).
const (
	// ReasonReconciled: the object matches its spec.
	ReasonReconciled = "Reconciled"
	// ReasonReconciling: the controller is creating or updating owned objects.
	ReasonReconciling = "Reconciling"
	// ReasonReconcileFailed: an API call failed; the controller retries with backoff.
	ReasonReconcileFailed = "ReconcileFailed"
	// ReasonPaused: spec.paused is true, so the controller changes nothing.
	ReasonPaused = "Paused"
	// ReasonPodsReady: every desired broker pod is ready.
	ReasonPodsReady = "PodsReady"
	// ReasonPodsNotReady: fewer broker pods are ready than desired.
	ReasonPodsNotReady = "PodsNotReady"
	// ReasonRollingUpdate: broker pods are being replaced with a new pod template.
	ReasonRollingUpdate = "RollingUpdate"
	// ReasonScaling: the number of broker pods is changing.
	ReasonScaling = "Scaling"
	// ReasonScaledToZero: spec.replicas is 0, so no pod serves clients by request.
	ReasonScaledToZero = "ScaledToZero"
	// ReasonCertificateIssued: the serving (or client) certificate is valid.
	ReasonCertificateIssued = "CertificateIssued"
	// ReasonCertificateRenewing: the certificate is within renewBefore of expiry and being replaced.
	ReasonCertificateRenewing = "CertificateRenewing"
	// ReasonCertificateFailed: the certificate could not be issued or read.
	ReasonCertificateFailed = "CertificateFailed"
	// ReasonCertManagerMissing: tls.issuerRef is set but cert-manager's CRDs are not installed.
	ReasonCertManagerMissing = "CertManagerMissing"
	// ReasonTLSDisabled: spec.tls.enabled is false.
	ReasonTLSDisabled = "TLSDisabled"
	// ReasonACLRendered: the ACL ConfigMap holds the current ACL.
	ReasonACLRendered = "ACLRendered"
	// ReasonACLInvalid: an ACL source failed to parse; the message names the object and line.
	ReasonACLInvalid = "ACLInvalid"
	// ReasonReferenceNotFound: a referenced ConfigMap, Secret or Issuer does not exist.
	ReasonReferenceNotFound = "ReferenceNotFound"
	// ReasonBrokerNotFound: an MQTTUser's spec.brokerRef names no MQTTBroker in its namespace.
	ReasonBrokerNotFound = "BrokerNotFound"
	// ReasonPasswordGenerated: an MQTTUser's password was generated into status.secretName.
	ReasonPasswordGenerated = "PasswordGenerated"
	// ReasonDuplicateUsername: another MQTTUser of the same broker has the same username;
	// the older one keeps it.
	ReasonDuplicateUsername = "DuplicateUsername"
)
