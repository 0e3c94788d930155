package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/filterprotocol"
)

// The admin token of the credential tests: a known value, so wrong tokens
// can be made one byte away from it.
const authTestAdminToken = "mgadm_auth-test-token-0123456789abcdef"

// routeRequest is one request to one route of the HTTP API: a body the
// right credential gets a 2xx for, so a route that forgot its guard
// would act on it.
type routeRequest struct {
	route       string // the pattern the API registered (admin.API.Routes)
	method      string
	path        string
	body        string
	contentType string
	stream      bool // the answer never ends: read the status, then hang up
}

// credential is how a request tries to authenticate.
type credential struct {
	name    string
	headers map[string]string
}

// routesOf lists the routes of the HTTP API that serve builds for cfg:
// the real mux's patterns, not a copy of them.
func routesOf(t *testing.T, cfg *config.Config) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := build(ctx, cfg, Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	return p.router.Routes()
}

// checkRows fails unless rows cover exactly the routes of routes under
// prefix, each row's request is routed to the pattern it names, and every
// route has a row: a route added without one fails here.
func checkRows(t *testing.T, routes []string, prefix string, rows []routeRequest) {
	t.Helper()
	mux := http.NewServeMux()
	var want []string
	for _, p := range routes {
		mux.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
		if _, path, _ := strings.Cut(p, " "); strings.HasPrefix(path, prefix) {
			want = append(want, p)
		}
	}
	if len(want) == 0 {
		t.Fatalf("the API serves no route under %s: %v", prefix, routes)
	}
	var have []string
	for _, row := range rows {
		have = append(have, row.route)
		req, err := http.NewRequest(row.method, "http://meshguard"+row.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, got := mux.Handler(req); got != row.route {
			t.Errorf("the row for %s asks %s %s, which the API routes to %q", row.route, row.method, row.path, got)
		}
	}
	for _, p := range want {
		if !slices.Contains(have, p) {
			t.Errorf("the route %s has no row in this test: add one", p)
		}
	}
	for _, p := range have {
		if !slices.Contains(want, p) {
			t.Errorf("the row %s is no route of the API under %s", p, prefix)
		}
	}
}

// send makes one request with exactly cred's headers; it returns the
// status and the body (for a stream, none).
func send(t *testing.T, base string, row routeRequest, cred map[string]string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, row.method, base+row.path, strings.NewReader(row.body))
	if err != nil {
		t.Fatal(err)
	}
	if row.body != "" {
		ct := row.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range cred {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", row.method, row.path, err)
	}
	defer res.Body.Close()
	if row.stream && res.StatusCode == http.StatusOK {
		return res.StatusCode, nil // the stream has begun; cancel ends it
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", row.method, row.path, err)
	}
	return res.StatusCode, body
}

// TestAdminRoutesRefuseEveryOtherCredential: every /admin/* route the API
// registers (its mux's own list, so a new route without a row here
// fails) refuses, as docs/api.md says, a request without the admin token
// (401), with an agent's or any bearer token (403 admin_token_required),
// with the wasm filter's or a proxy's credential, a wrong admin token or
// one a byte off (401), and acts on none of them: what the store holds is
// the same byte for byte afterwards. The admin token then gets a 2xx on
// every row, so each row's request is one the route would have carried
// out.
func TestAdminRoutesRefuseEveryOtherCredential(t *testing.T) {
	r, routes := startAuthTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := "http://" + r.addrs.HTTP

	// What the rows act on: an agent, a stored policy, a stored service,
	// a decision in the trail with a known trace.
	target, err := r.admin.CreateAgent(ctx, api.CreateAgentRequest{Name: "target", TrustTier: "verified", Tags: []string{"reader"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.admin.ApplyPolicyYAML(ctx, []byte("name: stored-one\nappliesTo: {tags: [stored]}\nrules:\n  - {name: r, effect: allow, actions: [\"read:*\"]}\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.admin.PutService(ctx, api.Service{Name: "ledger", Hosts: []string{"ledger.mesh"}, Port: 8080, Endpoints: []string{"10.0.0.9:8080"}}); err != nil {
		t.Fatal(err)
	}
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736" // checkRequest's traceparent
	r.check(t, target.Token, "GET", "/docs/a")
	eventually(t, "the decision stored", func() bool {
		page, err := r.admin.QueryAudit(ctx, client.AuditFilter{TraceID: trace})
		return err == nil && len(page.Records) == 1
	})
	minted := watchFilterConfig(ctx, t, r, "envoy-auth")().MeshGuard.Token
	// Two approvals pending (another trace than the one counted above):
	// one for the approve row, one for the deny row.
	asker := r.agent(t, "asker", "asker")
	toApprove, toDeny := raiseApproval(t, r, asker, "/docs/approve-me"), raiseApproval(t, r, asker, "/docs/deny-me")

	id := target.ID
	policyYAML := "name: applied-by-the-test\nappliesTo: {tags: [applied]}\nrules:\n  - {name: r, effect: allow, actions: [\"read:*\"]}\n"
	rows := []routeRequest{
		{route: "GET /admin/agents", method: "GET", path: "/admin/agents"},
		{route: "POST /admin/agents", method: "POST", path: "/admin/agents", body: `{"name":"made-by-the-test","trustTier":"verified"}`},
		{route: "GET /admin/agents/{id}", method: "GET", path: "/admin/agents/" + id},
		{route: "PATCH /admin/agents/{id}", method: "PATCH", path: "/admin/agents/" + id, body: `{"tags":["patched"]}`},
		{route: "POST /admin/agents/{id}/token", method: "POST", path: "/admin/agents/" + id + "/token", body: `{"ttl":"1h"}`},
		{route: "POST /admin/tokens/revoke", method: "POST", path: "/admin/tokens/revoke", body: `{"jti":"jti-of-the-auth-test","agentId":"` + id + `"}`},
		{route: "GET /admin/tokens/revoked", method: "GET", path: "/admin/tokens/revoked"},
		{route: "DELETE /admin/agents/{id}", method: "DELETE", path: "/admin/agents/" + id},
		{route: "GET /admin/policies", method: "GET", path: "/admin/policies"},
		{route: "POST /admin/policies", method: "POST", path: "/admin/policies", body: policyYAML, contentType: "application/yaml"},
		{route: "POST /admin/policies/validate", method: "POST", path: "/admin/policies/validate", body: policyYAML, contentType: "application/yaml"},
		{route: "POST /admin/policies/test", method: "POST", path: "/admin/policies/test", body: `{"agent":"target","action":"read:docs"}`},
		{route: "POST /admin/policies/replay", method: "POST", path: "/admin/policies/replay", body: `{"files":[{"name":"c.yaml","yaml":"name: c\nrules: [{name: r, effect: allow, actions: [\"read:*\"]}]\n"}]}`},
		{route: "GET /admin/policies/{name}", method: "GET", path: "/admin/policies/stored-one"},
		{route: "DELETE /admin/policies/{name}", method: "DELETE", path: "/admin/policies/stored-one"},
		{route: "POST /admin/keys/rotate", method: "POST", path: "/admin/keys/rotate", body: `{}`},
		{route: "GET /admin/audit", method: "GET", path: "/admin/audit"},
		{route: "GET /admin/audit/stats", method: "GET", path: "/admin/audit/stats?period=1h"},
		{route: "GET /admin/audit/trace/{traceId}", method: "GET", path: "/admin/audit/trace/" + trace},
		{route: "GET /admin/audit/export", method: "GET", path: "/admin/audit/export?format=csv"},
		{route: "GET /admin/audit/stream", method: "GET", path: "/admin/audit/stream", stream: true},
		{route: "GET /admin/audit/verify", method: "GET", path: "/admin/audit/verify"},
		{route: "POST /admin/audit/verify", method: "POST", path: "/admin/audit/verify", body: `{}`},
		{route: "GET /admin/audit/deadletter", method: "GET", path: "/admin/audit/deadletter"},
		{route: "GET /admin/audit/checkpoint", method: "GET", path: "/admin/audit/checkpoint"},
		{route: "GET /admin/services", method: "GET", path: "/admin/services"},
		{route: "GET /admin/services/{name}", method: "GET", path: "/admin/services/ledger"},
		{route: "PUT /admin/services/{name}", method: "PUT", path: "/admin/services/vault",
			body: `{"name":"vault","hosts":["vault.mesh"],"port":8080,"endpoints":["10.0.0.10:8080"]}`},
		{route: "DELETE /admin/services/{name}", method: "DELETE", path: "/admin/services/ledger"},
		{route: "GET /admin/xds/status", method: "GET", path: "/admin/xds/status"},
		{route: "GET /admin/alerts", method: "GET", path: "/admin/alerts"},
		{route: "POST /admin/alerts/test", method: "POST", path: "/admin/alerts/test"},
		{route: "GET /admin/filter/config", method: "GET", path: "/admin/filter/config"},
		{route: "GET /admin/approvals", method: "GET", path: "/admin/approvals?status=pending"},
		{route: "GET /admin/approvals/{id}", method: "GET", path: "/admin/approvals/" + toApprove},
		{route: "POST /admin/approvals/{id}/approve", method: "POST", path: "/admin/approvals/" + toApprove + "/approve", body: `{"by":"alice"}`},
		{route: "POST /admin/approvals/{id}/deny", method: "POST", path: "/admin/approvals/" + toDeny + "/deny", body: `{"by":"alice"}`},
	}
	checkRows(t, routes, "/admin/", rows)

	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	asAdmin := func(tok string) map[string]string { return map[string]string{"X-Admin-Token": tok} }
	last := authTestAdminToken[len(authTestAdminToken)-1]
	unauthorized := []credential{
		{"no credential", nil},
		{"an empty admin token", asAdmin("")},
		{"an agent token as the admin token", asAdmin(target.Token)},
		{"the filter credential in its own header", map[string]string{filterprotocol.HeaderFilterToken: minted}},
		{"the filter credential as the admin token", asAdmin(minted)},
		{"a proxy's credential as the admin token", asAdmin(testProxyToken)},
		{"the filter credential every proxy shared once", asAdmin(legacyFilterToken(authTestAdminToken))},
		{"a wrong admin token of the same length", asAdmin(authTestAdminToken[:len(authTestAdminToken)-1] + string(last^1))},
		{"the admin token and a byte more", asAdmin(authTestAdminToken + "0")},
		{"the admin token but its last byte", asAdmin(authTestAdminToken[:len(authTestAdminToken)-1])},
		{"the admin token in another case", asAdmin(strings.ToUpper(authTestAdminToken))},
	}
	forbidden := []credential{
		{"an agent token", bearer(target.Token)},
		{"the admin token as a bearer token", bearer(authTestAdminToken)},
		{"the filter credential as a bearer token", bearer(minted)},
		{"a proxy's credential as a bearer token", bearer(testProxyToken)},
	}

	before := storedState(t, base)
	for _, row := range rows {
		t.Run(row.route, func(t *testing.T) {
			for _, c := range unauthorized {
				code, body := send(t, base, row, c.headers)
				if e := decodeError(body); code != http.StatusUnauthorized || e.Error != "unauthorized" {
					t.Errorf("%s: %d %.200s, want 401 unauthorized", c.name, code, body)
				}
			}
			for _, c := range forbidden {
				code, body := send(t, base, row, c.headers)
				if e := decodeError(body); code != http.StatusForbidden || e.Error != "forbidden" || e.Reason != api.ReasonAdminTokenRequired {
					t.Errorf("%s: %d %.200s, want 403 %s", c.name, code, body, api.ReasonAdminTokenRequired)
				}
			}
		})
	}
	if after := storedState(t, base); after != before {
		t.Fatalf("refused requests changed what is stored:\nbefore %s\nafter  %s", before, after)
	}

	// The admin token is let through on every row, in order (the deletes
	// come after the reads of what they delete).
	for _, row := range rows {
		if code, body := send(t, base, row, asAdmin(authTestAdminToken)); code < 200 || code > 299 {
			t.Errorf("%s %s with the admin token: %d %.300s, want a 2xx", row.method, row.path, code, body)
		}
	}
	if after := storedState(t, base); after == before {
		t.Error("the admin token's requests changed nothing stored: the rows do not act")
	}
}

// storedState is what the admin API's writes would change: agents,
// stored policies, services, revoked tokens, signing keys and approvals,
// as the API reads them back.
func storedState(t *testing.T, base string) string {
	t.Helper()
	var b strings.Builder
	for _, path := range []string{"/admin/agents?limit=1000", "/admin/policies", "/admin/services", "/admin/tokens/revoked?limit=1000", "/.well-known/jwks.json", "/admin/approvals"} {
		code, body := send(t, base, routeRequest{method: "GET", path: path}, map[string]string{"X-Admin-Token": authTestAdminToken})
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %.200s", path, code, body)
		}
		b.WriteString(path + " " + string(bytes.TrimSpace(body)) + "\n")
	}
	return b.String()
}

func decodeError(body []byte) api.ErrorBody {
	var e api.ErrorBody
	_ = json.Unmarshal(body, &e)
	return e
}

// startAuthTest runs a server with a service catalogue, the wasm filter
// and a known admin token, and returns it with the routes its API
// registered (admin.API.Routes), for the credential tests.
func startAuthTest(t *testing.T) (*running, []string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "services.yaml")
	if err := os.WriteFile(file, []byte(servicesV1), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := configWith(t, func(c *config.Config) {
		c.ServicesFile, c.WasmFilterPath, c.AdminToken = file, "/etc/envoy/meshguard-filter.wasm", authTestAdminToken
		writePolicy(t, c, "ask.yaml", askPolicy)
	})
	routes := routesOf(t, cfg)
	return run(t, cfg), routes
}
