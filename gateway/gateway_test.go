package gateway_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/ratelimit"
	"github.com/meshguard/meshguard/trust"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestForwardsAllowedRequest(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{Answer: engine.AnswerAll})
	agent, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-MeshGuard-Decision", "forged-by-upstream")
		h.Set("X-MeshGuard-Mode", "audit")
		h.Set("Connection", "X-Up-Hop")
		h.Set("X-Up-Hop", "upstream hop-by-hop")
		h.Set("X-Upstream", "kept")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("created"))
	})
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})

	res := call(t, newClient(t), "POST", gw+"/proxy/api/users?x=1&y=a%20b",
		bearer(tok),
		"X-MeshGuard-Agent-Id: agent_forged",
		"X-MeshGuard-Chain: agent_forged",
		"X_MeshGuard_Tier: privileged",
		"X-MeshGuard-Decision: allow",
		"X-MeshGuard-Resource: /api/users",
		"Traceparent: "+traceparent,
		"X-Forwarded-For: 203.0.113.7",
		// Listing MeshGuard's own header as hop-by-hop must not remove it.
		"Connection: X-Hop, X-Meshguard-Agent-Id",
		"X-Hop: client hop-by-hop",
	)
	if res.Status != http.StatusCreated || string(res.Body) != "created" {
		t.Fatalf("response %d %q", res.Status, res.Body)
	}
	for name, want := range map[string]string{
		"X-MeshGuard-Decision": "allow", "X-MeshGuard-Policy": "readers",
		"X-MeshGuard-Trace-Id": traceparent[3:35], "X-MeshGuard-Mode": "", "X-Upstream": "kept", "X-Up-Hop": "",
	} {
		if got := strings.Join(res.Header.Values(name), ","); got != want {
			t.Errorf("response %s = %q, want %q", name, got, want)
		}
	}

	got := up.last(t)
	if got.Method != "POST" || got.Path != "/api/users" || got.RawQuery != "x=1&y=a%20b" || got.Host != strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("upstream got %s %s (query %q) for host %q", got.Method, got.Path, got.RawQuery, got.Host)
	}
	for name, want := range map[string]string{
		"Authorization":          "",
		"X-Meshguard-Agent-Id":   agent.ID,
		"X-Meshguard-Agent-Name": "reader",
		"X-Meshguard-Tier":       "verified",
		"X-Meshguard-Chain":      agent.ID,
		"X-Meshguard-Delegation": "",
		"X-Meshguard-Decision":   "",
		"X_MeshGuard_Tier":       "",
		"X-Meshguard-Resource":   "", // a steering header: addressed to MeshGuard, which ignores it
		"Traceparent":            traceparent,
		"X-Hop":                  "",
		"X-Forwarded-For":        "203.0.113.7, 127.0.0.1",
		"X-Forwarded-Host":       strings.TrimPrefix(gw, "http://"),
		"X-Forwarded-Proto":      "http",
		"Accept-Encoding":        "gzip", // the client's, passed on as sent
	} {
		if v := headerFold(got.Header, name); v != want {
			t.Errorf("upstream %s = %q, want %q", name, v, want)
		}
	}
	if id := got.Header.Get("X-Meshguard-Decision-Id"); !strings.HasPrefix(id, "dec_") {
		t.Errorf("upstream decision id %q", id)
	}
}

func TestPathAndQuery(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newUpstream(t, nil)
	tests := []struct {
		target, path, want string
	}{
		{"", "/proxy/api/users?x=1", "/api/users?x=1"},
		{"", "/proxy/", "/"},
		{"", "/proxy", "/"},
		{"", "/proxy/a/b/?q=%2F&q=2&empty=", "/a/b/?q=%2F&q=2&empty="},
		{"", "/proxy/caf%C3%A9/x%20y", "/caf%C3%A9/x%20y"},
		{"", "/proxy/%61pi", "/api"}, // decided and forwarded as the same path
		{"/base", "/proxy/api/users?x=1", "/base/api/users?x=1"},
		{"/base/", "/proxy/api/users", "/base/api/users"},
		{"/base", "/proxy/", "/base/"},
		{"/base/v1", "/proxy", "/base/v1/"},
	}
	for _, tc := range tests {
		t.Run(tc.target+" "+tc.path, func(t *testing.T) {
			gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL+tc.target)})
			res := raw(t, gw, "GET "+tc.path+" HTTP/1.1\r\nHost: gw\r\n"+bearer(tok)+"\r\nConnection: close\r\n\r\n")
			if res.Status != http.StatusOK {
				t.Fatalf("status %d: %s", res.Status, res.Body)
			}
			if got := up.last(t).RequestURI; got != tc.want {
				t.Errorf("upstream request URI %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRefusesMalformedRequests(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL), MaxHeaderBytes: 8 << 10})
	auth := bearer(tok) + "\r\n"
	tests := []struct {
		name, request string
		status        int
		code          string
	}{
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n" + auth + "\r\n", 405, "method_not_allowed"},
		{"absolute form", "GET http://example.com/proxy/x HTTP/1.1\r\nHost: example.com\r\n" + auth + "\r\n", 400, "bad_request"},
		{"headers over the limit", "GET /proxy/x HTTP/1.1\r\nHost: gw\r\n" + auth + "X-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 431, "headers_too_large"},
		{"dot-dot segment", "GET /proxy/public/../admin HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "bad_request"},
		{"encoded dot-dot", "GET /proxy/public/%2e%2e/admin HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "bad_request"},
		{"dot segment", "GET /proxy/./admin HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "bad_request"},
		{"empty segment", "GET /proxy//admin HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "bad_request"},
		{"encoded slash", "GET /proxy/public%2Fadmin HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "bad_request"},
		{"encoded backslash", "GET /proxy/public%5cadmin HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "bad_request"},
		{"encoded question mark", "GET /proxy/admin%3Fx HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "bad_request"},
		{"encoded NUL", "GET /proxy/admin%00 HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "bad_request"},
		{"outside /proxy", "GET /admin/agents HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 404, "not_found"},
		{"prefix look-alike", "GET /proxyfoo HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 404, "not_found"},
		{"two tokens", "GET /proxy/x HTTP/1.1\r\nHost: gw\r\n" + auth + "Authorization: Bearer other\r\n\r\n", 400, "bad_request"},
		{"two tokens in one header", "GET /proxy/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer a, Bearer b\r\n\r\n", 400, "bad_request"},
		{"two delegations", "GET /proxy/x HTTP/1.1\r\nHost: gw\r\n" + auth + "X-MeshGuard-Delegation: a.b.c\r\nX-MeshGuard-Delegation: d.e.f\r\n\r\n", 400, "bad_request"},
		{"a path parameter", "GET /proxy/docs;/private/x HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "bad_request"},
		{"an encoded path parameter", "GET /proxy/docs%3B/private/x HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "bad_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := raw(t, gw, tc.request)
			if res.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.Status, tc.status, res.Body)
			}
			if body := res.json(t); body["error"] != tc.code || body["message"] == "" {
				t.Errorf("body %s, want error %q with a message", res.Body, tc.code)
			}
		})
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream received %d malformed requests", n)
	}
	// A request within the limits goes through.
	if res := raw(t, gw, "GET /proxy/x HTTP/1.1\r\nHost: gw\r\n"+auth+"Connection: close\r\n\r\n"); res.Status != 200 {
		t.Fatalf("well-formed request: %d %s", res.Status, res.Body)
	}
}

func TestDenialsNeverReachUpstream(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, readerT := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	_, strangerT := f.Agent(t, "stranger", trust.Verified, []string{"nobody"})
	revoked, revokedT := f.Agent(t, "revoked", trust.Verified, []string{"reader"})
	f.Revoke(t, revoked.ID)
	up := newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})
	c := newClient(t)
	tests := []struct {
		name    string
		method  string
		path    string
		headers []string
		status  int
		error   string
		reason  string
	}{
		{"no token", "GET", "/proxy/docs", nil, 401, "unauthorized", engine.ReasonUnauthorized},
		{"not a bearer token", "GET", "/proxy/docs", []string{"Authorization: Basic dXNlcjpwdw=="}, 401, "unauthorized", engine.ReasonUnauthorized},
		{"garbage token", "GET", "/proxy/docs", []string{bearer("abc.def.ghi")}, 401, "unauthorized", engine.ReasonUnauthorized},
		{"alg none", "GET", "/proxy/docs", []string{bearer("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")}, 401, "unauthorized", engine.ReasonUnauthorized},
		{"revoked agent", "GET", "/proxy/docs", []string{bearer(revokedT)}, 401, "unauthorized", engine.ReasonAgentRevoked},
		{"no covering policy", "GET", "/proxy/docs", []string{bearer(strangerT)}, 403, "forbidden", "no_policy"},
		{"no matching rule", "DELETE", "/proxy/api/users/1", []string{bearer(readerT)}, 403, "forbidden", "no_matching_rule"},
		{"write outside api", "POST", "/proxy/admin/users", []string{bearer(readerT)}, 403, "forbidden", "no_matching_rule"},
		{"a delete relabelled as a read", "DELETE", "/proxy/admin/users", []string{bearer(readerT), "X-MeshGuard-Action: read:public/x"}, 403, "forbidden", "no_matching_rule"},
		{"a private read under a public resource", "GET", "/proxy/docs/private/secret", []string{bearer(readerT), "X-MeshGuard-Resource: /docs/public"}, 403, "forbidden", "rule_deny"},
		{"deny rule", "GET", "/proxy/admin/users", []string{bearer(readerT)}, 403, "forbidden", "rule_deny"},
		{"deny rule, escaped", "GET", "/proxy/%61dmin/users", []string{bearer(readerT)}, 403, "forbidden", "rule_deny"},
		{"forged delegation", "GET", "/proxy/docs", []string{bearer(readerT), "X-MeshGuard-Delegation: abc.def.ghi"}, 403, "forbidden", "delegation_actor_mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, c, tc.method, gw+tc.path, tc.headers...)
			if res.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.Status, tc.status, res.Body)
			}
			body := res.json(t)
			if body["error"] != tc.error || body["reason"] != tc.reason || body["message"] == "" {
				t.Errorf("body %s, want error %q reason %q", res.Body, tc.error, tc.reason)
			}
			if res.Header.Get("X-MeshGuard-Decision") != "deny" || len(res.Header.Get("X-MeshGuard-Trace-Id")) != 32 {
				t.Errorf("decision headers %v", res.Header)
			}
			if (tc.status == 401) != (res.Header.Get("WWW-Authenticate") != "") {
				t.Errorf("WWW-Authenticate %q on a %d", res.Header.Get("WWW-Authenticate"), tc.status)
			}
		})
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream received %d denied requests", n)
	}
}

func TestClientRateLimit(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{
		Checker: f.Engine, Target: mustURL(t, up.URL),
		Limiter: ratelimit.NewMemory(nil, 0), RPM: 3,
	})
	c := newClient(t)
	// The limit comes before authentication: the 401s count too.
	for i, want := range []int{200, 401, 200, 429, 429} {
		headers := []string{"X-Forwarded-For: 198.51.100.1"} // believed: the peer is loopback
		if want != 401 {
			headers = append(headers, bearer(tok))
		}
		res := call(t, c, "GET", gw+"/proxy/docs", headers...)
		if res.Status != want {
			t.Fatalf("request %d: status %d, want %d: %s", i+1, res.Status, want, res.Body)
		}
		if want != 429 {
			continue
		}
		body := res.json(t)
		if body["error"] != "rate_limited" || body["message"] == "" || body["retry_after"].(float64) < 1 {
			t.Errorf("429 body %s", res.Body)
		}
		if ra := res.Header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("Retry-After %q", ra)
		}
	}
	// Another client address has its own budget.
	if res := call(t, c, "GET", gw+"/proxy/docs", bearer(tok), "X-Forwarded-For: 198.51.100.2"); res.Status != 200 {
		t.Fatalf("another client: %d %s", res.Status, res.Body)
	}
	if n := len(up.requests()); n != 3 {
		t.Errorf("upstream received %d requests, want 3", n)
	}
}

func TestPolicyRateLimit(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "busy", trust.Verified, []string{"limited"})
	up := newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})
	c := newClient(t)
	for i := range 2 {
		if res := call(t, c, "GET", gw+"/proxy/docs", bearer(tok)); res.Status != 200 {
			t.Fatalf("request %d: %d %s", i+1, res.Status, res.Body)
		}
	}
	res := call(t, c, "GET", gw+"/proxy/docs", bearer(tok))
	if res.Status != 429 {
		t.Fatalf("third request: %d %s", res.Status, res.Body)
	}
	body := res.json(t)
	if body["error"] != "rate_limited" || body["reason"] != engine.ReasonRateLimited || body["policy"] != "limited" || body["retry_after"].(float64) < 1 {
		t.Errorf("429 body %s", res.Body)
	}
	if res.Header.Get("Retry-After") == "" || res.Header.Get("X-MeshGuard-Decision") != "deny" {
		t.Errorf("429 headers %v", res.Header)
	}
	if n := len(up.requests()); n != 2 {
		t.Errorf("upstream received %d requests, want 2", n)
	}
}

func TestAuditModeForwards(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{Mode: engine.ModeAudit})
	stranger, tok := f.Agent(t, "stranger", trust.Verified, []string{"nobody"})
	up := newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})
	c := newClient(t)
	tests := []struct {
		name    string
		headers []string
		agentID string
	}{
		{"denied by policy", []string{bearer(tok)}, stranger.ID},
		{"unauthenticated", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, c, "DELETE", gw+"/proxy/everything", tc.headers...)
			if res.Status != 200 || string(res.Body) != "upstream ok" {
				t.Fatalf("audit mode must forward: %d %s", res.Status, res.Body)
			}
			if res.Header.Get("X-MeshGuard-Decision") != "deny" || res.Header.Get("X-MeshGuard-Mode") != "audit" {
				t.Errorf("response headers %v", res.Header)
			}
			got := up.last(t)
			if got.Header.Get("X-Meshguard-Agent-Id") != tc.agentID || got.Header.Get("Authorization") != "" {
				t.Errorf("upstream headers %v", got.Header)
			}
		})
	}
}

// TestDelegationThroughGateway: the target's host decides whether a call
// hands a task to an agent, as the :authority does behind Envoy; the
// caller's own delegation token is decided on, never passed on.
func TestDelegationThroughGateway(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{Answer: engine.AnswerAll})
	// Agent hosts carry no port, so the researcher is reached as
	// "localhost" and the plain service below as "127.0.0.1": two names
	// for the same loopback address.
	researcherUp := newUpstream(t, nil)
	researcherURL := strings.Replace(researcherUp.URL, "127.0.0.1", "localhost", 1)
	orch, orchT := f.Agent(t, "orchestrator", trust.Trusted, []string{"orchestrator"})
	res, resT := f.Agent(t, "researcher", trust.Verified, []string{"researcher"}, "localhost")
	_, readerT := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	toResearcher := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, researcherURL)})
	c := newClient(t)

	// The orchestrator may hand reads on: the researcher gets a token.
	if r := call(t, c, "GET", toResearcher+"/proxy/papers", bearer(orchT), "Host: not-the-target.example"); r.Status != 200 {
		t.Fatalf("orchestrator → researcher: %d %s", r.Status, r.Body)
	}
	got := researcherUp.last(t)
	delegation := got.Header.Get("X-Meshguard-Delegation")
	if delegation == "" || got.Header.Get("X-Meshguard-Chain") != orch.ID {
		t.Fatalf("researcher received %v", got.Header)
	}
	// A reader's policy grants no delegation: denied at the boundary.
	r := call(t, c, "GET", toResearcher+"/proxy/papers", bearer(readerT))
	if r.Status != 403 || r.json(t)["reason"] != "delegation_not_permitted" {
		t.Fatalf("reader → researcher: %d %s", r.Status, r.Body)
	}
	if n := len(researcherUp.requests()); n != 0 {
		t.Fatalf("the denied hand-off reached the researcher")
	}

	// The researcher, acting for the orchestrator, reads from a plain
	// service: the chain is decided, the token stays with MeshGuard.
	plain := newUpstream(t, nil)
	toPlain := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, plain.URL)})
	if r := call(t, c, "GET", toPlain+"/proxy/papers", bearer(resT), "X-MeshGuard-Delegation: "+delegation); r.Status != 200 {
		t.Fatalf("researcher for orchestrator: %d %s", r.Status, r.Body)
	}
	got = plain.last(t)
	if got.Header.Get("X-Meshguard-Chain") != orch.ID+","+res.ID || got.Header.Get("X-Meshguard-Delegation") != "" {
		t.Errorf("plain service received %v", got.Header)
	}
	// Outside the orchestrator's ceiling.
	r = call(t, c, "POST", toPlain+"/proxy/notes/plan", bearer(resT), "X-MeshGuard-Delegation: "+delegation)
	if r.Status != 403 || r.json(t)["reason"] != "delegation_ceiling" {
		t.Fatalf("outside the ceiling: %d %s", r.Status, r.Body)
	}
}

// TestMountedOnServeMux wires the gateway as the server does.
func TestMountedOnServeMux(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newUpstream(t, nil)
	gw, err := gateway.New(gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(gateway.Prefix+"/", gw)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := newClient(t)
	if r := call(t, c, "GET", srv.URL+"/proxy/api/users?x=1", bearer(tok)); r.Status != 200 || up.last(t).RequestURI != "/api/users?x=1" {
		t.Fatalf("through the mux: %d %s", r.Status, r.Body)
	}
	if r := call(t, c, "GET", srv.URL+"/health"); r.Status != 200 || len(up.requests()) != 0 {
		t.Fatalf("/health: %d %s", r.Status, r.Body)
	}
}

// TestExpectContinueDenied: a denied request is answered before the client
// sends its body.
func TestExpectContinueDenied(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	up := newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})
	// raw sends no body: an answer proves the gateway did not wait for one.
	res := raw(t, gw, "POST /proxy/api/upload HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 1048576\r\n\r\n")
	if res.Status != http.StatusUnauthorized || len(up.requests()) != 0 {
		t.Fatalf("status %d: %s", res.Status, res.Body)
	}
}

// TestUpgradePassesThrough: a WebSocket upgrade is decided once, then the
// connection is the upstream's. (Other protocols are not passed on:
// TestUpgradesAreDecided.)
func TestUpgradePassesThrough(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{Answer: engine.AnswerAll})
	agent, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "upgrade expected", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		line, _ := brw.ReadString('\n')
		_, _ = io.WriteString(conn, "echo: "+line)
	})
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)})

	conn, err := net.Dial("tcp", strings.TrimPrefix(gw, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.WriteString(conn, "GET /proxy/stream HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+bearer(tok)+"\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("X-MeshGuard-Decision") != "allow" {
		t.Fatalf("upgrade answered %d %v", res.StatusCode, res.Header)
	}
	_, _ = io.WriteString(conn, "hello\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo: hello\n" {
		t.Fatalf("through the upgraded connection: %q, %v", line, err)
	}
	if got := up.last(t); got.Header.Get("X-Meshguard-Agent-Id") != agent.ID || got.Header.Get("Authorization") != "" {
		t.Errorf("upgrade request headers %v", got.Header)
	}
}
