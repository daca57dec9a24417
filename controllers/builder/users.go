package builder

import (
	"bytes"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/broker/auth"
)

// ValidateUser reports whether u can go into the broker's files: a username the password
// and ACL files can hold, a well-formed password hash (when it has one) and acls the broker
// parses. Errors name the MQTTUser, for its Ready condition.
func ValidateUser(u User) error {
	if err := checkUsername(u); err != nil {
		return err
	}
	if u.PasswordHash != "" {
		// UpdatePasswordFile runs the broker's own hash check without exposing the hash.
		if _, err := auth.UpdatePasswordFile(nil, u.Username, u.PasswordHash); err != nil {
			return fmt.Errorf("MQTTUser %s: %w", u.Object, err)
		}
	}
	return checkUserACLs(u)
}

// PasswordFile renders the broker's password file: one "username:hash" line per user with
// a password hash, sorted by username. Users that ValidateUser refuses are left out (so one
// bad user cannot make the broker reject the whole file and lock everyone out); RenderACL
// and ValidateUser report them. Of two users with one username only the first valid one
// (by object name) is kept; RenderACL refuses such a set anyway.
func PasswordFile(users []User) []byte {
	var buf bytes.Buffer
	prev := ""
	for _, u := range sortedUsers(users) {
		if u.PasswordHash == "" || u.Username == prev || ValidateUser(u) != nil {
			continue
		}
		buf.WriteString(u.Username)
		buf.WriteByte(':')
		buf.WriteString(u.PasswordHash)
		buf.WriteByte('\n')
		prev = u.Username
	}
	return buf.Bytes()
}

// UsersSecret is the <name>-users Secret holding the password file. It holds hashes only,
// never a password. RevisionAnnotation is the file's Revision.
func UsersSecret(b *v1.MQTTBroker, passwd []byte) *corev1.Secret {
	meta := objectMeta(b, UsersName(b))
	meta.Annotations = map[string]string{RevisionAnnotation: Revision(passwd)}
	if passwd == nil {
		passwd = []byte{} // an empty file is still a file the broker loads (no users)
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta,
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{PasswdKey: passwd},
	}
}
