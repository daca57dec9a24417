package broker

// This file connects the broker's Authenticator and Authorizer interfaces
// to the Mosquitto-format password and ACL files of broker/auth, and holds
// the checks that go with them: anonymous access, certificate identities,
// session ownership, and the revocation of connections whose credentials a
// reload took away.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/fleetmq/fleetmq/broker/auth"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/packet"
)

// fileAuthenticator admits clients by the password file in force, anonymous
// clients when the config allows them, and on listeners with
// useCNAsUsername, clients by their verified certificate. It is the
// Server's Authenticator unless Options gave one; it reads the password
// file and the config atomically, so a reload takes effect at the next
// CONNECT.
type fileAuthenticator struct{ srv *Server }

// Authenticate implements Authenticator. It never logs: the caller logs the
// refusal with the username only, never the password.
func (a *fileAuthenticator) Authenticate(info *ConnectInfo) packet.ReasonCode {
	rc := a.check(info)
	if rc != packet.Success {
		a.srv.stats.AuthFailures.Add(1)
	}
	return rc
}

func (a *fileAuthenticator) check(info *ConnectInfo) packet.ReasonCode {
	srv := a.srv
	if ep := srv.tlsEndpoint(info.Listener); ep != nil && ep.cfg.UseCNAsUsername {
		// The certificate is the credential, as with Mosquitto's
		// use_identity_as_username: the CONNECT username is replaced and
		// no password is asked for. Config validation makes such a
		// listener require a verified client certificate.
		cn, ok := verifiedCommonName(info.TLS)
		if !ok {
			return packet.NotAuthorized
		}
		info.Username = cn
		return packet.Success
	}
	if !info.HasUsername {
		if srv.cfg.Load().AllowAnonymous {
			return packet.Success
		}
		return packet.NotAuthorized
	}
	pf := srv.files.passwords.Load()
	if pf == nil || !pf.Verify(info.Username, info.Password) {
		return packet.BadUsernameOrPassword
	}
	return packet.Success
}

// verifiedCommonName returns the subject common name of a verified client
// certificate. An unverified certificate (clientAuth: request lets one
// through only when it verifies, but be strict anyway) names nobody.
func verifiedCommonName(st *tls.ConnectionState) (string, bool) {
	if st == nil || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return "", false
	}
	cn := st.VerifiedChains[0][0].Subject.CommonName
	return cn, cn != ""
}

// tlsConnectionState returns the TLS state of a connection from a TLS or
// secure WebSocket listener, nil for a plain one.
func tlsConnectionState(nc net.Conn) *tls.ConnectionState {
	if tc, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		if st := tc.ConnectionState(); st.HandshakeComplete {
			return &st
		}
	}
	return nil
}

// aclAuthorizer checks a client against one parsed ACL file and counts the
// denials. A reload swaps in a new aclAuthorizer rather than changing one.
type aclAuthorizer struct {
	acl   *auth.ACL
	stats *Stats
}

// aclClient is the ACL's view of a client: one without a username is
// anonymous (a password file cannot hold an empty username, and a
// certificate without a common name is refused).
func aclClient(c ClientInfo) auth.Client {
	return auth.Client{ClientID: c.ClientID, Username: c.Username, Anonymous: c.Username == ""}
}

// CanPublish implements Authorizer.
func (a *aclAuthorizer) CanPublish(c ClientInfo, topic string) bool {
	if a.acl.CanPublish(aclClient(c), topic) {
		return true
	}
	a.stats.ACLDeniedPublish.Add(1)
	return false
}

// CanSubscribe implements Authorizer. The broker passes the filter without
// any $share/<group>/ prefix: access is about topics, not groups.
func (a *aclAuthorizer) CanSubscribe(c ClientInfo, filter string) bool {
	if a.acl.CanSubscribe(aclClient(c), filter) {
		return true
	}
	a.stats.ACLDeniedSubscribe.Add(1)
	return false
}

// CanRead implements Authorizer.
func (a *aclAuthorizer) CanRead(c ClientInfo, topic string) bool {
	if a.acl.CanRead(aclClient(c), topic) {
		return true
	}
	a.stats.ACLDeniedRead.Add(1)
	return false
}

// ownedByOtherUser reports whether a session with this client id exists
// and belongs to another user. Taking it over would hand one user another
// user's queued messages and subscriptions, so such a CONNECT is refused
// with Not Authorized. Anonymous clients count as one user, as in
// Mosquitto.
func (srv *Server) ownedByOtherUser(clientID, username string) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	s := srv.sessions[clientID]
	if s == nil {
		return false
	}
	s.mu.Lock()
	owner := s.username
	s.mu.Unlock()
	if owner != username {
		srv.stats.AuthFailures.Add(1)
		return true
	}
	return false
}

// revokeConnections closes, with v5 DISCONNECT Not Authorized, every
// connected client for which revoke returns true. Only connections past
// CONNACK are looked at: their username is settled (connected is stored
// after it is written, so reading it here is ordered after that write).
func (srv *Server) revokeConnections(why string, revoke func(c *conn) bool) int {
	srv.mu.Lock()
	var victims []*conn
	for c := range srv.conns {
		if c.connected.Load() && revoke(c) {
			victims = append(victims, c)
		}
	}
	srv.mu.Unlock()
	for _, c := range victims {
		srv.log.Info("Closing connection: "+why, "client", c.clientID, "username", c.username, "listener", c.listener)
		srv.stats.ConnectionsRevoked.Add(1)
		c.closeWith(packet.NotAuthorized)
	}
	return len(victims)
}

// CheckFiles loads every file cfg names (the password file, the ACL file,
// and each TLS listener's certificate, key and CA bundle) and reports every
// problem, each naming its file, and its line where there is one. It
// changes nothing: `fleetmq-broker validate` and the operator use it to
// reject files before a broker sees them.
func CheckFiles(cfg *config.Config) error {
	var errs []error
	if cfg.PasswordFile != "" {
		if _, err := auth.LoadPasswordFile(cfg.PasswordFile); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.ACLFile != "" {
		if _, err := auth.LoadACL(cfg.ACLFile); err != nil {
			errs = append(errs, err)
		}
	}
	for _, lc := range cfg.Listeners {
		if lc.TLS == nil {
			continue
		}
		ep := &tlsEndpoint{name: lc.Name, cfg: *lc.TLS}
		if _, err := ep.load(); err != nil {
			errs = append(errs, fmt.Errorf("listener %s: %w", lc.Name, err))
		}
	}
	return errors.Join(errs...)
}

// readFileRevision reads a file and returns its content with the revision
// auth uses for it (so the two can be compared without parsing).
func readFileRevision(path string) ([]byte, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	return data, contentRevision(data), nil
}
