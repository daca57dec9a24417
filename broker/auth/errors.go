package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// ParseError is a problem at one line of a password or ACL file. Both
// parsers return it, so callers can get at the position with errors.As. Msg
// never contains a password hash or any other part of a password line
// except the username.
type ParseError struct {
	File string // the name the file was parsed under, usually its path
	Line int    // 1-based line number
	Msg  string // what is wrong, and where it helps, what is expected
}

// Error formats the error as "file:line: msg", the form editors and CI logs
// turn into a link.
func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

func parseErrorf(file string, line int, format string, args ...any) *ParseError {
	return &ParseError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// revisionOf returns a short content hash. Sixteen hex characters (64 bits)
// are plenty to tell revisions of one file apart and short enough for status
// fields and log lines.
func revisionOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// forEachLine calls fn for each line of data with its 1-based number and
// without its "\n" or "\r\n" terminator. A final line without a terminator
// is still a line; an empty data has no lines.
func forEachLine(data []byte, fn func(n int, line string) error) error {
	n := 0
	for len(data) > 0 {
		n++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if l := len(line); l > 0 && line[l-1] == '\r' {
			line = line[:l-1]
		}
		if err := fn(n, string(line)); err != nil {
			return err
		}
	}
	return nil
}
