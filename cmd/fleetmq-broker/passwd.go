package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/fleetmq/fleetmq/broker/auth"
)

// runPasswd implements `fleetmq-broker passwd FILE USER`: it sets USER's
// password in a Mosquitto-format password file, as `mosquitto_passwd FILE
// USER` does, writing a "$7$" (PBKDF2-SHA512) hash. The password is asked
// for twice without echo on a terminal, or read as one line from stdin
// otherwise (for scripts). A missing file is created with mode 0600; an
// existing one keeps its mode and every other line, and is replaced
// atomically so a broker watching it never reads half a file.
func runPasswd(args []string, stdin io.Reader, stderr io.Writer) error {
	flags := flag.NewFlagSet("fleetmq-broker passwd", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fleetmq-broker passwd FILE USER\n\n"+
			"Creates or updates USER in the Mosquitto-format password FILE.\n"+
			"The password is prompted for on a terminal, or read as one line from stdin.\n")
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if flags.NArg() != 2 {
		flags.Usage()
		return errors.New("passwd needs FILE and USER")
	}
	path, user := flags.Arg(0), flags.Arg(1)
	if err := auth.ValidateUsername(user); err != nil {
		return fmt.Errorf("user %q cannot be stored: %w", user, err)
	}
	// Write through a symlink to the file it points at, so the link stays.
	target, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		target = path
	} else if err != nil {
		return fmt.Errorf("password file: %w", err)
	}
	data, err := os.ReadFile(target)
	mode := fs.FileMode(0o600)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	case err != nil:
		return fmt.Errorf("read password file: %w", err)
	default:
		if _, err := auth.ParsePasswordFile(path, data); err != nil {
			return fmt.Errorf("%w (fix the file first; nothing was changed)", err)
		}
		if st, err := os.Stat(target); err == nil {
			mode = st.Mode().Perm()
		}
	}
	password, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	hash, err := auth.HashPassword(password)
	clear(password)
	if err != nil {
		return err
	}
	updated, err := auth.UpdatePasswordFile(data, user, hash)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(target, updated, mode); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "Password of %q set in %s\n", user, path)
	return nil
}

// readPassword prompts twice without echo on a terminal, or reads one line
// from a pipe or file.
func readPassword(stdin io.Reader, stderr io.Writer) ([]byte, error) {
	var password []byte
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		fmt.Fprint(stderr, "Password: ")
		p1, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(stderr, "Reenter password: ")
		p2, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		if !bytes.Equal(p1, p2) {
			return nil, errors.New("the passwords do not match; nothing was changed")
		}
		password = p1
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read password from stdin: %w", err)
		}
		password = []byte(strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"))
	}
	if len(password) == 0 {
		return nil, errors.New("empty password; nothing was changed")
	}
	return password, nil
}

// writeFileAtomic replaces path with data via a temporary file in the same
// directory and a rename.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // no-op after the rename
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write password file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write password file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write password file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	return nil
}
