//go:build !linux

package broker

import "net"

// rawSocket is Linux-only (see rawsock_linux.go). Elsewhere connections use
// net.Conn and writer goroutines.
type rawSocket struct{ headerBuffered bool }

func newRawSocket(net.Conn) *rawSocket { return nil }

func (*rawSocket) read([]byte) (int, error) { panic("rawSocket is Linux-only") }

func (*rawSocket) tryWrite([]byte) (int, bool, error) { panic("rawSocket is Linux-only") }
