package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// smuggleEnv is a gateway in front of a rawUpstream; the reader agent may
// read anything but admin* and write under api/ (testPolicies).
type smuggleEnv struct {
	gw, tok string
	up      *rawUpstream
	srv     *httptest.Server
	tr      *http.Transport
}

func newSmuggleEnv(t *testing.T) *smuggleEnv {
	t.Helper()
	f := enginetest.New(t, testPolicies, enginetest.Options{Answer: engine.AnswerAll})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newRawUpstream(t)
	tr := &http.Transport{}
	g, err := gateway.New(gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL()), Transport: tr, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return &smuggleEnv{gw: srv.URL, tok: tok, up: up, srv: srv, tr: tr}
}

// upstreamSaw ends the gateway and its upstream connections and returns
// every request the upstream ever parsed: none can still be on its way.
func (e *smuggleEnv) upstreamSaw() []parsed {
	e.srv.Close()
	e.tr.CloseIdleConnections()
	return e.up.wait()
}

// TestSmuggledRequestsNeverReachTheUpstream sends, over a raw connection,
// requests whose framing an upstream could read differently from the
// gateway — Content-Length beside Transfer-Encoding, two lengths, codings
// other than "chunked" alone — each followed by a request the policy
// denies. The gateway must refuse the request or forward it framed anew
// (the body as one body), and decide the next one itself: the upstream,
// which parses every byte it gets, must never see a request the engine did
// not allow.
func TestSmuggledRequestsNeverReachTheUpstream(t *testing.T) {
	t.Parallel()
	// A request an upstream would act on if it read it as one.
	const hidden = "GET /admin/secret HTTP/1.1\r\nHost: up\r\n\r\n"
	chunk := strconv.FormatInt(int64(len(hidden)), 16) + "\r\n" + hidden + "\r\n0\r\n\r\n"
	tests := []struct {
		name, head, body string
		// The gateway's answers on the connection, in order, until it
		// closes it: after a refusal it closes at once.
		statuses  []int
		forwarded []parsed // what the upstream may parse, in all
	}{
		{"a chunked body holding a request",
			"Transfer-Encoding: chunked\r\n", chunk,
			[]int{200, 403}, []parsed{{Method: "POST", Target: "/api/x", Body: hidden}}},
		{"Content-Length beside Transfer-Encoding: chunked",
			"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", chunk,
			[]int{200, 403}, []parsed{{Method: "POST", Target: "/api/x", Body: hidden}}},
		{"Transfer-Encoding: chunked beside a Content-Length covering more",
			"Transfer-Encoding: chunked\r\nContent-Length: " + strconv.Itoa(len(chunk)+len(hidden)) + "\r\n", chunk + hidden,
			// The chunked body ends where its last chunk says; the bytes
			// after it are a request to the gateway (not under /proxy).
			[]int{200, 404, 403}, []parsed{{Method: "POST", Target: "/api/x", Body: hidden}}},
		{"two different Content-Length values",
			"Content-Length: 0\r\nContent-Length: " + strconv.Itoa(len(hidden)) + "\r\n", hidden,
			[]int{400}, nil},
		{"Content-Length: 0, 41 in one line",
			"Content-Length: 0, " + strconv.Itoa(len(hidden)) + "\r\n", hidden,
			[]int{400}, nil},
		{"Transfer-Encoding: chunked, identity",
			"Transfer-Encoding: chunked, identity\r\n", chunk,
			[]int{501}, nil},
		{"Transfer-Encoding: identity",
			"Transfer-Encoding: identity\r\nContent-Length: 0\r\n", hidden,
			[]int{501}, nil},
		{"Transfer-Encoding twice",
			"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", chunk,
			[]int{501}, nil},
		{"a space before the colon",
			"Transfer-Encoding : chunked\r\nContent-Length: 0\r\n", chunk,
			[]int{400}, nil},
		{"a signed Content-Length",
			"Content-Length: +" + strconv.Itoa(len(hidden)) + "\r\n", hidden,
			[]int{400}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newSmuggleEnv(t)
			c := dialRaw(t, e.gw)
			c.send(t, "POST /proxy/api/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+e.tok+"\r\n"+tc.head+"\r\n"+tc.body+
				// Then a request the policy denies, on the same connection.
				"GET /proxy/admin/y HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+e.tok+"\r\nConnection: close\r\n\r\n")
			var statuses []int
			for method := "POST"; ; method = "GET" {
				res, ok := c.response(t, method)
				if !ok {
					break
				}
				statuses = append(statuses, res.Status)
				if len(statuses) > len(tc.statuses) {
					break
				}
			}
			if !slices.Equal(statuses, tc.statuses) {
				t.Errorf("the gateway answered %v, want %v", statuses, tc.statuses)
			}
			_ = c.Close()
			if got := e.upstreamSaw(); !slices.Equal(got, tc.forwarded) {
				t.Errorf("the upstream parsed %+v, want %+v", got, tc.forwarded)
			}
		})
	}
}

// TestUpgradesAreDecided: an Upgrade request is decided like any other —
// denied, it gets the denial and never reaches the upstream — and only a
// WebSocket upgrade is passed on. Any other protocol (h2c above all: an
// upstream that accepts it serves HTTP/2 requests over the connection,
// none of which the gateway would decide) is dropped from the request,
// which goes on as plain HTTP/1.1; the next request on the connection is
// then the gateway's to decide.
func TestUpgradesAreDecided(t *testing.T) {
	t.Parallel()
	const ws = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	const h2c = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
	// What a client speaking through an upgraded connection would send.
	const through = "GET /proxy/admin/secret HTTP/1.1\r\nHost: gw\r\n\r\n"

	denied := []struct{ name, target, upgrade, auth string }{
		{"a WebSocket upgrade the policy denies", "/proxy/admin/ws", ws, "yes"},
		{"a WebSocket upgrade without a token", "/proxy/docs/ws", ws, ""},
		{"an h2c upgrade the policy denies", "/proxy/admin/x", h2c, "yes"},
	}
	for _, tc := range denied {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newSmuggleEnv(t)
			c := dialRaw(t, e.gw)
			auth := ""
			if tc.auth != "" {
				auth = "Authorization: Bearer " + e.tok + "\r\n"
			}
			c.send(t, "GET "+tc.target+" HTTP/1.1\r\nHost: gw\r\n"+auth+tc.upgrade+"\r\n"+through)
			res, ok := c.response(t, "GET")
			if want := map[bool]int{true: 403, false: 401}[tc.auth != ""]; !ok || res.Status != want {
				t.Fatalf("status %d (answered: %v), want %d: %s", res.Status, ok, want, res.Body)
			}
			if next, ok := c.response(t, "GET"); ok && next.Status != http.StatusUnauthorized {
				t.Errorf("the bytes after it: status %d, want 401 (a request of its own, without a token)", next.Status)
			}
			_ = c.Close()
			if got := e.upstreamSaw(); len(got) != 0 {
				t.Errorf("the upstream parsed %+v, want nothing", got)
			}
		})
	}

	t.Run("an allowed WebSocket upgrade is tunnelled", func(t *testing.T) {
		t.Parallel()
		e := newSmuggleEnv(t)
		c := dialRaw(t, e.gw)
		c.send(t, "GET /proxy/docs/ws HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+e.tok+"\r\n"+ws+"\r\n")
		res, ok := c.response(t, "GET")
		if !ok || res.Status != http.StatusSwitchingProtocols || res.Header.Get("X-Meshguard-Decision") != "allow" {
			t.Fatalf("status %d (answered: %v) decision %q, want 101 allow", res.Status, ok, res.Header.Get("X-Meshguard-Decision"))
		}
		c.send(t, "frame")
		echo := make([]byte, len("frame"))
		if _, err := c.br.Read(echo); err != nil || string(echo) != "frame" {
			t.Fatalf("echo %q, %v", echo, err)
		}
		_ = c.Close()
		want := []parsed{{Method: "GET", Target: "/docs/ws", Upgrade: "websocket"}}
		if got := e.upstreamSaw(); !slices.Equal(got, want) {
			t.Errorf("the upstream parsed %+v, want %+v", got, want)
		}
	})

	for _, up := range []struct{ name, header string }{
		{"h2c", h2c},
		{"WebSocket listed with h2c", "Connection: Upgrade\r\nUpgrade: websocket, h2c\r\n"},
		{"TLS/1.0 (RFC 2817)", "Connection: Upgrade\r\nUpgrade: TLS/1.0\r\n"},
	} {
		t.Run("an allowed "+up.name+" upgrade is not tunnelled", func(t *testing.T) {
			t.Parallel()
			e := newSmuggleEnv(t)
			c := dialRaw(t, e.gw)
			c.send(t, "GET /proxy/docs/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+e.tok+"\r\n"+up.header+"\r\n")
			if res, ok := c.response(t, "GET"); !ok || res.Status != http.StatusOK {
				t.Fatalf("status %d (answered: %v), want 200 as plain HTTP/1.1: %s", res.Status, ok, res.Body)
			}
			c.send(t, through)
			if res, ok := c.response(t, "GET"); !ok || res.Status != http.StatusUnauthorized {
				t.Errorf("the next request: status %d (answered: %v), want the gateway's 401: %s", res.Status, ok, res.Body)
			}
			_ = c.Close()
			want := []parsed{{Method: "GET", Target: "/docs/x"}}
			if got := e.upstreamSaw(); !slices.Equal(got, want) {
				t.Errorf("the upstream parsed %+v, want %+v", got, want)
			}
		})
	}
}
