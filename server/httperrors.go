package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// maxHeaderBytes bounds a request's line and headers on the HTTP port
// (net/http allows a little more). It is above gateway.DefaultMaxHeaderBytes,
// so the gateway's own limit answers first on its paths.
const maxHeaderBytes = 64 << 10

// net/http answers some requests itself, before any handler runs —
// request headers over MaxHeaderBytes (431), a request it cannot parse
// (400), an unknown transfer coding (501) — in plain text. Every other
// answer of MeshGuard's HTTP port is JSON with "error" and "message", and
// clients (the CLI, agents' SDKs) parse it so; jsonErrorsListener makes
// these few JSON too. net/http offers no hook for them: it writes them
// straight to the connection, as one Write of a fixed shape, which is what
// the connection below recognises and replaces. TestServerErrorsAreJSON
// fails should a Go release change that shape.
type jsonErrorsListener struct{ net.Listener }

func (l jsonErrorsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorsConn{Conn: c}, nil
}

// goErrorHeaders follows the status line of net/http's own answers. A
// handler's response never has it there: net/http writes a handler's
// headers sorted (Connection before Content-Type) and adds a Date.
var goErrorHeaders = []byte("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")

// maxGoError bounds what is inspected: net/http's answers are short.
const maxGoError = 512

type jsonErrorsConn struct{ net.Conn }

func (c *jsonErrorsConn) Write(p []byte) (int, error) {
	if len(p) <= maxGoError && bytes.HasPrefix(p, []byte("HTTP/1.1 ")) {
		if status, msg, ok := parseGoError(p); ok {
			if _, err := c.Conn.Write(jsonError(status, msg)); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

// ReadFrom and CloseWrite keep what net/http does with a *net.TCPConn:
// sendfile for bodies, and a half-close before hanging up on a 431.
func (c *jsonErrorsConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c}, r)
}

func (c *jsonErrorsConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// parseGoError reads "HTTP/1.1 431 Request Header Fields Too Large" +
// goErrorHeaders + text, net/http's shape. It looks no further than the
// status line for anything else (every response of a handler passes here).
func parseGoError(p []byte) (status int, text string, ok bool) {
	end := bytes.IndexByte(p, '\r')
	if end < 0 || !bytes.HasPrefix(p[end:], goErrorHeaders) {
		return 0, "", false
	}
	line := p[len("HTTP/1.1 "):end]
	if len(line) < 4 || line[3] != ' ' {
		return 0, "", false
	}
	status, err := strconv.Atoi(string(line[:3]))
	if err != nil || status < 400 || status > 599 {
		return 0, "", false
	}
	return status, string(p[end+len(goErrorHeaders):]), true
}

// jsonError is the JSON answer standing in for net/http's plain one.
func jsonError(status int, text string) []byte {
	// net/http's text repeats the status ("400 Bad Request: missing
	// required Host header"); what follows it is the message.
	msg := strings.TrimPrefix(strings.TrimPrefix(text, strconv.Itoa(status)+" "+http.StatusText(status)), ": ")
	if msg == "" {
		msg = "the request is not valid HTTP/1.1"
	}
	code := "bad_request"
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		code, msg = "headers_too_large", fmt.Sprintf("the request line and headers exceed the limit of %d bytes", maxHeaderBytes)
	case http.StatusNotImplemented:
		code = "not_implemented"
	}
	body, _ := json.Marshal(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{code, msg})
	body = append(body, '\n')
	head := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		status, http.StatusText(status), len(body))
	return append([]byte(head), body...)
}
