package broker

import (
	"net"

	"github.com/gorilla/websocket"
)

// NewWebSocketConn exposes the broker's WebSocket net.Conn adapter to the
// external tests, which use it on the client side to run MQTT clients
// (paho.golang, the raw test client) over WebSocket.
func NewWebSocketConn(ws *websocket.Conn) net.Conn { return &wsConn{ws: ws} }

// RevisionOf is the revision the broker reports for a file's content.
func RevisionOf(data []byte) string { return contentRevision(data) }

// MinReadBuffer is the size of a connection's first read.
const MinReadBuffer = minReadBuffer
