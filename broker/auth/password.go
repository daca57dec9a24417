package auth

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Mosquitto's hash parameters (src/password_mosq.h in Mosquitto 2.0).
const (
	// DefaultIterations is the PBKDF2 round count HashPassword uses. It is
	// what mosquitto_passwd 2.0 writes, so a file made here costs a CONNECT
	// exactly what a Mosquitto user's existing file does.
	DefaultIterations = 101
	// saltLen and hashLen are fixed by Mosquitto: it drops entries whose
	// decoded salt or hash has any other length.
	saltLen = 12
	hashLen = sha512.Size
	// maxIterations bounds the work one CONNECT can cost. Mosquitto has no
	// bound; a typo like 1010000000 would otherwise make every login of
	// that user take minutes of CPU.
	maxIterations = 1_000_000
)

type hashKind uint8

const (
	hashSHA512       hashKind = 6 // $6$: SHA-512(password || salt)
	hashSHA512PBKDF2 hashKind = 7 // $7$: PBKDF2-HMAC-SHA512
)

// passwordEntry is one decoded hash.
type passwordEntry struct {
	kind       hashKind
	iterations int
	salt       []byte
	hash       []byte
	// fingerprint is computed at parse time so that the stored hash text
	// itself need not be kept.
	fingerprint string
}

// matches hashes password the entry's way and compares in constant time.
func (e *passwordEntry) matches(password []byte) bool {
	var sum []byte
	switch e.kind {
	case hashSHA512:
		h := sha512.New()
		h.Write(password)
		h.Write(e.salt)
		sum = h.Sum(nil)
	case hashSHA512PBKDF2:
		var err error
		sum, err = pbkdf2.Key(sha512.New, string(password), e.salt, e.iterations, hashLen)
		if err != nil {
			return false
		}
	default:
		return false
	}
	return subtle.ConstantTimeCompare(sum, e.hash) == 1
}

// PasswordFile is a parsed Mosquitto password file. It is immutable after
// parsing and safe for concurrent use.
type PasswordFile struct {
	entries  map[string]*passwordEntry
	users    []string
	revision string
	// dummy is verified against for unknown usernames so that a failed
	// login takes about as long whether or not the user exists.
	dummy passwordEntry
}

// LoadPasswordFile reads and parses the password file at path; parse errors
// name the path.
func LoadPasswordFile(path string) (*PasswordFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read password file: %w", err)
	}
	return ParsePasswordFile(path, data)
}

// ParsePasswordFile parses a password file in mosquitto_passwd's format (see
// the package doc). name is what errors call the file. Every error is a
// *ParseError with the line it is about; no message contains any part of a
// password hash.
func ParsePasswordFile(name string, data []byte) (*PasswordFile, error) {
	p := &PasswordFile{entries: make(map[string]*passwordEntry), revision: revisionOf(data)}
	firstLine := make(map[string]int)
	err := forEachLine(data, func(n int, line string) error {
		username, hashText, ok, msg := splitPasswordLine(line)
		if msg != "" {
			return parseErrorf(name, n, "%s", msg)
		}
		if !ok {
			return nil
		}
		if err := ValidateUsername(username); err != nil {
			return parseErrorf(name, n, "%v", err)
		}
		if prev, dup := firstLine[username]; dup {
			// Mosquitto would keep one of the two without saying which;
			// mosquitto_passwd never writes a user twice.
			return parseErrorf(name, n, "user %q is already defined on line %d", username, prev)
		}
		e, err := parseHash(hashText)
		if err != nil {
			return parseErrorf(name, n, "user %q: %v", username, err)
		}
		e.fingerprint = fingerprintOf(username, hashText)
		firstLine[username] = n
		p.entries[username] = e
		p.users = append(p.users, username)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(p.users)
	p.dummy = dummyFor(p.entries)
	return p, nil
}

// splitPasswordLine splits "username:hash". ok is false for blank and
// comment lines; msg says what is wrong with a malformed one.
func splitPasswordLine(line string) (username, hashText string, ok bool, msg string) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", "", false, ""
	}
	user, rest, found := strings.Cut(line, ":")
	if !found {
		// Mosquitto skips such a line silently; it is almost always a
		// plain-text password or a mangled entry, so say so.
		return "", "", false, "want username:hash, found no ':'"
	}
	user, rest = strings.TrimSpace(user), strings.TrimSpace(rest)
	if rest == "" {
		return "", "", false, fmt.Sprintf("user %q has no password hash", user)
	}
	return user, rest, true, ""
}

// ValidateUsername reports whether username can be stored in a password
// file: a non-empty UTF-8 string ([MQTT-1.5.4-1]) without U+0000
// ([MQTT-1.5.4-2]), without ':' (the field separator) or line breaks, not
// starting with '#' (a comment) and without surrounding blanks (which
// Mosquitto trims away).
func ValidateUsername(username string) error {
	switch {
	case username == "":
		return errors.New("username is empty")
	case len(username) > 65535:
		return fmt.Errorf("username is %d bytes, the limit is 65535", len(username))
	case !utf8.ValidString(username):
		return errors.New("username is not valid UTF-8")
	case strings.ContainsAny(username, ":\n\r\x00"):
		return fmt.Errorf("username %q contains ':', a line break or U+0000", username)
	case username[0] == '#':
		return fmt.Errorf("username %q starts with '#', which makes the line a comment", username)
	case strings.TrimSpace(username) != username:
		return fmt.Errorf("username %q starts or ends with a blank", username)
	}
	return nil
}

// parseHash decodes "$6$salt$hash" or "$7$iterations$salt$hash". Errors
// never quote the text, which may be a plain-text password put there by
// mistake.
func parseHash(text string) (*passwordEntry, error) {
	if !strings.HasPrefix(text, "$") {
		return nil, errors.New("password is not hashed; hash the file with mosquitto_passwd -U")
	}
	fields := strings.Split(text[1:], "$")
	e := &passwordEntry{}
	switch fields[0] {
	case "6":
		if len(fields) != 3 {
			return nil, errors.New("invalid $6$ password hash, want $6$<salt>$<hash>")
		}
		e.kind = hashSHA512
		fields = fields[1:]
	case "7":
		if len(fields) != 4 {
			return nil, errors.New("invalid $7$ password hash, want $7$<iterations>$<salt>$<hash>")
		}
		e.kind = hashSHA512PBKDF2
		n, err := strconv.Atoi(fields[1])
		if err != nil || fields[1][0] == '+' || fields[1][0] == '-' {
			return nil, errors.New("invalid $7$ password hash: the iteration count is not a number")
		}
		if n < 1 || n > maxIterations {
			return nil, fmt.Errorf("invalid $7$ password hash: iteration count %d is outside 1..%d", n, maxIterations)
		}
		e.iterations = n
		fields = fields[2:]
	default:
		return nil, errors.New("unknown password hash type, want $6$ (sha512) or $7$ (sha512-pbkdf2)")
	}
	var err error
	if e.salt, err = decodeBase64(fields[0], saltLen); err != nil {
		return nil, fmt.Errorf("invalid password salt: %w", err)
	}
	if e.hash, err = decodeBase64(fields[1], hashLen); err != nil {
		return nil, fmt.Errorf("invalid password hash: %w", err)
	}
	return e, nil
}

// decodeBase64 decodes standard base64 as mosquitto_passwd writes it, with
// padding; unpadded input is accepted too, as OpenSSL's decoder does.
func decodeBase64(s string, want int) ([]byte, error) {
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, errors.New("not valid base64")
	}
	if len(b) != want {
		return nil, fmt.Errorf("decodes to %d bytes, want %d", len(b), want)
	}
	return b, nil
}

// fingerprintOf hashes the stored entry. The hash text has a random salt,
// so a changed password changes the fingerprint, and the fingerprint says
// nothing usable about the password.
func fingerprintOf(username, hashText string) string {
	h := sha256.New()
	h.Write([]byte("fleetmq password fingerprint v1\x00"))
	h.Write([]byte(username))
	h.Write([]byte{0})
	h.Write([]byte(hashText))
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// dummyFor returns an entry with the file's most common hash parameters
// (the higher iteration count on a tie), so that verifying an unknown user
// costs what a typical known one does. Its hash is all zeros, which no
// password produces.
func dummyFor(entries map[string]*passwordEntry) passwordEntry {
	type params struct {
		kind       hashKind
		iterations int
	}
	counts := make(map[params]int)
	best, bestCount := params{hashSHA512PBKDF2, DefaultIterations}, 0
	for _, e := range entries {
		k := params{e.kind, e.iterations}
		counts[k]++
		c := counts[k]
		if c > bestCount || c == bestCount && k.iterations > best.iterations {
			best, bestCount = k, c
		}
	}
	return passwordEntry{
		kind:       best.kind,
		iterations: best.iterations,
		salt:       make([]byte, saltLen),
		hash:       make([]byte, hashLen),
	}
}

// Verify reports whether password is the password of username. The compare
// is constant-time, and an unknown username is verified against a dummy
// hash, so the time taken does not tell whether a user exists. A nil
// password (an MQTT CONNECT without the password flag) never verifies.
// Verification is CPU-heavy by design.
func (p *PasswordFile) Verify(username string, password []byte) bool {
	e, known := p.entries[username]
	if !known {
		e = &p.dummy
	}
	ok := e.matches(password)
	return known && password != nil && ok
}

// Has reports whether the file has an entry for username.
func (p *PasswordFile) Has(username string) bool {
	_, ok := p.entries[username]
	return ok
}

// Users returns the usernames in the file, sorted. The slice is a copy.
func (p *PasswordFile) Users() []string { return slices.Clone(p.users) }

// Fingerprint returns a short hash of username's stored password hash, or
// "" for an unknown user. It changes when the password changes, so on a
// reload the broker can disconnect exactly the clients whose password was
// changed, without keeping any secret around.
func (p *PasswordFile) Fingerprint(username string) string {
	if e, ok := p.entries[username]; ok {
		return e.fingerprint
	}
	return ""
}

// Revision identifies the file content: the first 16 hex characters of its
// SHA-256.
func (p *PasswordFile) Revision() string { return p.revision }

// HashPassword returns a new "$7$" hash of password with a random 12-byte
// salt and DefaultIterations rounds of PBKDF2-HMAC-SHA512, as
// mosquitto_passwd writes it, for a password file line.
func HashPassword(password []byte) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: read salt: %w", err)
	}
	sum, err := pbkdf2.Key(sha512.New, string(password), salt, DefaultIterations, hashLen)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return "$7$" + strconv.Itoa(DefaultIterations) + "$" +
		base64.StdEncoding.EncodeToString(salt) + "$" +
		base64.StdEncoding.EncodeToString(sum), nil
}

// UpdatePasswordFile returns data with username's entry set to hash: its
// first line is replaced in place (keeping that line's line ending) and any
// further lines for the same user are removed; a missing user is appended.
// Every other byte stays as it was, comments included. data is not
// modified.
//
// username must pass ValidateUsername and hash must be a valid $6$ or $7$
// hash (HashPassword's output is); anything else would corrupt the file,
// so it is refused with an error and data is returned unchanged.
func UpdatePasswordFile(data []byte, username string, hash string) ([]byte, error) {
	if err := ValidateUsername(username); err != nil {
		return data, fmt.Errorf("update password file: %w", err)
	}
	if _, err := parseHash(hash); err != nil {
		return data, fmt.Errorf("update password file: user %q: %w", username, err)
	}
	entry := username + ":" + hash
	out := make([]byte, 0, len(data)+len(entry)+2)
	found := false
	for rest := data; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		content := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		user, _, ok, _ := splitPasswordLine(string(content))
		if !ok || user != username {
			out = append(out, line...)
			continue
		}
		if !found {
			found = true
			out = append(out, entry...)
			out = append(out, line[len(content):]...) // the line's own ending
		}
	}
	if !found {
		eol := "\n"
		if bytes.Contains(data, []byte("\r\n")) {
			eol = "\r\n"
		}
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, eol...)
		}
		out = append(out, entry...)
		out = append(out, eol...)
	}
	return out, nil
}
