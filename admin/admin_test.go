package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/admin"
	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/trust"
)

// TestRevocationIsImmediate: revoking through the API stops /v1/check at
// once, though the token was verified (and cached) a moment before.
func TestRevocationIsImmediate(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	mail := e.agent(t, "emailer", trust.Verified, "emailer")
	for range 3 { // warm every cache
		if _, err := e.as(mail.Token).Check(ctx, api.CheckRequest{Action: "read:contacts"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.c.RevokeAgent(ctx, "emailer"); err != nil {
		t.Fatal(err)
	}
	d, err := e.as(mail.Token).Check(ctx, api.CheckRequest{Action: "read:contacts"})
	apiError(t, err, http.StatusUnauthorized)
	if d.Reason != engine.ReasonAgentRevoked || d.Error != "unauthorized" {
		t.Fatalf("after revoke: %+v", d)
	}
}

func TestAdminAuth(t *testing.T) {
	e := newEnv(t)
	agent := e.agent(t, "someone", trust.Privileged)
	endpoints := []struct{ method, path, body string }{
		{"GET", "/admin/agents", ""},
		{"POST", "/admin/agents", `{"name":"x"}`},
		{"GET", "/admin/agents/someone", ""},
		{"PATCH", "/admin/agents/someone", `{"tags":[]}`},
		{"DELETE", "/admin/agents/someone", ""},
		{"POST", "/admin/agents/someone/token", ""},
		{"GET", "/admin/policies", ""},
		{"GET", "/admin/policies/researchers", ""},
		{"POST", "/admin/policies", "name: x\n"},
		{"DELETE", "/admin/policies/x", ""},
		{"POST", "/admin/policies/validate", "name: x\n"},
		{"POST", "/admin/policies/test", `{"agent":"someone","action":"read:x"}`},
		{"POST", "/admin/keys/rotate", ""},
	}
	creds := []struct {
		name   string
		hdr    map[string]string
		status int
		reason string
	}{
		{"nothing", nil, 401, ""},
		{"wrong admin token", map[string]string{"X-Admin-Token": adminToken + "x"}, 401, ""},
		{"short wrong admin token", map[string]string{"X-Admin-Token": "x"}, 401, ""},
		{"agent token", map[string]string{"Authorization": "Bearer " + agent.Token}, 403, api.ReasonAdminTokenRequired},
		{"admin token as a bearer token", map[string]string{"Authorization": "Bearer " + adminToken}, 403, api.ReasonAdminTokenRequired},
		{"agent token and a wrong admin token", map[string]string{"Authorization": "Bearer " + agent.Token, "X-Admin-Token": "nope"}, 401, ""},
	}
	for _, ep := range endpoints {
		for _, c := range creds {
			t.Run(ep.method+" "+ep.path+"/"+c.name, func(t *testing.T) {
				status, _, data := e.raw(t, ep.method, ep.path, strings.NewReader(ep.body), c.hdr)
				b := errorBody(t, data)
				if status != c.status || b.Reason != c.reason {
					t.Fatalf("%d %s, want %d %q", status, data, c.status, c.reason)
				}
			})
		}
	}
	// Through the client: the CLI's exit code for authentication.
	_, err := e.c.WithAdminToken("wrong-token-wrong-token").ListAgents(t.Context(), client.AgentFilter{})
	if apiError(t, err, 401); client.ExitCode(err) != client.ExitAuth {
		t.Fatalf("exit code %d", client.ExitCode(err))
	}
	// The right token, with or without a bearer token beside it.
	for _, h := range []map[string]string{{"X-Admin-Token": adminToken}, {"X-Admin-Token": adminToken, "Authorization": "Bearer " + agent.Token}} {
		if status, _, data := e.raw(t, "GET", "/admin/agents", nil, h); status != 200 {
			t.Fatalf("%d %s", status, data)
		}
	}
}

func TestStrictJSON(t *testing.T) {
	e := newEnv(t)
	e.agent(t, "someone", trust.Verified, "emailer")
	tests := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		want                     string
	}{
		{"unknown field: create", "POST", "/admin/agents", `{"name":"x","trust":"verified"}`, adminHeaders(nil), 400, `unknown field "trust"`},
		{"unknown field: patch", "PATCH", "/admin/agents/someone", `{"status":"active"}`, adminHeaders(nil), 400, `unknown field "status"`},
		{"unknown field: token", "POST", "/admin/agents/someone/token", `{"ttl":"1h","scope":"x"}`, adminHeaders(nil), 400, `unknown field "scope"`},
		{"unknown field: rotate", "POST", "/admin/keys/rotate", `{"algorithm":"ES256"}`, adminHeaders(nil), 400, `unknown field "algorithm"`},
		{"unknown field: test", "POST", "/admin/policies/test", `{"agnt":"someone"}`, adminHeaders(nil), 400, `unknown field "agnt"`},
		{"wrong type", "POST", "/admin/agents", `{"name":5}`, adminHeaders(nil), 400, "name: expected a string, got number"},
		{"wrong type in a list", "POST", "/admin/agents", `{"name":"x","tags":"a,b"}`, adminHeaders(nil), 400, "tags: expected a list of strings"},
		{"bad duration", "POST", "/admin/agents", `{"name":"x","ttl":"forever"}`, adminHeaders(nil), 400, `ttl: expected a duration such as "24h"`},
		{"negative duration", "POST", "/admin/agents/someone/token", `{"ttl":-5}`, adminHeaders(nil), 400, "ttl: expected a duration"},
		{"not an object", "POST", "/admin/agents", `["x"]`, adminHeaders(nil), 400, "expected a JSON object"},
		{"trailing data", "POST", "/admin/agents", `{"name":"x"} {"name":"y"}`, adminHeaders(nil), 400, "after the JSON object"},
		{"broken JSON", "POST", "/admin/agents", `{"name":"x",`, adminHeaders(nil), 400, "invalid JSON"},
		{"empty body", "POST", "/admin/agents", ``, adminHeaders(nil), 400, "empty body"},
		{"wrong content type", "POST", "/admin/agents", `{"name":"x"}`, adminHeaders(map[string]string{"Content-Type": "text/plain"}), 415, "application/json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, data := e.raw(t, tc.method, tc.path, strings.NewReader(tc.body), tc.hdr)
			b := errorBody(t, data)
			if status != tc.status || !strings.Contains(b.Message, tc.want) || hdr.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s, want %d mentioning %q", status, data, tc.status, tc.want)
			}
		})
	}
	// Nothing was created or changed by any of it.
	if list, _ := e.c.ListAgents(t.Context(), client.AgentFilter{}); len(list.Agents) != 1 || list.Agents[0].Status != "active" {
		t.Fatalf("agents: %+v", list)
	}
}

func TestOversizedBodies(t *testing.T) {
	e := newEnv(t)
	e.agent(t, "someone", trust.Verified, "emailer")
	big := func(n int) string { return `{"name":"x","metadata":{"k":"` + strings.Repeat("a", n) + `"}}` }
	tests := []struct {
		name, path, body string
		hdr              map[string]string
		chunked          bool
	}{
		{"agent", "/admin/agents", big(admin.MaxBodyBytes), adminHeaders(nil), false},
		{"agent, chunked", "/admin/agents", big(admin.MaxBodyBytes), adminHeaders(nil), true},
		{"policies", "/admin/policies", "name: x\n#" + strings.Repeat("#", admin.MaxPolicyBodyBytes), adminHeaders(map[string]string{"Content-Type": "application/yaml"}), false},
		{"policies, chunked", "/admin/policies", "name: x\n#" + strings.Repeat("#", admin.MaxPolicyBodyBytes), adminHeaders(map[string]string{"Content-Type": "application/yaml"}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.NewReader(tc.body)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.chunked {
				// Hide the length: the body goes out chunked.
				req.ContentLength = -1
				req.Body = io.NopCloser(struct{ io.Reader }{body})
			}
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b api.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge || b.Error != "payload_too_large" {
				t.Fatalf("%d %+v %v", resp.StatusCode, b, err)
			}
		})
	}
	if list, _ := e.c.ListAgents(t.Context(), client.AgentFilter{}); len(list.Agents) != 1 {
		t.Fatal("an oversized body created an agent")
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	mail := e.agent(t, "emailer", trust.Verified, "emailer")
	keys := func() []map[string]any {
		t.Helper()
		doc, err := e.c.JWKS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var set struct{ Keys []map[string]any }
		if err := json.Unmarshal(doc, &set); err != nil {
			t.Fatal(err)
		}
		return set.Keys
	}
	if n := len(keys()); n != 1 {
		t.Fatalf("%d keys before rotation", n)
	}
	oldKID := verify(t, e, mail.Token).KID

	rot, err := e.c.RotateKeys(ctx, "")
	if err != nil || rot.KID == "" || rot.KID == oldKID || rot.Alg != "EdDSA" {
		t.Fatalf("RotateKeys = %+v, %v", rot, err)
	}
	ks := keys()
	if len(ks) != 2 || ks[0]["kid"] != rot.KID || ks[1]["kid"] != oldKID {
		t.Fatalf("JWKS after rotation: %v", ks)
	}
	// Old tokens stay valid; new ones are signed with the new key.
	if _, err := e.as(mail.Token).Check(ctx, api.CheckRequest{Action: "read:x"}); err != nil {
		t.Fatalf("the old token after rotation: %v", err)
	}
	tok, err := e.c.IssueToken(ctx, "emailer", 0)
	if err != nil || verify(t, e, tok.Token).KID != rot.KID {
		t.Fatalf("new token: %v", err)
	}
	// Another algorithm; a bad one is refused.
	if rot2, err := e.c.RotateKeys(ctx, "ES256"); err != nil || rot2.Alg != "ES256" || len(keys()) != 3 {
		t.Fatalf("RotateKeys(ES256) = %+v, %v", rot2, err)
	}
	_, err = e.c.RotateKeys(ctx, "none")
	apiError(t, err, 400)
	_, err = e.c.RotateKeys(ctx, "HS256")
	apiError(t, err, 400)
}

func TestPublicEndpointsAndRouting(t *testing.T) {
	e := newEnv(t)
	if err := e.c.Health(t.Context()); err != nil {
		t.Fatal(err)
	}
	status, hdr, data := e.raw(t, "GET", "/.well-known/jwks.json", nil, nil)
	if status != 200 || hdr.Get("Cache-Control") != "public, max-age=60" || !strings.Contains(string(data), `"kty":"OKP"`) || strings.Contains(string(data), `"d"`) {
		t.Fatalf("JWKS: %d %v %s", status, hdr, data)
	}
	status, _, data = e.raw(t, "GET", "/.well-known/openid-configuration", nil, nil)
	var disc map[string]any
	if err := json.Unmarshal(data, &disc); err != nil || status != 200 || disc["jwks_uri"] != "https://meshguard.example.com/.well-known/jwks.json" || disc["issuer"] != "meshguard" {
		t.Fatalf("discovery: %d %s", status, data)
	}
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/nope", 404, ""},
		{"GET", "/admin/agents/x/y/z", 404, ""},
		{"POST", "/health", 405, "GET, HEAD"},
		{"DELETE", "/admin/agents", 405, "GET, HEAD, POST"},
		{"PUT", "/admin/agents/x", 405, "GET, HEAD, PATCH, DELETE"},
		{"GET", "/admin/keys/rotate", 405, "POST"},
	}
	for _, tc := range tests {
		status, hdr, data := e.raw(t, tc.method, tc.path, nil, map[string]string{"X-Admin-Token": adminToken})
		b := errorBody(t, data)
		if status != tc.status || hdr.Get("Allow") != tc.allow || hdr.Get("Content-Type") != "application/json" || b.Message == "" {
			t.Errorf("%s %s: %d Allow=%q %s, want %d Allow=%q", tc.method, tc.path, status, hdr.Get("Allow"), data, tc.status, tc.allow)
		}
	}
}

// TestReadyReportsItsHookAndDiscoveryFollowsHost: /ready reports the
// Ready hook's errors, and discovery without a configured base URL follows
// the request's Host.
func TestReadyReportsItsHookAndDiscoveryFollowsHost(t *testing.T) {
	e := newEnv(t)
	srvAPI, err := admin.New(admin.Config{
		Store: e.f.Store, Keys: e.f.Keys, Issuer: e.f.Issuer, Verifier: e.f.Verifier, Tokens: e.f.Cached,
		Agents: e.f.Agents, Policies: e.f.Policies, AdminToken: adminToken, Audit: e.f.Store,
		Ready: func(context.Context) error {
			return errors.Join(errors.New("store: unreachable"), errors.New("audit: behind"))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httpjson.NewRouter(nil)
	srvAPI.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Ready(t.Context())
	apiError(t, err, http.StatusServiceUnavailable)
	if len(st.Errors) != 2 || st.Errors[0] != "store: unreachable" {
		t.Fatalf("Ready = %+v", st)
	}
	// Discovery without a configured base URL follows the request's Host.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/.well-known/openid-configuration", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var disc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&disc); err != nil || disc["jwks_uri"] != srv.URL+"/.well-known/jwks.json" {
		t.Fatalf("discovery from Host: %v %v", disc, err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	e := newEnv(t)
	good := admin.Config{
		Store: e.f.Store, Keys: e.f.Keys, Issuer: e.f.Issuer, Verifier: e.f.Verifier, Tokens: e.f.Cached,
		Agents: e.f.Agents, Policies: e.f.Policies, AdminToken: adminToken, Audit: e.f.Store,
	}
	if _, err := admin.New(good); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*admin.Config){
		"no store":         func(c *admin.Config) { c.Store = nil },
		"no verifier":      func(c *admin.Config) { c.Verifier = nil },
		"no audit":         func(c *admin.Config) { c.Audit = nil },
		"short token":      func(c *admin.Config) { c.AdminToken = "short" },
		"bad base URL":     func(c *admin.Config) { c.BaseURL = "ftp://x" },
		"negative TTL":     func(c *admin.Config) { c.DefaultTokenTTL = -time.Second },
		"TTL too long":     func(c *admin.Config) { c.DefaultTokenTTL = 400 * 24 * time.Hour },
		"no admin token":   func(c *admin.Config) { c.AdminToken = "" },
		"no token cache":   func(c *admin.Config) { c.Tokens = nil },
		"no policy loader": func(c *admin.Config) { c.Policies = nil },
	} {
		cfg := good
		mod(&cfg)
		if _, err := admin.New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}
