package builder

import (
	"encoding/json"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
)

func TestServices(t *testing.T) {
	b := newBroker(func(b *v1.MQTTBroker) {
		b.Spec.Service = v1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			Annotations: map[string]string{"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}}
	})
	client := ClientService(b)
	if client.Name != "fleet" || client.Spec.Type != corev1.ServiceTypeLoadBalancer ||
		client.Annotations["service.beta.kubernetes.io/aws-load-balancer-type"] != "nlb" {
		t.Errorf("client Service %s type %s annotations %v", client.Name, client.Spec.Type, client.Annotations)
	}
	var ports []string
	for _, p := range client.Spec.Ports {
		ports = append(ports, p.Name)
		if p.Port != p.TargetPort.IntVal {
			t.Errorf("port %s: %d -> %v", p.Name, p.Port, p.TargetPort)
		}
	}
	if !reflect.DeepEqual(ports, []string{"mqtt", "mqtts"}) {
		t.Errorf("client ports %v: the listeners, and no metrics on a load balancer", ports)
	}
	if client.Spec.PublishNotReadyAddresses {
		t.Error("clients must reach ready pods only")
	}
	if ClientService(newBroker()).Spec.Type != corev1.ServiceTypeClusterIP {
		t.Error("default client Service type must be ClusterIP")
	}

	peers := PeersService(b)
	if peers.Name != "fleet-peers" || peers.Spec.ClusterIP != corev1.ClusterIPNone || !peers.Spec.PublishNotReadyAddresses {
		t.Errorf("peers Service %s clusterIP %q publishNotReady %v", peers.Name, peers.Spec.ClusterIP, peers.Spec.PublishNotReadyAddresses)
	}
	if peers.Annotations != nil {
		t.Error("load balancer annotations leaked onto the headless Service")
	}
	for _, s := range []*corev1.Service{client, peers} {
		if !reflect.DeepEqual(s.Spec.Selector, SelectorLabels(b)) {
			t.Errorf("%s selects %v", s.Name, s.Spec.Selector)
		}
	}
	sts := StatefulSet(b, testImage)
	if sts.Spec.ServiceName != peers.Name {
		t.Error("the StatefulSet's serviceName is not the headless Service, so pods get no DNS names")
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	if pdb := PodDisruptionBudget(newBroker()); pdb == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) {
		t.Errorf("default PDB = %+v, want maxUnavailable 1", pdb)
	}
	pct := intstr.FromString("25%")
	b := newBroker(func(b *v1.MQTTBroker) { b.Spec.PodDisruptionBudget.MaxUnavailable = &pct })
	pdb := PodDisruptionBudget(b)
	if *pdb.Spec.MaxUnavailable != pct || pdb.Spec.MinAvailable != nil ||
		!reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, SelectorLabels(b)) {
		t.Errorf("PDB spec = %+v", pdb.Spec)
	}
	if PodDisruptionBudget(newBroker(func(b *v1.MQTTBroker) { b.Spec.PodDisruptionBudget.Enabled = new(false) })) != nil {
		t.Error("a disabled PDB is rendered")
	}
}

func TestRBACIsLeastPrivilege(t *testing.T) {
	b := newBroker()
	sa, role, rb := ServiceAccount(b), Role(b), RoleBinding(b)
	if sa.Name != "fleet-broker" || role.Name != sa.Name || rb.Name != sa.Name {
		t.Errorf("names %s %s %s", sa.Name, role.Name, rb.Name)
	}
	if len(role.Rules) != 1 {
		t.Fatalf("role has %d rules, want 1", len(role.Rules))
	}
	r := role.Rules[0]
	if !reflect.DeepEqual(r.APIGroups, []string{"discovery.k8s.io"}) || !reflect.DeepEqual(r.Resources, []string{"endpointslices"}) ||
		!reflect.DeepEqual(r.Verbs, []string{"get", "list", "watch"}) {
		t.Errorf("role rule = %+v, want get/list/watch endpointslices only", r)
	}
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 ||
		rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != sa.Name || rb.Subjects[0].Namespace != "acme" {
		t.Errorf("binding = %+v", rb)
	}
}

func TestServiceMonitor(t *testing.T) {
	if ServiceMonitor(newBroker()) != nil {
		t.Error("a ServiceMonitor is rendered with monitoring disabled")
	}
	b := newBroker(func(b *v1.MQTTBroker) {
		b.Spec.Monitoring.Enabled = new(true)
		b.Spec.Monitoring.ServiceMonitor.Labels = map[string]string{"release": "prometheus"}
	})
	sm := ServiceMonitor(b)
	if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetKind() != "ServiceMonitor" || sm.GetName() != "fleet" ||
		sm.GetNamespace() != "acme" || sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor meta = %v %v %v", sm.GroupVersionKind(), sm.GetName(), sm.GetLabels())
	}
	_ = sm.DeepCopy() // panics if any value is not JSON-like, as the client would

	// The selector must pick exactly the peers Service, and the endpoint its metrics port.
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	matches := func(s *corev1.Service) bool {
		for k, v := range sel {
			if s.Labels[k] != v {
				return false
			}
		}
		return true
	}
	if !matches(PeersService(b)) || matches(ClientService(b)) {
		t.Errorf("selector %v must match the peers Service only", sel)
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	raw, _ := json.Marshal(eps)
	var endpoints []struct{ Port, Path string }
	_ = json.Unmarshal(raw, &endpoints)
	hasPort := false
	for _, p := range PeersService(b).Spec.Ports {
		hasPort = hasPort || (len(endpoints) == 1 && p.Name == endpoints[0].Port && p.Port == MetricsPort)
	}
	if !hasPort || endpoints[0].Path != "/metrics" {
		t.Errorf("endpoints %s do not scrape the peers Service's metrics port", raw)
	}
}

func TestNamesAndLabels(t *testing.T) {
	b := newBroker()
	got := []string{ConfigName(b), ACLName(b), UsersName(b), CAName(b), TLSName(b), PeersName(b), ServiceAccountName(b), TLSSecretName(b)}
	want := []string{"fleet-config", "fleet-acl", "fleet-users", "fleet-ca", "fleet-tls", "fleet-peers", "fleet-broker", "fleet-tls"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("names %v, want %v", got, want)
	}
	if l := Labels(b); l["app.kubernetes.io/managed-by"] != "fleetmq-operator" || l["app.kubernetes.io/component"] != "broker" ||
		l["app.kubernetes.io/name"] != "fleetmq-broker" || l["app.kubernetes.io/instance"] != "fleet" {
		t.Errorf("labels %v", l)
	}
	if len(SelectorLabels(b)) != 2 {
		t.Errorf("selector labels %v must be name and instance only (a StatefulSet selector is immutable)", SelectorLabels(b))
	}
	if Revision([]byte("x")) == Revision([]byte("y")) || len(Revision(nil)) != 16 {
		t.Error("Revision is not a 16-hex content hash")
	}
}

// TestRenderingIsByteIdentical renders every object twice from equal inputs (users in
// another order the second time) and compares the JSON the reconciler would send: any
// difference would be a write on every idle resync.
func TestRenderingIsByteIdentical(t *testing.T) {
	render := func(users []User) []byte {
		b := newBroker(withReplicas(3), withPersistence("1Gi"), withAllLimits(),
			withRules(rule("clients/%c/#", v1.ACLReadWrite)), func(b *v1.MQTTBroker) {
				b.Spec.Monitoring.Enabled = new(true)
				b.Spec.Monitoring.ServiceMonitor.Labels = map[string]string{"a": "1", "b": "2", "c": "3"}
				b.Spec.Template.Labels = map[string]string{"x": "1", "y": "2", "z": "3"}
				b.Spec.Template.NodeSelector = map[string]string{"p": "1", "q": "2"}
			})
		cm, err := ConfigMap(b)
		if err != nil {
			t.Fatal(err)
		}
		acl, err := RenderACL(b, users, []ACLSource{{ConfigMap: "extra", Key: "acl", Content: extraACL}})
		if err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal([]any{cm, ACLConfigMap(b, acl), UsersSecret(b, PasswordFile(users)),
			ClientService(b), PeersService(b), StatefulSet(b, testImage), PodDisruptionBudget(b),
			ServiceAccount(b), Role(b), RoleBinding(b), ServiceMonitor(b), ServingDNSNames(b)})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	users := sensorUsers(t)
	first := render(users)
	for range 3 {
		shuffled := []User{users[2], users[0], users[1]}
		if got := render(shuffled); string(got) != string(first) {
			t.Fatal("rendering the same broker twice differs")
		}
	}
}
