package gateway_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// parsed is one request a rawUpstream parsed off a connection.
type parsed struct {
	Method, Target, Body string
	Upgrade              string // the Upgrade header
	Tunnel               bool   // parsed from bytes sent after a 101
}

// rawUpstream is a real HTTP/1.1 server on 127.0.0.1 that parses every
// request off its connections itself (http.ReadRequest), so it sees
// exactly what the gateway put on the wire: a request hidden in another's
// body, or one sent through an upgraded connection, shows up as a request
// of its own. It answers 101 to an Upgrade request and then, for
// "websocket", echoes the bytes back; for any other protocol it goes on
// parsing HTTP/1.1 requests off the upgraded connection, as an upstream
// speaking HTTP again over it (h2c) would serve them.
type rawUpstream struct {
	ln    net.Listener
	conns sync.WaitGroup
	mu    sync.Mutex
	got   []parsed
}

func newRawUpstream(t *testing.T) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	u.conns.Add(1)
	go func() {
		defer u.conns.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			go func() {
				defer u.conns.Done()
				u.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return u
}

func (u *rawUpstream) URL() string { return "http://" + u.ln.Addr().String() }

func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	// Bounds a connection a test left open; every test ends it sooner.
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	tunnel := false
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		up := req.Header.Get("Upgrade")
		u.mu.Lock()
		u.got = append(u.got, parsed{req.Method, req.RequestURI, string(body), up, tunnel})
		u.mu.Unlock()
		if up != "" && !tunnel {
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+up+"\r\n\r\n")
			if strings.EqualFold(up, "websocket") {
				_, _ = io.Copy(c, br) // echo until the gateway closes
				return
			}
			tunnel = true
			continue
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nupstream ok")
	}
}

// wait closes the listener and waits until every connection has been read
// to its end and closed: after it, every request the gateway ever sent is
// in requests. The caller must first make the gateway close its upstream
// connections.
func (u *rawUpstream) wait() []parsed {
	_ = u.ln.Close()
	u.conns.Wait()
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]parsed(nil), u.got...)
}

// rawConn is a client connection to the gateway that writes bytes as
// given and reads responses one by one.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, base string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{c, bufio.NewReader(c)}
}

func (c *rawConn) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// response reads the next response; ok is false when the gateway closed
// the connection instead.
func (c *rawConn) response(t *testing.T, method string) (res response, ok bool) {
	t.Helper()
	r, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return response{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{r.StatusCode, r.Header, body}, true
}
