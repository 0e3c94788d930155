package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/admin"
	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/checkapi"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/trust"
)

const adminToken = "mgadm_test-token-0123456789abcdef"

// filePolicies are the policies under POLICIES_DIR in every test: an
// orchestrator that may delegate two hops within a read/email ceiling, a
// researcher that may delegate one hop, and an emailer that may not
// delegate at all.
const filePolicies = `# The mesh of the delegation tests.
name: orchestrators
appliesTo: {tags: [orchestrator]}
rules:
  - {name: work, effect: allow, actions: ["read:*", "write:*"]}
delegation: {maxDepth: 2, permissionCeiling: ["read:*", "write:email", "write:research/*"]}
---
name: researchers
appliesTo: {tags: [researcher]}
rules:
  - {name: reads, effect: allow, actions: ["read:*", "write:research/*", "write:email"]}
delegation: {maxDepth: 1}
---
name: emailers
appliesTo: {tags: [emailer]}
rules:
  - {name: send, effect: allow, actions: ["write:email", "read:*"]}
`

// env is a real MeshGuard HTTP API on 127.0.0.1 — the admin API and the
// check API on one router — over a real engine and a SQLite store, with the policies of filePolicies in a policies directory
// and the stored policies beside them.
type env struct {
	f       *enginetest.Fixture
	dir     string
	srv     *httptest.Server
	c       *client.Client // with the admin token
	mu      sync.Mutex
	changes []admin.Change
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{dir: t.TempDir()}
	writeFile(t, filepath.Join(e.dir, "base.yaml"), filePolicies)
	e.f = enginetest.NewWithSources(t, enginetest.Options{}, func(f *enginetest.Fixture) []policy.Source {
		return []policy.Source{policy.Dir(e.dir), admin.NewStoredPolicies(f.Store)}
	})
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	api, err := admin.New(admin.Config{
		Store: e.f.Store, Keys: e.f.Keys, Issuer: e.f.Issuer, Verifier: e.f.Verifier,
		Tokens: e.f.Cached, Agents: e.f.Agents, Policies: e.f.Policies, PolicyFiles: policy.Dir(e.dir),
		Audit: e.f.Store, AdminToken: adminToken, BaseURL: "https://meshguard.example.com",
		Revocations: &admin.Revocations{Store: e.f.Store, List: e.f.Revoked},
		Logger:      log,
		OnChange: func(c admin.Change) {
			e.mu.Lock()
			e.changes = append(e.changes, c)
			e.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The admin API's effects show at an enforcement point: the check
	// API beside it, on one router, as the server mounts them.
	checks, err := checkapi.New(e.f.Engine, log)
	if err != nil {
		t.Fatal(err)
	}
	r := httpjson.NewRouter(log)
	api.Register(r)
	checks.Register(r)
	e.srv = httptest.NewServer(r)
	t.Cleanup(e.srv.Close)
	if e.c, err = client.New(client.Config{BaseURL: e.srv.URL, AdminToken: adminToken, Timeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	return e
}

// testWriter sends the API's log to the test log, and fails the test if a
// token ever appears in it.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("eyJ")) || bytes.Contains(p, []byte(adminToken)) {
		w.t.Errorf("a token reached the log: %s", p)
	}
	w.t.Logf("%s", bytes.TrimSpace(p))
	return len(p), nil
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// agent creates an agent through the API and returns it with its token.
func (e *env) agent(t *testing.T, name string, tier trust.Tier, tags ...string) api.AgentWithToken {
	t.Helper()
	a, err := e.c.CreateAgent(t.Context(), api.CreateAgentRequest{Name: name, TrustTier: tier.String(), Tags: tags})
	if err != nil {
		t.Fatalf("CreateAgent(%s): %v", name, err)
	}
	return a
}

// as returns a client that acts as the agent holding token.
func (e *env) as(token string) *client.Client { return e.c.WithAdminToken("").WithAgentToken(token) }

// raw sends a request with exactly the given headers and returns the
// status, headers and body.
func (e *env) raw(t *testing.T, method, path string, body io.Reader, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

// errorBody decodes an error answer.
func errorBody(t *testing.T, data []byte) api.ErrorBody {
	t.Helper()
	var b api.ErrorBody
	if err := json.Unmarshal(data, &b); err != nil || b.Error == "" {
		t.Fatalf("not an error body: %s (%v)", data, err)
	}
	return b
}

// apiError asserts err is an *APIError with status and returns (a copy
// of) it.
func apiError(t *testing.T, err error, status int) client.APIError {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error = %v (%T), want an *APIError with status %d", err, err, status)
	}
	if ae.Status != status {
		t.Fatalf("status = %d (%v), want %d", ae.Status, ae, status)
	}
	return *ae
}

func adminHeaders(extra map[string]string) map[string]string {
	h := map[string]string{"X-Admin-Token": adminToken, "Content-Type": "application/json"}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

func verify(t *testing.T, e *env, token string) identity.Verified {
	t.Helper()
	v, err := e.f.Verifier.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}
	return v
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
