package gateway_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// services is a live catalogue, as the server's: set replaces it.
type services struct {
	mu sync.Mutex
	c  *catalog.Catalogue
}

func newServices(t testing.TB, s ...catalog.Service) *services {
	t.Helper()
	sv := &services{}
	sv.set(t, s...)
	return sv
}

func (sv *services) set(t testing.TB, s ...catalog.Service) {
	t.Helper()
	c, err := catalog.New(s)
	if err != nil {
		t.Fatal(err)
	}
	sv.mu.Lock()
	sv.c = c
	sv.mu.Unlock()
}

func (sv *services) Service(name string) (*catalog.Service, bool) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	for i := range sv.c.Services {
		if sv.c.Services[i].Name == name {
			return &sv.c.Services[i], true
		}
	}
	return nil, false
}

func (u *upstream) reset() {
	u.mu.Lock()
	u.got = nil
	u.mu.Unlock()
}

func addr(u *upstream) string { return strings.TrimPrefix(u.URL, "http://") }

// refusing is an address nothing listens on: a port just closed.
func refusing(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	_ = l.Close()
	return a
}

// meshServices: a researcher agent's service, a plain notes service
// whose POST /docs/* is a read, and a vault only trusted agents reach.
func meshServices(researcher, notes, vault *upstream) []catalog.Service {
	return []catalog.Service{
		{Name: "researcher", Hosts: []string{"researcher.mesh.test"}, Port: 8080, Endpoints: []string{addr(researcher)}, Agent: "researcher",
			Routes: []catalog.Route{{Method: "POST", Path: "/tasks/*", Action: "read:tasks"}}},
		{Name: "notes", Hosts: []string{"notes.mesh.test", "notes.alt.test"}, Port: 80, Endpoints: []string{addr(notes)},
			Routes: []catalog.Route{{Method: "POST", Path: "/docs/*", Action: "read:docs-post"}, {Path: "/docs/*", Action: "read:docs"}}},
		{Name: "vault", Hosts: []string{"vault.mesh.test"}, Port: 9000, Endpoints: []string{addr(vault)}, MinTier: trust.Trusted},
	}
}

// TestServicesRouting: /proxy/<service>/<rest> goes to the service named,
// decided with its first host, its route's action and its minimum tier;
// a hand-on to the service's agent mints the agent's delegation.
func TestServicesRouting(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{Answer: engine.AnswerAll})
	orch, orchT := f.Agent(t, "orchestrator", trust.Trusted, []string{"orchestrator"})
	res, resT := f.Agent(t, "researcher", trust.Verified, []string{"researcher"}, "researcher.mesh.test")
	_, readerT := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	_, strangerT := f.Agent(t, "stranger", trust.Verified, []string{"nobody"})
	researcher, notes, vault := newUpstream(t, nil), newUpstream(t, nil), newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Services: newServices(t, meshServices(researcher, notes, vault)...)})
	c := newClient(t)

	// The orchestrator hands a task on: MeshGuard mints the researcher's
	// delegation; the caller's Host header names the gateway only.
	r := call(t, c, "POST", gw+"/proxy/researcher/tasks/survey?q=1", bearer(orchT), "Host: notes.mesh.test", "Traceparent: "+traceparent)
	if r.Status != 200 {
		t.Fatalf("orchestrator → researcher: %d %s", r.Status, r.Body)
	}
	got := researcher.last(t)
	if got.Path != "/tasks/survey" || got.RawQuery != "q=1" || got.Host != "researcher.mesh.test:8080" {
		t.Errorf("researcher received %s %s?%s Host %s", got.Method, got.Path, got.RawQuery, got.Host)
	}
	delegation := got.Header.Get("X-Meshguard-Delegation")
	if delegation == "" || got.Header.Get("X-Meshguard-Chain") != orch.ID || got.Header.Get("Authorization") != "" ||
		!strings.Contains(got.Header.Get("Traceparent"), traceparent[3:35]) {
		t.Errorf("researcher received headers %v", got.Header)
	}

	// The researcher, acting for the orchestrator, uses a plain service
	// (port 80: a bare Host); the chain is decided, no delegation goes on.
	r = call(t, c, "GET", gw+"/proxy/notes/docs/a", bearer(resT), "X-MeshGuard-Delegation: "+delegation)
	if r.Status != 200 {
		t.Fatalf("researcher for orchestrator → notes: %d %s", r.Status, r.Body)
	}
	got = notes.last(t)
	if got.Host != "notes.mesh.test" || got.Path != "/docs/a" || got.Header.Get("X-Meshguard-Chain") != orch.ID+","+res.ID ||
		got.Header.Get("X-Meshguard-Delegation") != "" {
		t.Errorf("notes received Host %s path %s headers %v", got.Host, got.Path, got.Header)
	}

	// The route's action, not the one derived from the method: a POST
	// under /docs/ is read:docs-post, which a reader may do and a stranger
	// is refused by name.
	if r := call(t, c, "POST", gw+"/proxy/notes/docs/b", bearer(readerT)); r.Status != 200 {
		t.Errorf("reader POST /docs/b: %d %s", r.Status, r.Body)
	}
	if got := notes.last(t); got.Path != "/docs/b" {
		t.Errorf("notes received %s", got.Path)
	}
	r = call(t, c, "POST", gw+"/proxy/notes/docs/b", bearer(strangerT))
	if b := r.json(t); r.Status != 403 || b["action"] != "read:docs-post" {
		t.Errorf("stranger POST /docs/b: %d %s, want 403 for read:docs-post", r.Status, r.Body)
	}

	// The service's minimum tier.
	r = call(t, c, "GET", gw+"/proxy/vault/secrets", bearer(readerT))
	if b := r.json(t); r.Status != 403 || b["reason"] != "tier_below_minimum" {
		t.Errorf("reader → vault: %d %s, want 403 tier_below_minimum", r.Status, r.Body)
	}
	// No rest: "/" goes upstream, as with PROXY_TARGET.
	if r := call(t, c, "GET", gw+"/proxy/vault", bearer(orchT)); r.Status != 200 {
		t.Errorf("orchestrator → vault: %d %s", r.Status, r.Body)
	}
	if got := vault.last(t); got.Path != "/" || got.Host != "vault.mesh.test:9000" {
		t.Errorf("vault received %s Host %s", got.Path, got.Host)
	}

	// A reader may not hand anything on: denied at the boundary.
	r = call(t, c, "POST", gw+"/proxy/researcher/tasks/survey", bearer(readerT))
	if b := r.json(t); r.Status != 403 || b["reason"] != "delegation_not_permitted" {
		t.Errorf("reader → researcher: %d %s", r.Status, r.Body)
	}
	for name, u := range map[string]*upstream{"researcher": researcher, "notes": notes, "vault": vault} {
		if n := len(u.requests()); n != 0 {
			t.Errorf("%s received %d requests that were refused", name, n)
		}
	}
}

// TestServicesPathCannotConfuse: only the path's first segment picks the
// service, and it is the segment decided on; the Host header, an
// absolute-form target or an odd segment cannot pick another.
func TestServicesPathCannotConfuse(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, orchT := f.Agent(t, "orchestrator", trust.Trusted, []string{"orchestrator"})
	f.Agent(t, "researcher", trust.Verified, []string{"researcher"}, "researcher.mesh.test")
	researcher, notes, vault := newUpstream(t, nil), newUpstream(t, nil), newUpstream(t, nil)
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Services: newServices(t, meshServices(researcher, notes, vault)...)})
	auth := "Authorization: Bearer " + orchT + "\r\n"
	long := strings.Repeat("x", 5000)

	tests := []struct {
		name, request string
		status        int
		message       string // a part of the answer's message
	}{
		{"unknown service", "GET /proxy/mailer/x HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 404, `no service \"mailer\"`},
		{"unknown service, long name, bounded", "GET /proxy/" + long + "/x HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 404, "xxxx…"},
		{"names are exact", "GET /proxy/Notes/docs/a HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 404, `no service \"Notes\"`},
		{"no service named", "GET /proxy/ HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 404, "name a service"},
		{"no service, no slash", "GET /proxy HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 404, "name a service"},
		{"a service's host as Host header", "GET /proxy/mailer/x HTTP/1.1\r\nHost: notes.mesh.test\r\n" + auth + "\r\n", 404, "mailer"},
		{"absolute form naming a service's host", "GET http://notes.mesh.test/proxy/notes/docs/a HTTP/1.1\r\nHost: notes.mesh.test\r\n" + auth + "\r\n", 400, "absolute-form"},
		{"encoded slash in the service segment", "GET /proxy/notes%2Fdocs/a HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "encoded"},
		{"encoded slash, lower case", "GET /proxy/vault%2f..%2fnotes/docs/a HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "encoded"},
		{"dot-dot out of the service", "GET /proxy/vault/../notes/docs/a HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, `\"..\"`},
		{"dot-dot as the service", "GET /proxy/../notes/docs/a HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, `\"..\"`},
		{"empty service segment", "GET /proxy//notes/docs/a HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "empty segments"},
		{"backslash", "GET /proxy/vault\\notes/docs/a HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n", 400, "not accepted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := raw(t, gw, tc.request)
			if r.Status != tc.status || !strings.Contains(string(r.Body), tc.message) || len(r.Body) > 400 {
				t.Errorf("%d %s, want %d with %q (bounded)", r.Status, r.Body, tc.status, tc.message)
			}
		})
	}
	for name, u := range map[string]*upstream{"researcher": researcher, "notes": notes, "vault": vault} {
		if n := len(u.requests()); n != 0 {
			t.Errorf("%s received %d requests", name, n)
		}
	}
	// An escaped letter is the same service, decided and forwarded alike.
	if r := raw(t, gw, "GET /proxy/%6eotes/docs/a HTTP/1.1\r\nHost: vault.mesh.test\r\n"+auth+"\r\n"); r.Status != 200 {
		t.Fatalf("escaped letter: %d %s", r.Status, r.Body)
	}
	if got := notes.last(t); got.Host != "notes.mesh.test" || got.Path != "/docs/a" {
		t.Errorf("notes received Host %s path %s", got.Host, got.Path)
	}
}

// TestServicesEndpoints: requests take a service's endpoints in turn; one
// that refuses the connection is skipped (the body goes whole to the
// next); all refusing is a 502.
func TestServicesEndpoints(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "orchestrator", trust.Trusted, []string{"orchestrator"})
	// The echo reads the whole body before it answers: the gateway's own
	// server is not full duplex (net/http's default), so an upstream that
	// answered first would race the caller's upload.
	echo := func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = w.Write(b)
	}
	a, b := newUpstream(t, echo), newUpstream(t, echo)
	svc := func(name string, eps ...string) catalog.Service {
		return catalog.Service{Name: name, Hosts: []string{name + ".mesh.test"}, Port: 80, Endpoints: eps}
	}
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Services: newServices(t,
		svc("pair", addr(a), addr(b)),
		svc("skip", refusing(t), addr(a), refusing(t)),
		svc("dead", refusing(t), refusing(t)),
	)})
	c := newClient(t)

	t.Run("round robin", func(t *testing.T) {
		for range 4 {
			if r := call(t, c, "GET", gw+"/proxy/pair/x", bearer(tok)); r.Status != 200 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
		}
		if na, nb := len(a.requests()), len(b.requests()); na != 2 || nb != 2 {
			t.Errorf("endpoints received %d and %d requests, want 2 and 2", na, nb)
		}
		a.reset()
		b.reset()
	})
	t.Run("refused endpoints skipped", func(t *testing.T) {
		for i := range 3 {
			body := strings.Repeat("payload ", 1000) + string(rune('a'+i))
			req, _ := http.NewRequest("POST", gw+"/proxy/skip/notes", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			if r := send(t, c, req); r.Status != 200 || string(r.Body) != body {
				t.Fatalf("try %d: %d, body of %d bytes (want the %d sent)", i, r.Status, len(r.Body), len(body))
			}
		}
		if n := len(a.requests()); n != 3 {
			t.Errorf("the live endpoint received %d requests, want 3", n)
		}
		a.reset()
	})
	t.Run("all refusing", func(t *testing.T) {
		r := call(t, c, "GET", gw+"/proxy/dead/x", bearer(tok))
		if b := r.json(t); r.Status != 502 || b["error"] != "bad_gateway" || !strings.Contains(b["message"].(string), "refused") {
			t.Errorf("%d %s, want 502 refused", r.Status, r.Body)
		}
	})
}

// TestServicesCatalogueIsLive: a change to the catalogue is seen by the
// next request: a new endpoint, a new service, a service removed.
func TestServicesCatalogueIsLive(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "orchestrator", trust.Trusted, []string{"orchestrator"})
	a, b := newUpstream(t, nil), newUpstream(t, nil)
	svc := func(name string, u *upstream) catalog.Service {
		return catalog.Service{Name: name, Hosts: []string{name + ".mesh.test"}, Port: 80, Endpoints: []string{addr(u)}}
	}
	sv := newServices(t, svc("one", a))
	gw := startGateway(t, gateway.Config{Checker: f.Engine, Services: sv})
	c := newClient(t)
	get := func(service string) int { return call(t, c, "GET", gw+"/proxy/"+service+"/x", bearer(tok)).Status }

	if s := get("one"); s != 200 || len(a.requests()) != 1 {
		t.Fatalf("before: %d", s)
	}
	sv.set(t, svc("one", b), svc("two", a))
	if s := get("one"); s != 200 || len(b.requests()) != 1 || len(a.requests()) != 1 {
		t.Errorf("after moving one: %d; endpoints received %d and %d", s, len(a.requests()), len(b.requests()))
	}
	if s := get("two"); s != 200 || len(a.requests()) != 2 {
		t.Errorf("the new service: %d", s)
	}
	sv.set(t, svc("two", a))
	if s := get("one"); s != 404 {
		t.Errorf("the removed service: %d, want 404", s)
	}
}

// TestServicesOrTarget: one upstream or the catalogue, not both.
func TestServicesOrTarget(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, err := gateway.New(gateway.Config{Checker: f.Engine, Target: mustURL(t, "http://127.0.0.1:1"), Services: newServices(t)})
	if err == nil || !strings.Contains(err.Error(), "PROXY_TARGET and PROXY_SERVICES") {
		t.Errorf("both: %v", err)
	}
	if _, err := gateway.New(gateway.Config{Checker: f.Engine}); err == nil || !strings.Contains(err.Error(), "PROXY_TARGET") {
		t.Errorf("neither: %v", err)
	}
}
