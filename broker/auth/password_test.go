package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	mosquittoPasswdBin = "/usr/bin/mosquitto_passwd"
	mosquittoBin       = "/usr/sbin/mosquitto"
	mosquittoPubBin    = "/usr/bin/mosquitto_pub"
)

// requireBinary fails the test when a Debian test peer is missing: these
// tests prove compatibility with real Mosquitto files, and skipping them
// would let an incompatibility land unnoticed.
func requireBinary(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing (%v); run hack/install-test-deps.sh to install the Mosquitto test peers", path, err)
	}
}

// mosquittoPasswd runs mosquitto_passwd in batch mode.
func mosquittoPasswd(t *testing.T, args ...string) {
	t.Helper()
	requireBinary(t, mosquittoPasswdBin)
	out, err := exec.Command(mosquittoPasswdBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_passwd %v: %v\n%s", args[:len(args)-1], err, out)
	}
}

func TestParseMosquittoPasswdFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwd")
	users := []struct {
		name, password string
		sha512         bool // -H sha512: the $6$ format
	}{
		{"alice", "correct horse battery staple", false},
		{"bob", "pässwörd ✓", false},
		{"carol", "legacy-1.6", true},
		{"dave.with.dots@example", "x", true},
		{"erin", " spaces around ", false},
	}
	for i, u := range users {
		args := []string{"-b"}
		if i == 0 {
			args = append(args, "-c")
		}
		if u.sha512 {
			args = append(args, "-H", "sha512")
		}
		mosquittoPasswd(t, append(args, file, u.name, u.password)...)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("alice:$7$101$")) || !bytes.Contains(data, []byte("carol:$6$")) {
		t.Fatalf("mosquitto_passwd did not write the expected formats:\n%s", data)
	}

	p, err := LoadPasswordFile(file)
	if err != nil {
		t.Fatalf("LoadPasswordFile: %v", err)
	}
	for _, u := range users {
		if !p.Verify(u.name, []byte(u.password)) {
			t.Errorf("Verify(%q, right password) = false", u.name)
		}
		if p.Verify(u.name, []byte(u.password+"x")) {
			t.Errorf("Verify(%q, wrong password) = true", u.name)
		}
		if p.Verify(u.name, nil) {
			t.Errorf("Verify(%q, nil) = true", u.name)
		}
		if !p.Has(u.name) {
			t.Errorf("Has(%q) = false", u.name)
		}
	}
	if p.Verify("mallory", []byte("correct horse battery staple")) {
		t.Error("Verify(unknown user) = true")
	}
	if p.Verify("Alice", []byte("correct horse battery staple")) {
		t.Error("usernames must be case sensitive")
	}
	want := []string{"alice", "bob", "carol", "dave.with.dots@example", "erin"}
	if got := p.Users(); !slices.Equal(got, want) {
		t.Errorf("Users() = %q, want %q", got, want)
	}
}

// TestUpdateMosquittoPasswdFile changes one password in a mosquitto_passwd
// file the way the operator will, and checks the other entries survive
// byte for byte and only the changed user's fingerprint moves.
func TestUpdateMosquittoPasswdFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwd")
	mosquittoPasswd(t, "-c", "-b", file, "alice", "a-pass")
	mosquittoPasswd(t, "-H", "sha512", "-b", file, "bob", "b-pass")
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	before, err := ParsePasswordFile("passwd", orig)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := HashPassword([]byte("new-a-pass"))
	if err != nil {
		t.Fatal(err)
	}
	updated, err := UpdatePasswordFile(orig, "alice", hash)
	if err != nil {
		t.Fatal(err)
	}
	after, err := ParsePasswordFile("passwd", updated)
	if err != nil {
		t.Fatalf("parse updated file: %v\n%s", err, updated)
	}
	if !after.Verify("alice", []byte("new-a-pass")) || after.Verify("alice", []byte("a-pass")) {
		t.Error("alice's password was not replaced")
	}
	if !after.Verify("bob", []byte("b-pass")) {
		t.Error("bob's entry no longer verifies")
	}
	bobLine := regexp.MustCompile(`(?m)^bob:.*\n`)
	if !bytes.Equal(bobLine.Find(orig), bobLine.Find(updated)) {
		t.Errorf("bob's line changed:\n%s\n%s", orig, updated)
	}
	if before.Fingerprint("alice") == after.Fingerprint("alice") {
		t.Error("alice's fingerprint did not change with her password")
	}
	if before.Fingerprint("bob") != after.Fingerprint("bob") {
		t.Error("bob's fingerprint changed although his entry did not")
	}
	if before.Revision() == after.Revision() {
		t.Error("revision did not change with the content")
	}
}

func TestHashPassword(t *testing.T) {
	h1, err := HashPassword([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	h2, err := HashPassword([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	// Same shape as mosquitto_passwd: 12-byte salt (16 base64 characters)
	// and a 64-byte hash (88 base64 characters with padding).
	shape := regexp.MustCompile(`^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$`)
	if !shape.MatchString(h1) {
		t.Errorf("HashPassword = %q, want the mosquitto_passwd $7$ shape", h1)
	}
	if h1 == h2 {
		t.Error("two hashes of one password are equal; the salt is not random")
	}
	empty, err := HashPassword(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePasswordFile("passwd", []byte("u:"+h1+"\nempty:"+empty+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Verify("u", []byte("secret")) || p.Verify("u", []byte("Secret")) {
		t.Error("HashPassword output does not verify as expected")
	}
	if !p.Verify("empty", []byte{}) {
		t.Error("an empty password does not verify against its own hash")
	}
	if p.Verify("empty", nil) {
		t.Error("a missing password (nil) verified")
	}
}

// Valid entries made by mosquitto_passwd, for hand-made files.
const (
	sha512Entry = "$6$qQpu2mypTpFYZ1lm$VtaJmanPtP3qt2GCemfVeTNlkDjW5wI1ZyD9V7sgDpg9/ys/y3t2yM1EXD6wACgHe5wvclW0HH0NioLdRss74g==" // password "secret2"
	pbkdf2Salt  = "zJSovYjgZaSpkr9j"
	pbkdf2Hash  = "OpiNDjvwRrXv14SwmeZSTVjaedA1W1dsBUVbJz23e+EyTbtRgumypoZeV49lWqN+Vz7o//6iTfFeNeyio9QkNw=="
	pbkdf2Entry = "$7$101$" + pbkdf2Salt + "$" + pbkdf2Hash // password "secret"
)

func TestParsePasswordFileLayout(t *testing.T) {
	data := "# comment\r\n\r\n   \t\n  # indented comment\n  alice : " + pbkdf2Entry + "  \r\nbob:" + sha512Entry
	p, err := ParsePasswordFile("passwd", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Verify("alice", []byte("secret")) {
		t.Error("alice with blanks around the fields and CRLF does not verify")
	}
	if !p.Verify("bob", []byte("secret2")) {
		t.Error("bob on a last line without newline does not verify")
	}
	unpadded := strings.TrimRight(pbkdf2Entry, "=")
	p, err = ParsePasswordFile("passwd", []byte("alice:"+unpadded+"\n"))
	if err != nil || !p.Verify("alice", []byte("secret")) {
		t.Errorf("unpadded base64 not accepted: %v", err)
	}
	p, err = ParsePasswordFile("passwd", nil)
	if err != nil || len(p.Users()) != 0 || p.Verify("", []byte("")) {
		t.Errorf("empty file: %v, users %q", err, p.Users())
	}
}

func TestParsePasswordFileErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		line int
		msg  string
	}{
		{"plain text password", "# c\nalice:hunter2\n", 2, `user "alice": password is not hashed; hash the file with mosquitto_passwd -U`},
		{"no colon", "\nalice\n", 2, `want username:hash, found no ':'`},
		{"no hash", "alice:   \n", 1, `user "alice" has no password hash`},
		{"empty username", " :" + pbkdf2Entry, 1, `username is empty`},
		{"comment username", "ok:" + pbkdf2Entry + "\n  x:1\n#c:" + pbkdf2Entry, 2, `user "x": password is not hashed; hash the file with mosquitto_passwd -U`},
		{"duplicate", "a:" + pbkdf2Entry + "\nb:" + sha512Entry + "\na:" + sha512Entry + "\n", 3, `user "a" is already defined on line 1`},
		{"unknown type", "a:$5$abc$def\n", 1, `user "a": unknown password hash type, want $6$ (sha512) or $7$ (sha512-pbkdf2)`},
		{"$7$ missing field", "a:$7$" + pbkdf2Salt + "$" + pbkdf2Hash, 1, `user "a": invalid $7$ password hash, want $7$<iterations>$<salt>$<hash>`},
		{"$6$ extra field", "a:" + sha512Entry + "$x", 1, `user "a": invalid $6$ password hash, want $6$<salt>$<hash>`},
		{"iterations not a number", "a:$7$1e3$" + pbkdf2Salt + "$" + pbkdf2Hash, 1, `user "a": invalid $7$ password hash: the iteration count is not a number`},
		{"iterations signed", "a:$7$+101$" + pbkdf2Salt + "$" + pbkdf2Hash, 1, `user "a": invalid $7$ password hash: the iteration count is not a number`},
		{"iterations zero", "a:$7$0$" + pbkdf2Salt + "$" + pbkdf2Hash, 1, `user "a": invalid $7$ password hash: iteration count 0 is outside 1..1000000`},
		{"iterations too many", "a:$7$1000001$" + pbkdf2Salt + "$" + pbkdf2Hash, 1, `user "a": invalid $7$ password hash: iteration count 1000001 is outside 1..1000000`},
		{"salt not base64", "a:$7$101$zJSovYjg*aSpkr9j$" + pbkdf2Hash, 1, `user "a": invalid password salt: not valid base64`},
		{"salt too short", "a:$7$101$zJSovYjgZaSp$" + pbkdf2Hash, 1, `user "a": invalid password salt: decodes to 9 bytes, want 12`},
		{"hash too short", "a:$7$101$" + pbkdf2Salt + "$" + pbkdf2Hash[:40], 1, `user "a": invalid password hash: decodes to 30 bytes, want 64`},
		{"trailing colon field", "a:" + pbkdf2Entry + ":x", 1, `user "a": invalid password hash: not valid base64`},
		{"invalid UTF-8 username", "\xffa:" + pbkdf2Entry, 1, `username is not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePasswordFile("passwd", []byte(tt.text))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v, want a *ParseError", err)
			}
			want := fmt.Sprintf("passwd:%d: %s", tt.line, tt.msg)
			if err.Error() != want {
				t.Errorf("error = %q\nwant    %q", err, want)
			}
			// No part of a secret may reach a log line.
			for _, secret := range []string{"hunter2", pbkdf2Salt, pbkdf2Hash[:20], sha512Entry[3:20], "abc$def"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q leaks %q", err, secret)
				}
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	data := []byte("a:" + pbkdf2Entry + "\nb:" + sha512Entry + "\n")
	p1, err := ParsePasswordFile("passwd", data)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := ParsePasswordFile("other-name", append([]byte("# moved\n"), data...))
	if err != nil {
		t.Fatal(err)
	}
	fa, fb := p1.Fingerprint("a"), p1.Fingerprint("b")
	if len(fa) != 16 || fa == fb {
		t.Errorf("fingerprints %q and %q: want 16 characters, distinct per user", fa, fb)
	}
	if p2.Fingerprint("a") != fa || p2.Fingerprint("b") != fb {
		t.Error("fingerprint changed although the entry did not")
	}
	if p1.Revision() == p2.Revision() {
		t.Error("revision did not change with the content")
	}
	if p1.Fingerprint("nobody") != "" {
		t.Error("fingerprint of an unknown user is not empty")
	}
	for _, part := range []string{pbkdf2Salt, pbkdf2Hash} {
		if strings.Contains(part, fa) || strings.Contains(fa, part[:8]) {
			t.Errorf("fingerprint %q overlaps the stored hash", fa)
		}
	}
}

func TestUpdatePasswordFile(t *testing.T) {
	h, err := HashPassword([]byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in, user, want string
	}{
		{"append to empty", "", "a", "a:" + h + "\n"},
		{"append after last newline", "# c\nb:x\n", "a", "# c\nb:x\na:" + h + "\n"},
		{"append to file without final newline", "b:x", "a", "b:x\na:" + h + "\n"},
		{"append keeps CRLF", "b:x\r\n", "a", "b:x\r\na:" + h + "\r\n"},
		{"replace in the middle", "# c\r\n\r\nb:x\r\n a :old\r\nc:y", "a", "# c\r\n\r\nb:x\r\na:" + h + "\r\nc:y"},
		{"replace last line without newline", "b:x\na:old", "a", "b:x\na:" + h},
		{"drop later duplicates", "a:1\nb:x\na:2\n", "a", "a:" + h + "\nb:x\n"},
		{"comment with the name is kept", "#a:old\na:old\n", "a", "#a:old\na:" + h + "\n"},
		{"prefix of another user", "ab:x\n", "a", "ab:x\na:" + h + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			got, err := UpdatePasswordFile(in, tt.user, h)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("UpdatePasswordFile(%q) =\n%q\nwant\n%q", tt.in, got, tt.want)
			}
			if string(in) != tt.in {
				t.Error("the input was modified")
			}
		})
	}
}

func TestUpdatePasswordFileRefusesBadInput(t *testing.T) {
	h, err := HashPassword([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ user, hash string }{
		{"a:b", h}, {"a\nb", h}, {"", h}, {"#a", h}, {" a", h}, {"a", "plain"}, {"a", h + "\nb:" + h},
	} {
		in := []byte("keep:" + h + "\n")
		out, err := UpdatePasswordFile(in, tc.user, tc.hash)
		if err == nil {
			t.Errorf("UpdatePasswordFile(%q, %q) accepted bad input", tc.user, tc.hash)
		}
		if string(out) != string(in) {
			t.Errorf("UpdatePasswordFile(%q, %q) changed the file on error: %q", tc.user, tc.hash, out)
		}
	}
}

// TestUnknownUserCostsLikeAKnownOne checks that unknown users are verified
// against a dummy with the file's most common parameters. (Timing itself is
// not asserted: the machine is shared and noisy.)
func TestUnknownUserCostsLikeAKnownOne(t *testing.T) {
	e200 := "$7$200$" + pbkdf2Salt + "$" + pbkdf2Hash
	p, err := ParsePasswordFile("passwd", []byte("a:"+e200+"\nb:"+e200+"\nc:"+pbkdf2Entry+"\nd:"+sha512Entry+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.dummy.kind != hashSHA512PBKDF2 || p.dummy.iterations != 200 {
		t.Errorf("dummy = $%d$ with %d iterations, want $7$ with 200", p.dummy.kind, p.dummy.iterations)
	}
	p, err = ParsePasswordFile("passwd", []byte("d:"+sha512Entry+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.dummy.kind != hashSHA512 {
		t.Errorf("dummy for a $6$-only file is $%d$, want $6$", p.dummy.kind)
	}
}

func TestLoadPasswordFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadPasswordFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: error = %v, want fs.ErrNotExist", err)
	}
	bad := filepath.Join(dir, "passwd")
	if err := os.WriteFile(bad, []byte("ok:"+pbkdf2Entry+"\nbad\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPasswordFile(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":2: ") {
		t.Errorf("error = %v, want it to start with %q", err, bad+":2: ")
	}
}
