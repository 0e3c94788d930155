package checkapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meshguard/meshguard/checkapi"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/trust"
)

// policies are the policies of every test: an orchestrator that may
// delegate two hops within a read/email ceiling, a researcher that may
// delegate one hop, an emailer that may not delegate at all, and a
// rate-limited reader.
const policies = `name: orchestrators
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
---
name: limited
appliesTo: {tags: [limited]}
rules:
  - {name: reads, effect: allow, actions: ["read:*"]}
rateLimits: {requestsPerMinute: 2}
`

// env is the check API on 127.0.0.1, on the server's router, over a real
// engine and a SQLite store.
type env struct {
	f   *enginetest.Fixture
	srv *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{f: enginetest.New(t, policies, enginetest.Options{})}
	e.srv = serve(t, e.f.Engine)
	return e
}

// serve runs the check API over eng on the router the server uses.
func serve(t *testing.T, eng checkapi.Engine) *httptest.Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	a, err := checkapi.New(eng, log)
	if err != nil {
		t.Fatal(err)
	}
	r := httpjson.NewRouter(log)
	a.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

// testWriter sends the API's log to the test log, and fails the test if a
// token ever appears in it.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("eyJ")) {
		w.t.Errorf("a token reached the log: %s", p)
	}
	w.t.Logf("%s", bytes.TrimSpace(p))
	return len(p), nil
}

// agent is an agent of the store and its token.
type agent struct{ ID, Token string }

// agent creates an active agent with a token.
func (e *env) agent(t *testing.T, name string, tier trust.Tier, tags ...string) agent {
	t.Helper()
	a, tok := e.f.Agent(t, name, tier, tags)
	return agent{ID: a.ID, Token: tok}
}

// as returns a client that acts as the agent holding token.
func (e *env) as(t *testing.T, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{BaseURL: e.srv.URL, AgentToken: token, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

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
func errorBody(t *testing.T, data []byte) struct{ Error, Reason, Message string } {
	t.Helper()
	var b struct{ Error, Reason, Message string }
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
