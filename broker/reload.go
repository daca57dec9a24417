package broker

// Live reload of the files the operator mounts into a broker pod: the
// config file, the password file, the ACL file and each TLS listener's
// certificate, key and CA bundle.
//
// Kubernetes updates a ConfigMap or Secret volume by writing the new files
// into a fresh timestamped directory and renaming a "..data" symlink onto
// it; the files the broker is told about are symlinks through "..data".
// Watching the files themselves would follow the old inodes, so Watch
// watches their directories, treats any event there as "something may have
// changed", waits a moment for the rest of the update, and re-reads every
// file through its path. Content hashes decide what actually changed, so
// unrelated events cost a few small reads and nothing else.
//
// Each file stands alone: one that fails to load keeps its previous content
// in force while the others apply, and the failure is logged with its file
// and line, counted (ReloadErrors) and shown by Health until a good version
// arrives.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/fleetmq/fleetmq/broker/auth"
	"github.com/fleetmq/fleetmq/broker/config"
	"github.com/fleetmq/fleetmq/broker/topic"
)

// reloadDebounce is how long Watch waits after the first event of a burst
// before reloading: a kubelet update is a handful of events in quick
// succession, and one reload should see all of it.
const reloadDebounce = 100 * time.Millisecond

// Keys of the files in Health.Files; TLS listeners use "tls/<listener>".
const (
	fileConfig    = "config"
	filePasswords = "passwords"
	fileACL       = "acl"
)

// ConfigSource tells the server where its configuration comes from, so
// that Reload can read it again.
type ConfigSource struct {
	// Path is the YAML config file; Watch watches its directory. Empty when
	// the config did not come from a file: only the files it names are
	// then re-read.
	Path string
	// Override is applied to every config read from Path before it is
	// validated, e.g. the command-line flags that take precedence over the
	// file. Optional.
	Override func(*config.Config)
	// OnApply runs after a changed config has been put in force, e.g. to
	// change the log level. Optional.
	OnApply func(*config.Config)
}

// FileStatus is the state of one file the broker loads.
type FileStatus struct {
	// Path is the file, as configured.
	Path string `json:"path"`
	// Revision identifies the content in force: the first 16 hex
	// characters of its SHA-256.
	Revision string `json:"revision,omitempty"`
	// LoadedAt is when that content was loaded.
	LoadedAt time.Time `json:"loadedAt,omitzero"`
	// Error is why the latest content could not be loaded, with file and
	// line where known; Revision is still in force. Cleared by the next
	// successful load.
	Error string `json:"error,omitempty"`
	// FailedAt is when Error happened.
	FailedAt time.Time `json:"failedAt,omitzero"`
}

// Health is the broker's readiness and what it has loaded, as /readyz
// reports it.
type Health struct {
	// Ready is true once listeners are open and until shutdown begins.
	Ready bool `json:"ready"`
	// Version is the broker version.
	Version string `json:"version"`
	// ACLRevision and UsersRevision identify the ACL and password file in
	// force ("" when there is none), so the operator can tell which pods
	// run which revision.
	ACLRevision   string `json:"aclRevision"`
	UsersRevision string `json:"usersRevision"`
	// ConfigRevision identifies the config file in force, when there is one.
	ConfigRevision string `json:"configRevision,omitempty"`
	// Listeners maps each open listener to its address.
	Listeners map[string]string `json:"listeners"`
	// Files is every file loaded, by "config", "passwords", "acl" or
	// "tls/<listener>".
	Files map[string]FileStatus `json:"files"`
	// LastReload is when the last reload ran, and LastReloadError what
	// failed in it ("" when everything loaded).
	LastReload      time.Time `json:"lastReload,omitzero"`
	LastReloadError string    `json:"lastReloadError,omitempty"`
	// RestartRequired lists config keys that changed in the file but only
	// take effect after a restart (listeners, metrics.address).
	RestartRequired []string `json:"restartRequired,omitempty"`
}

// fileState is what the server loaded from files and how it loads them
// again. The zero value is completed by initFiles.
type fileState struct {
	passwords atomic.Pointer[auth.PasswordFile]
	acl       atomic.Pointer[auth.ACL]
	// ownAuth and ownACL are set when Options gave no Authenticator or
	// Authorizer: the password and ACL files then decide.
	ownAuth, ownACL bool
	tls             sync.Map // listener name -> *tlsEndpoint

	reloadMu      sync.Mutex // one load or reload at a time; guards the fields below
	source        ConfigSource
	configRev     string
	passwordsPath string
	aclPath       string

	statusMu        sync.Mutex // guards the fields below
	status          map[string]FileStatus
	lastReload      time.Time
	lastReloadError string
	restartRequired []string

	// Background work started by Start and stopped by Shutdown.
	stop      chan struct{}
	stopOnce  sync.Once
	sysWake   chan struct{}
	sysOnce   sync.Once
	httpMu    sync.Mutex
	httpSrv   *http.Server
	httpAddr  net.Addr
	bgWG      sync.WaitGroup
	watchOnce atomic.Bool
}

// contentRevision is the revision of a file's content, computed as
// broker/auth computes ACL and password file revisions, so the two compare.
func contentRevision(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// initFiles loads the password and ACL files the config names. New calls
// it; an error names the file and line.
func (srv *Server) initFiles(opts Options) error {
	f := &srv.files
	f.stop = make(chan struct{})
	f.sysWake = make(chan struct{}, 1)
	f.status = make(map[string]FileStatus)
	f.ownACL = opts.Authorizer == nil
	if srv.auth == nil {
		srv.auth = &fileAuthenticator{srv: srv}
		f.ownAuth = true
	}
	cfg := srv.cfg.Load()
	var errs []error
	if f.ownAuth {
		if _, _, err := srv.loadPasswords(cfg.PasswordFile); err != nil {
			errs = append(errs, err)
		}
	}
	if f.ownACL {
		if _, err := srv.loadACL(cfg.ACLFile); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// loadPasswords puts the password file at path in force if its content
// changed, and returns the file it replaced. An empty path removes the
// password file. Callers hold reloadMu (or are New).
func (srv *Server) loadPasswords(path string) (changed bool, old *auth.PasswordFile, err error) {
	f := &srv.files
	if path == "" {
		old = f.passwords.Swap(nil)
		f.passwordsPath = ""
		srv.forgetStatus(filePasswords)
		return old != nil, old, nil
	}
	data, rev, err := readFileRevision(path)
	if err != nil {
		return false, nil, fmt.Errorf("read password file: %w", err)
	}
	if cur := f.passwords.Load(); cur != nil && f.passwordsPath == path && cur.Revision() == rev {
		return false, nil, nil
	}
	pf, err := auth.ParsePasswordFile(path, data)
	if err != nil {
		return false, nil, err
	}
	old = f.passwords.Swap(pf)
	f.passwordsPath = path
	srv.recordLoaded(filePasswords, path, rev)
	return true, old, nil
}

// loadACL puts the ACL file at path in force if its content changed. An
// empty path removes the ACL: every admitted client may then use every
// topic. Callers hold reloadMu (or are New).
func (srv *Server) loadACL(path string) (changed bool, err error) {
	f := &srv.files
	if path == "" {
		old := f.acl.Swap(nil)
		f.aclPath = ""
		srv.forgetStatus(fileACL)
		if old != nil {
			srv.SetAuthorizer(nil)
		}
		return old != nil, nil
	}
	data, rev, err := readFileRevision(path)
	if err != nil {
		return false, fmt.Errorf("read ACL file: %w", err)
	}
	if cur := f.acl.Load(); cur != nil && f.aclPath == path && cur.Revision() == rev {
		return false, nil
	}
	acl, err := auth.ParseACL(path, data)
	if err != nil {
		return false, err
	}
	f.acl.Store(acl)
	f.aclPath = path
	srv.SetAuthorizer(&aclAuthorizer{acl: acl, stats: &srv.stats})
	srv.recordLoaded(fileACL, path, rev)
	return true, nil
}

// SetConfigSource tells the server where its config came from, so that
// Reload and Watch re-read it. The file's current content is taken as the
// one in force.
func (srv *Server) SetConfigSource(src ConfigSource) error {
	f := &srv.files
	f.reloadMu.Lock()
	defer f.reloadMu.Unlock()
	f.source = src
	f.configRev = ""
	if src.Path == "" {
		srv.forgetStatus(fileConfig)
		return nil
	}
	_, rev, err := readFileRevision(src.Path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	f.configRev = rev
	srv.recordLoaded(fileConfig, src.Path, rev)
	return nil
}

// Reload re-reads the config file (when SetConfigSource named one), the
// password and ACL files and every TLS listener's certificate, key and CA
// bundle, and applies what changed without dropping connections:
//
//   - limits and allowAnonymous apply to what happens next; listener and
//     metrics address changes need a restart, which is logged and shown in
//     Health.RestartRequired;
//   - a changed password file closes the connections of every user that it
//     removed or whose password it changed (v5 DISCONNECT 0x87); turning
//     allowAnonymous off closes anonymous connections the same way;
//   - a changed ACL removes the subscriptions it no longer allows and drops
//     queued messages the subscriber may no longer read;
//   - changed certificates are served to new connections.
//
// A file that fails to load keeps its previous content in force. The
// errors are returned joined, each naming its file (and line), and are also
// logged, counted in Stats.ReloadErrors and shown by Health. SIGHUP and
// Watch call Reload.
func (srv *Server) Reload() error {
	f := &srv.files
	f.reloadMu.Lock()
	defer f.reloadMu.Unlock()
	var errs []error
	fail := func(key, path string, err error) {
		errs = append(errs, err)
		srv.stats.ReloadErrors.Add(1)
		srv.recordFailed(key, path, err)
		srv.log.Error("Reload failed; the previous version stays in force", "file", key, "path", path, "error", err)
	}
	applied := func(key string) {
		srv.stats.Reloads.Add(1)
		srv.log.Info("Reloaded", "file", key, "path", srv.fileStatus(key).Path, "revision", srv.fileStatus(key).Revision)
	}

	prev := srv.cfg.Load()
	cfg := prev
	if f.source.Path != "" {
		next, changed, err := srv.reloadConfig()
		switch {
		case err != nil:
			fail(fileConfig, f.source.Path, err)
		case changed:
			cfg = next
			applied(fileConfig)
		}
	}

	if f.ownAuth {
		changed, old, err := srv.loadPasswords(cfg.PasswordFile)
		switch {
		case err != nil:
			fail(filePasswords, cfg.PasswordFile, err)
		case changed:
			if cfg.PasswordFile != "" {
				applied(filePasswords)
			}
			srv.revokeChangedUsers(old, f.passwords.Load())
		}
		if prev.AllowAnonymous && !cfg.AllowAnonymous {
			srv.revokeConnections("anonymous access was turned off", func(c *conn) bool {
				return c.username == ""
			})
		}
	}

	if f.ownACL {
		changed, err := srv.loadACL(cfg.ACLFile)
		switch {
		case err != nil:
			fail(fileACL, cfg.ACLFile, err)
		case changed:
			if acl := f.acl.Load(); acl != nil {
				applied(fileACL)
				srv.recheckACL(acl)
			}
		}
	}

	f.tls.Range(func(k, v any) bool {
		ep := v.(*tlsEndpoint)
		key := tlsFileKey(ep.name)
		changed, err := ep.load()
		switch {
		case err != nil:
			fail(key, ep.cfg.CertFile, fmt.Errorf("listener %s: %w", ep.name, err))
		case changed:
			st := ep.state.Load()
			srv.recordLoaded(key, ep.cfg.CertFile, st.revision)
			srv.stats.Reloads.Add(1)
			srv.log.Info("Reloaded", "file", key, "path", ep.cfg.CertFile, "revision", st.revision,
				"serial", st.serial, "notAfter", st.notAfter)
		}
		return true
	})

	select {
	case f.sysWake <- struct{}{}: // the $SYS interval may have changed
	default:
	}
	err := errors.Join(errs...)
	f.statusMu.Lock()
	f.lastReload = time.Now()
	f.lastReloadError = ""
	if err != nil {
		f.lastReloadError = err.Error()
	}
	f.statusMu.Unlock()
	return err
}

// reloadConfig re-reads the config file and puts it in force if it
// changed. Listener and metrics changes are kept out: they need a restart.
// Callers hold reloadMu.
func (srv *Server) reloadConfig() (*config.Config, bool, error) {
	f := &srv.files
	path := f.source.Path
	data, rev, err := readFileRevision(path)
	if err != nil {
		return nil, false, fmt.Errorf("read config: %w", err)
	}
	if rev == f.configRev {
		return srv.cfg.Load(), false, nil
	}
	cfg, err := config.Parse(path, data)
	if err != nil {
		return nil, false, err
	}
	if f.source.Override != nil {
		f.source.Override(cfg)
		cfg.ApplyDefaults()
		if err := cfg.Validate(); err != nil {
			return nil, false, fmt.Errorf("%s with the command-line flags: %w", path, err)
		}
	}
	cur := srv.cfg.Load()
	var restart []string
	if !reflect.DeepEqual(cur.Listeners, cfg.Listeners) {
		restart = append(restart, "listeners")
	}
	if cur.Metrics != cfg.Metrics {
		restart = append(restart, "metrics.address")
	}
	cfg.Listeners, cfg.Metrics = cur.Listeners, cur.Metrics
	srv.cfg.Store(cfg)
	f.configRev = rev
	srv.recordLoaded(fileConfig, path, rev)
	f.statusMu.Lock()
	f.restartRequired = restart
	f.statusMu.Unlock()
	if len(restart) > 0 {
		srv.log.Warn("Config changes that take effect only after a restart were not applied", "keys", restart)
	}
	if f.source.OnApply != nil {
		f.source.OnApply(cfg)
	}
	return cfg, true, nil
}

// revokeChangedUsers closes the connections of users that the new password
// file removed or gave another password. Clients that authenticated with a
// certificate (useCNAsUsername) are not affected.
func (srv *Server) revokeChangedUsers(old, cur *auth.PasswordFile) {
	if old == nil {
		return // nobody was admitted by a password file
	}
	srv.revokeConnections("user removed or password changed", func(c *conn) bool {
		if c.username == "" {
			return false
		}
		if ep := srv.tlsEndpoint(c.listener); ep != nil && ep.cfg.UseCNAsUsername {
			return false
		}
		return cur == nil || cur.Fingerprint(c.username) != old.Fingerprint(c.username)
	})
}

// recheckACL applies a new ACL to what the old one allowed: subscriptions
// it no longer allows are removed, and queued messages their session may no
// longer read are dropped. Messages queued from now on are checked by
// session.deliver against the new ACL, which it reads under the session
// lock, so nothing checked against the old ACL slips in after the filter.
func (srv *Server) recheckACL(acl *auth.ACL) {
	removed := 0
	srv.subs.Walk(func(sub topic.Sub[subscriber]) bool {
		s, ok := sub.Key.(*session)
		if !ok {
			return true
		}
		s.mu.Lock()
		who := aclClient(ClientInfo{ClientID: s.clientID, Username: s.username})
		s.mu.Unlock()
		if acl.CanSubscribe(who, sub.Filter) {
			return true
		}
		full := sub.Filter
		if sub.Group != "" {
			full = "$share/" + sub.Group + "/" + sub.Filter
		}
		if srv.unsubscribe(s, full) {
			removed++
			srv.stats.SubscriptionsRevoked.Add(1)
			srv.log.Info("Subscription removed: the ACL no longer allows it", "client", s.clientID, "filter", full)
		}
		return true
	})

	srv.mu.Lock()
	sessions := slices.Collect(maps.Values(srv.sessions))
	srv.mu.Unlock()
	dropped := 0
	for _, s := range sessions {
		s.mu.Lock()
		who := aclClient(ClientInfo{ClientID: s.clientID, Username: s.username})
		// Rotate the whole queue once, keeping what may still be read, in
		// order. In-flight messages were already sent and stay.
		for range s.queue.len() {
			d := *s.queue.peek()
			s.queue.pop()
			if acl.CanRead(who, d.msg.Topic) {
				s.queue.push(d)
				continue
			}
			s.queuedBytes -= d.msg.size()
			dropped++
		}
		s.mu.Unlock()
	}
	srv.stats.ACLDeniedRead.Add(int64(dropped))
	if removed > 0 || dropped > 0 {
		srv.log.Info("ACL re-checked", "subscriptionsRemoved", removed, "queuedMessagesDropped", dropped)
	}
}

// Watch re-applies the broker's files whenever they change, until ctx is
// done or the server shuts down: it watches the directories of the config
// file, the password and ACL files and the TLS files, and calls Reload a
// moment after any event in them. It returns an error if the watches
// cannot be set up; later problems are logged. Call it once.
func (srv *Server) Watch(ctx context.Context) error {
	if !srv.files.watchOnce.CompareAndSwap(false, true) {
		return errors.New("watch files: already watching")
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch files: %w", err)
	}
	watched := make(map[string]bool)
	if err := srv.syncWatches(w, watched); err != nil {
		_ = w.Close()
		return err
	}
	srv.files.bgWG.Add(1)
	go srv.watchLoop(ctx, w, watched)
	return nil
}

func (srv *Server) watchLoop(ctx context.Context, w *fsnotify.Watcher, watched map[string]bool) {
	defer srv.files.bgWG.Done()
	defer func() { _ = w.Close() }()
	var due <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-srv.files.stop:
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			srv.log.Debug("File event", "path", ev.Name, "op", ev.Op.String())
			// The delay counts from the first event, so a directory that
			// never stops changing cannot postpone the reload forever.
			if due == nil {
				due = time.After(reloadDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			// An overflowed event queue lost events: reload to be sure.
			srv.log.Warn("Watching files failed", "error", err)
			if due == nil {
				due = time.After(reloadDebounce)
			}
		case <-due:
			due = nil
			_ = srv.Reload() // failures are logged, counted and shown by Health
			if err := srv.syncWatches(w, watched); err != nil {
				srv.log.Warn("Watching files failed", "error", err)
			}
		}
	}
}

// syncWatches makes w watch exactly the directories of the files in use.
func (srv *Server) syncWatches(w *fsnotify.Watcher, watched map[string]bool) error {
	want := srv.watchedDirs()
	var errs []error
	for dir := range want {
		if !watched[dir] {
			if err := w.Add(dir); err != nil {
				errs = append(errs, fmt.Errorf("watch %s: %w", dir, err))
				continue
			}
			watched[dir] = true
		}
	}
	for dir := range watched {
		if !want[dir] {
			_ = w.Remove(dir)
			delete(watched, dir)
		}
	}
	return errors.Join(errs...)
}

// watchedDirs returns the directories of every file the broker reloads.
func (srv *Server) watchedDirs() map[string]bool {
	f := &srv.files
	f.reloadMu.Lock()
	paths := []string{f.source.Path}
	f.reloadMu.Unlock()
	cfg := srv.cfg.Load()
	if f.ownAuth {
		paths = append(paths, cfg.PasswordFile)
	}
	if f.ownACL {
		paths = append(paths, cfg.ACLFile)
	}
	f.tls.Range(func(_, v any) bool {
		ep := v.(*tlsEndpoint)
		paths = append(paths, ep.cfg.CertFile, ep.cfg.KeyFile, ep.cfg.CAFile)
		return true
	})
	dirs := make(map[string]bool)
	for _, p := range paths {
		if p != "" {
			dirs[filepath.Dir(p)] = true
		}
	}
	return dirs
}

// Health reports readiness and the revisions of the files in force.
func (srv *Server) Health() Health {
	f := &srv.files
	h := Health{Version: Version, Listeners: make(map[string]string)}
	srv.mu.Lock()
	for _, l := range srv.listeners {
		h.Listeners[l.name] = l.ln.Addr().String()
	}
	h.Ready = !srv.closing && len(srv.listeners) > 0
	srv.mu.Unlock()
	if acl := f.acl.Load(); acl != nil {
		h.ACLRevision = acl.Revision()
	}
	if pf := f.passwords.Load(); pf != nil {
		h.UsersRevision = pf.Revision()
	}
	f.statusMu.Lock()
	defer f.statusMu.Unlock()
	h.Files = maps.Clone(f.status)
	if h.Files == nil {
		h.Files = make(map[string]FileStatus)
	}
	h.ConfigRevision = f.status[fileConfig].Revision
	h.LastReload = f.lastReload
	h.LastReloadError = f.lastReloadError
	h.RestartRequired = slices.Clone(f.restartRequired)
	return h
}

func (srv *Server) fileStatus(key string) FileStatus {
	srv.files.statusMu.Lock()
	defer srv.files.statusMu.Unlock()
	return srv.files.status[key]
}

func (srv *Server) recordLoaded(key, path, rev string) {
	f := &srv.files
	f.statusMu.Lock()
	defer f.statusMu.Unlock()
	if f.status == nil {
		f.status = make(map[string]FileStatus)
	}
	f.status[key] = FileStatus{Path: path, Revision: rev, LoadedAt: time.Now()}
}

func (srv *Server) recordFailed(key, path string, err error) {
	f := &srv.files
	f.statusMu.Lock()
	defer f.statusMu.Unlock()
	st := f.status[key]
	if st.Revision == "" {
		st.Path = path // nothing loaded yet from an earlier path
	}
	st.Error, st.FailedAt = err.Error(), time.Now()
	f.status[key] = st
}

func (srv *Server) forgetStatus(key string) {
	f := &srv.files
	f.statusMu.Lock()
	defer f.statusMu.Unlock()
	delete(f.status, key)
}
