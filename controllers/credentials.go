package controllers

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/broker/auth"
	"github.com/fleetmq/fleetmq/controllers/builder"
)

// gatherUsers resolves the broker's MQTTUsers into the builder's input: username, ACLs and
// a password hash.
//
// Hashes are salted, so hashing the same password twice gives different bytes. To keep the
// password file byte-identical while nothing changes (no write, no reload in every pod, no
// disconnects), a user's hash is taken from the current password file whenever that hash
// verifies the user's current password; only a new or changed password is hashed anew.
//
// Users that cannot go into the files are left out rather than failing the broker: a
// username taken by an older MQTTUser, a password Secret that is missing or empty, a
// username or ACL the broker would refuse. The MQTTUser controller reports each on that
// user's Ready condition.
func (r *MQTTBrokerReconciler) gatherUsers(ctx context.Context, b *v1.MQTTBroker, currentPasswd []byte) ([]builder.User, error) {
	log := logf.FromContext(ctx)
	list, err := brokerUsers(ctx, r, b.Namespace, b.Name)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(x, y v1.MQTTUser) int { return strings.Compare(x.Name, y.Name) })
	owners := usernameOwners(list)

	current, hashes := parseCurrentPasswords(currentPasswd)
	var users []builder.User
	for i := range list {
		u := &list[i]
		username := usernameOf(u)
		if owners[username].Name != u.Name {
			continue // a duplicate, or being deleted
		}
		bu := builder.User{Object: u.Name, Username: username, ACLs: u.Spec.ACLs}
		if u.Spec.Authentication.TLS == nil {
			ref := u.Spec.Authentication.PasswordSecretRef
			if ref == nil {
				ref = &v1.SecretKeyReference{Name: credentialsSecretName(u), Key: passwordKey}
			}
			password, found, err := readPassword(ctx, r.referenced, u.Namespace, ref)
			if err != nil {
				return nil, err
			}
			if !found {
				// Not yet generated, or missing: the user gets no password line (and so
				// cannot log in) until it is there. Its ACL lines are harmless meanwhile.
				log.V(1).Info("MQTTUser has no password yet", "mqttuser", u.Name)
			} else {
				hash := ""
				if current != nil && current.Has(username) && current.Verify(username, password) {
					hash = hashes[username]
				} else if hash, err = auth.HashPassword(password); err != nil {
					return nil, fmt.Errorf("hash the password of MQTTUser %s: %w", u.Name, err)
				}
				bu.PasswordHash = hash
			}
		}
		if err := builder.ValidateUser(bu); err != nil {
			log.V(1).Info("Leaving an MQTTUser out of the broker's files", "mqttuser", u.Name, "reason", err.Error())
			continue
		}
		users = append(users, bu)
	}
	return users, nil
}

// parseCurrentPasswords parses the password file in the broker's users Secret and returns
// it with each user's hash text. A file that does not parse (edited by hand) yields nothing,
// so every password is hashed anew and the file rewritten.
func parseCurrentPasswords(data []byte) (*auth.PasswordFile, map[string]string) {
	if len(data) == 0 {
		return nil, nil
	}
	pf, err := auth.ParsePasswordFile(builder.PasswdKey, data)
	if err != nil {
		return nil, nil
	}
	hashes := make(map[string]string, len(pf.Users()))
	for line := range bytes.Lines(data) {
		text := strings.TrimSpace(string(line))
		if text == "" || text[0] == '#' {
			continue
		}
		if user, hash, ok := strings.Cut(text, ":"); ok && pf.Has(user) {
			hashes[user] = hash
		}
	}
	return pf, hashes
}

// aclSourceProblem is why the referenced ACL ConfigMaps cannot be rendered now.
type aclSourceProblem struct {
	reason  string
	message string
}

// gatherACLSources reads the ACL text of every ConfigMap in
// spec.authorization.aclConfigMapRefs. A missing ConfigMap or key is a problem for the
// ACLSynced condition, not an error: the watch on ConfigMaps brings the broker back here
// when it appears.
func (r *MQTTBrokerReconciler) gatherACLSources(ctx context.Context, b *v1.MQTTBroker) ([]builder.ACLSource, *aclSourceProblem, error) {
	var sources []builder.ACLSource
	for i, ref := range b.Spec.Authorization.ACLConfigMapRefs {
		key := ref.Key
		if key == "" {
			key = builder.ACLKey
		}
		cm := &corev1.ConfigMap{}
		name := types.NamespacedName{Namespace: b.Namespace, Name: ref.Name}
		if err := r.referenced.Get(ctx, name, cm); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &aclSourceProblem{v1.ReasonReferenceNotFound, fmt.Sprintf(
					"ConfigMap %s (spec.authorization.aclConfigMapRefs[%d]) does not exist: create it or remove the reference; the last good ACL stays in force",
					name, i)}, nil
			}
			return nil, nil, fmt.Errorf("get ACL ConfigMap %s: %w", name, err)
		}
		content, ok := cm.Data[key]
		if !ok {
			return nil, &aclSourceProblem{v1.ReasonReferenceNotFound, fmt.Sprintf(
				"ConfigMap %s (spec.authorization.aclConfigMapRefs[%d]) has no key %q: add it or fix the reference's key; the last good ACL stays in force",
				name, i, key)}, nil
		}
		sources = append(sources, builder.ACLSource{ConfigMap: ref.Name, Key: key, Content: content})
	}
	return sources, nil, nil
}
