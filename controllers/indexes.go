package controllers

import (
	"context"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/controllers/builder"
)

// Field indexes on the manager's cache. They turn "which objects refer to this one" into a
// cache lookup, so a change to a Secret, ConfigMap or MQTTUser reaches exactly the brokers
// and users it affects instead of every one in the cluster.
const (
	// userBrokerIndex indexes MQTTUsers by spec.brokerRef.name.
	userBrokerIndex = "spec.brokerRef.name"
	// userSecretIndex indexes MQTTUsers by every Secret they read or write: the password
	// Secret they reference, or the Secret their generated password or client certificate
	// goes to.
	userSecretIndex = "mqtt.fleetmq.io/user-secrets"
	// brokerConfigMapIndex indexes MQTTBrokers by the ACL ConfigMaps they reference.
	brokerConfigMapIndex = "mqtt.fleetmq.io/acl-configmaps"
	// brokerSecretIndex indexes MQTTBrokers by the serving-certificate Secret they read but
	// do not own: spec.tls.secretName, or the Secret cert-manager writes for issuerRef.
	brokerSecretIndex = "mqtt.fleetmq.io/tls-secrets"
)

// indexedManagers remembers the field indexers that already have the indexes, because both
// reconcilers need them and the cache refuses to register an index twice.
var indexedManagers sync.Map // client.FieldIndexer -> *indexOnce

type indexOnce struct {
	once sync.Once
	err  error
}

// ensureIndexes registers every field index on mgr's cache once, whichever reconciler is set
// up first.
func ensureIndexes(ctx context.Context, mgr ctrl.Manager) error {
	v, _ := indexedManagers.LoadOrStore(mgr.GetFieldIndexer(), &indexOnce{})
	o := v.(*indexOnce)
	o.once.Do(func() { o.err = registerIndexes(ctx, mgr.GetFieldIndexer()) })
	return o.err
}

func registerIndexes(ctx context.Context, idx client.FieldIndexer) error {
	indexes := []struct {
		obj   client.Object
		field string
		fn    client.IndexerFunc
	}{
		{&v1.MQTTUser{}, userBrokerIndex, func(o client.Object) []string {
			return []string{o.(*v1.MQTTUser).Spec.BrokerRef.Name}
		}},
		{&v1.MQTTUser{}, userSecretIndex, func(o client.Object) []string {
			return userSecretNames(o.(*v1.MQTTUser))
		}},
		{&v1.MQTTBroker{}, brokerConfigMapIndex, func(o client.Object) []string {
			var names []string
			for _, ref := range o.(*v1.MQTTBroker).Spec.Authorization.ACLConfigMapRefs {
				names = append(names, ref.Name)
			}
			return names
		}},
		{&v1.MQTTBroker{}, brokerSecretIndex, func(o client.Object) []string {
			b := o.(*v1.MQTTBroker)
			if !tlsEnabled(b) {
				return nil
			}
			switch {
			case b.Spec.TLS.SecretName != "":
				return []string{b.Spec.TLS.SecretName}
			case b.Spec.TLS.IssuerRef != nil:
				return []string{builder.TLSName(b)}
			}
			return nil
		}},
	}
	for _, i := range indexes {
		if err := idx.IndexField(ctx, i.obj, i.field, i.fn); err != nil {
			return fmt.Errorf("index %T by %s: %w", i.obj, i.field, err)
		}
	}
	return nil
}

// tlsEnabled reports whether b serves TLS; the API defaults spec.tls.enabled to true.
func tlsEnabled(b *v1.MQTTBroker) bool {
	return b.Spec.TLS.Enabled == nil || *b.Spec.TLS.Enabled
}

// userSecretNames are the Secrets an MQTTUser depends on, for userSecretIndex.
func userSecretNames(u *v1.MQTTUser) []string {
	if ref := u.Spec.Authentication.PasswordSecretRef; ref != nil {
		return []string{ref.Name}
	}
	return []string{credentialsSecretName(u)}
}

// credentialsSecretName is the Secret the operator writes for u: the client certificate
// Secret with authentication.tls, else the generated password Secret. It is "" when u takes
// its password from a Secret of its own.
func credentialsSecretName(u *v1.MQTTUser) string {
	a := u.Spec.Authentication
	switch {
	case a.PasswordSecretRef != nil:
		return ""
	case a.TLS != nil:
		if a.TLS.SecretName != "" {
			return a.TLS.SecretName
		}
		return u.Name + "-mqtt-tls"
	case a.Generate != nil && a.Generate.SecretName != "":
		return a.Generate.SecretName
	}
	return u.Name + "-mqtt-credentials"
}

// usernameOf is the username in effect for u: spec.username, or metadata.name.
func usernameOf(u *v1.MQTTUser) string {
	if u.Spec.Username != "" {
		return u.Spec.Username
	}
	return u.Name
}

// controllingBroker returns the name of the MQTTBroker that controls obj, or "".
func controllingBroker(obj metav1.Object) string {
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.Kind != "MQTTBroker" || ref.APIVersion != v1.GroupVersion.String() {
		return ""
	}
	return ref.Name
}

// brokerUsers lists the MQTTUsers whose spec.brokerRef names broker in namespace ns.
func brokerUsers(ctx context.Context, c client.Reader, ns, broker string) ([]v1.MQTTUser, error) {
	var list v1.MQTTUserList
	if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{userBrokerIndex: broker}); err != nil {
		return nil, fmt.Errorf("list MQTTUsers of MQTTBroker %s/%s: %w", ns, broker, err)
	}
	return list.Items, nil
}

// usernameOwners decides which MQTTUser keeps each username when several of one broker ask
// for the same: the oldest (by creation time, then name) keeps it, so creating a duplicate
// never takes a working user's credentials away. Users being deleted are left out.
func usernameOwners(users []v1.MQTTUser) map[string]types.NamespacedName {
	owners := make(map[string]*v1.MQTTUser)
	for i := range users {
		u := &users[i]
		if !u.DeletionTimestamp.IsZero() {
			continue
		}
		name := usernameOf(u)
		cur, taken := owners[name]
		if !taken || olderThan(u, cur) {
			owners[name] = u
		}
	}
	out := make(map[string]types.NamespacedName, len(owners))
	for name, u := range owners {
		out[name] = client.ObjectKeyFromObject(u)
	}
	return out
}

func olderThan(a, b *v1.MQTTUser) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// requestsFor turns object names in one namespace into reconcile requests.
func requestsFor(ns string, names ...string) []reconcile.Request {
	seen := make(map[string]bool, len(names))
	var reqs []reconcile.Request
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: n}})
	}
	return reqs
}
