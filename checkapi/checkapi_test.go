package checkapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/checkapi"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

// TestCheck: POST /v1/check answers with the engine's decision, its
// status the decision's own, so SDKs branch on it.
func TestCheck(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	mail := e.agent(t, "emailer", trust.Verified, "emailer")
	lim := e.agent(t, "limited", trust.Verified, "limited")
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

	// Allowed: 200 with the decision and the response headers of docs/enforcement.md.
	d, err := e.as(t, mail.Token).Check(ctx, api.CheckRequest{Action: "read:contacts", Resource: "/contacts", TraceParent: parent})
	if err != nil || !d.Allowed || d.Decision != "allow" || d.Status != 200 || d.Policy != "emailers" || d.Rule != "send" ||
		d.AgentID != mail.ID || d.AgentName != "emailer" || d.TrustTier != "verified" || d.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" ||
		!strings.HasPrefix(d.DecisionID, "dec_") || len(d.Chain) != 1 || d.Chain[0] != mail.ID || d.PolicyRevision == "" || d.Error != "" {
		t.Fatalf("allowed: %+v, %v", d, err)
	}
	status, hdr, _ := e.raw(t, http.MethodPost, "/v1/check", strings.NewReader(`{"action":"read:x"}`),
		map[string]string{"Authorization": "Bearer " + mail.Token})
	if status != 200 || hdr.Get("X-MeshGuard-Decision") != "allow" || hdr.Get("X-MeshGuard-Policy") != "emailers" || len(hdr.Get("X-MeshGuard-Trace-Id")) != 32 {
		t.Fatalf("%d %v", status, hdr)
	}

	// Denied: the decision's status, the same shape, plus the deny body's fields.
	d, err = e.as(t, mail.Token).Check(ctx, api.CheckRequest{Action: "delete:everything"})
	ae := apiError(t, err, http.StatusForbidden)
	if d.Allowed || d.Decision != "deny" || d.Reason != policy.ReasonNoMatchingRule || d.Error != "forbidden" || d.DenyTraceID != d.TraceID ||
		ae.Decision == nil || ae.Reason != policy.ReasonNoMatchingRule || client.ExitCode(err) != client.ExitDenied {
		t.Fatalf("denied: %+v, %+v", d, ae)
	}

	// Rate limited: 429 with retry_after.
	for i := range 2 {
		if _, err := e.as(t, lim.Token).Check(ctx, api.CheckRequest{Action: "read:x"}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	d, err = e.as(t, lim.Token).Check(ctx, api.CheckRequest{Action: "read:x"})
	apiError(t, err, http.StatusTooManyRequests)
	if d.Error != "rate_limited" || d.DenyRetryAfter < 1 || d.RetryAfter != d.DenyRetryAfter || d.Policy != "limited" {
		t.Fatalf("rate limited: %+v", d)
	}

	// No or bad credentials: 401.
	_, err = e.as(t, "").Check(ctx, api.CheckRequest{Action: "read:x"})
	apiError(t, err, http.StatusUnauthorized)
	d, err = e.as(t, "not.a.token").Check(ctx, api.CheckRequest{Action: "read:x"})
	if apiError(t, err, http.StatusUnauthorized); client.ExitCode(err) != client.ExitAuth {
		t.Fatalf("exit code %d", client.ExitCode(err))
	}
	if d.Error != "unauthorized" || d.Status != 401 || d.DenyTraceID != d.TraceID || d.RetryAfter != 0 || d.DenyRetryAfter != 0 {
		t.Fatalf("unauthorized: %+v", d)
	}
	// Bad input: 400, never an allow.
	for _, req := range []api.CheckRequest{{}, {Action: "everything"}, {Action: "read:x", Resource: strings.Repeat("r", engine.MaxResourceLen+1)}} {
		_, err = e.as(t, mail.Token).Check(ctx, req)
		apiError(t, err, http.StatusBadRequest)
	}
	// The engine's 400 is a decision: its body names the error as the deny body does.
	d, err = e.as(t, mail.Token).Check(ctx, api.CheckRequest{Action: "read:x", Resource: strings.Repeat("r", engine.MaxResourceLen+1)})
	apiError(t, err, http.StatusBadRequest)
	if d.Error != "bad_request" || d.Status != 400 || d.Allowed || d.DenyTraceID != d.TraceID {
		t.Fatalf("bad request: %+v", d)
	}
}

func TestDelegations(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	orch := e.agent(t, "orchestrator", trust.Trusted, "orchestrator")
	res := e.agent(t, "researcher", trust.Verified, "researcher")
	mail := e.agent(t, "emailer", trust.Verified, "emailer")
	scraper := e.agent(t, "scraper", trust.Untrusted, "orchestrator")

	// orchestrator → researcher, two hops.
	toRes, err := e.as(t, orch.Token).Delegate(ctx, api.DelegationRequest{Delegate: "researcher", Actions: []string{"read:*", "write:email"}, MaxDepth: 2, TTL: api.Duration(10 * time.Minute)})
	if err != nil || toRes.Token == "" || strings.Join(toRes.Chain, ",") != orch.ID+","+res.ID || toRes.MaxChain != 2 || len(toRes.Scope) != 2 {
		t.Fatalf("orchestrator → researcher: %+v, %v", toRes, err)
	}
	if life := time.Until(toRes.ExpiresAt); life > 10*time.Minute || life < 9*time.Minute {
		t.Fatalf("expiresAt %v", toRes.ExpiresAt)
	}
	// The researcher uses it: the chain shows, the scope holds.
	d, err := e.as(t, res.Token).Check(ctx, api.CheckRequest{Action: "read:papers", Delegation: toRes.Token})
	if err != nil || strings.Join(d.Chain, ",") != orch.ID+","+res.ID {
		t.Fatalf("researcher for orchestrator: %+v, %v", d, err)
	}
	d, err = e.as(t, res.Token).Check(ctx, api.CheckRequest{Action: "write:research/x", Delegation: toRes.Token})
	if apiError(t, err, 403); d.Reason != policy.ReasonDelegationScope {
		t.Fatalf("outside the token's scope: %+v", d)
	}

	// researcher → emailer, acting for the orchestrator.
	toMail, err := e.as(t, res.Token).Delegate(ctx, api.DelegationRequest{Delegate: mail.ID, Actions: []string{"write:email"}, Parent: toRes.Token})
	if err != nil || strings.Join(toMail.Chain, ",") != orch.ID+","+res.ID+","+mail.ID || !toMail.ExpiresAt.After(time.Now()) || toMail.ExpiresAt.After(toRes.ExpiresAt) {
		t.Fatalf("researcher → emailer: %+v, %v", toMail, err)
	}
	d, err = e.as(t, mail.Token).Check(ctx, api.CheckRequest{Action: "write:email", Delegation: toMail.Token})
	if err != nil || len(d.Chain) != 3 {
		t.Fatalf("emailer for orchestrator → researcher: %+v, %v", d, err)
	}

	// One hop only: the researcher may act but not hand on.
	oneHop, err := e.as(t, orch.Token).Delegate(ctx, api.DelegationRequest{Delegate: "researcher", Actions: []string{"read:*"}})
	if err != nil || oneHop.MaxChain != 1 {
		t.Fatalf("maxDepth 1: %+v, %v", oneHop, err)
	}
	readsOnly, err := e.as(t, orch.Token).Delegate(ctx, api.DelegationRequest{Delegate: "researcher", Actions: []string{"read:*"}, MaxDepth: 2})
	if err != nil {
		t.Fatal(err)
	}

	refusals := []struct {
		name   string
		caller string
		req    api.DelegationRequest
		status int
		reason string
	}{
		{"not permitted: emailers have no delegation block", mail.Token, api.DelegationRequest{Delegate: "researcher", Actions: []string{"read:*"}}, 403, policy.ReasonDelegationNotPermitted},
		{"depth: the parent allows one hop", res.Token, api.DelegationRequest{Delegate: "emailer", Actions: []string{"read:*"}, Parent: oneHop.Token}, 403, policy.ReasonDelegationDepth},
		{"depth: asking further than the parent", res.Token, api.DelegationRequest{Delegate: "emailer", Actions: []string{"write:email"}, MaxDepth: 2, Parent: toRes.Token}, 403, policy.ReasonDelegationDepth},
		{"scope outside the parent's", res.Token, api.DelegationRequest{Delegate: "emailer", Actions: []string{"write:email"}, Parent: readsOnly.Token}, 403, policy.ReasonDelegationScope},
		{"scope wider than the parent's", res.Token, api.DelegationRequest{Delegate: "emailer", Actions: []string{"*"}, Parent: toRes.Token}, 403, policy.ReasonDelegationScope},
		{"untrusted delegator", scraper.Token, api.DelegationRequest{Delegate: "researcher", Actions: []string{"read:*"}}, 403, policy.ReasonDelegationUntrusted},
		{"a stolen parent token", mail.Token, api.DelegationRequest{Delegate: "researcher", Actions: []string{"read:*"}, Parent: toRes.Token}, 403, policy.ReasonDelegationActorMismatch},
		{"a cycle", mail.Token, api.DelegationRequest{Delegate: "orchestrator", Actions: []string{"read:*"}, Parent: toMail.Token}, 403, policy.ReasonDelegationCycle},
		{"to itself", orch.Token, api.DelegationRequest{Delegate: "orchestrator", Actions: []string{"read:*"}}, 400, ""},
		{"unknown delegate", orch.Token, api.DelegationRequest{Delegate: "ghost", Actions: []string{"read:*"}}, 400, ""},
		{"no actions", orch.Token, api.DelegationRequest{Delegate: "researcher"}, 400, ""},
		{"maxDepth out of range", orch.Token, api.DelegationRequest{Delegate: "researcher", Actions: []string{"read:*"}, MaxDepth: 6}, 400, ""},
		{"bad action", orch.Token, api.DelegationRequest{Delegate: "researcher", Actions: []string{"read everything"}}, 400, ""},
		{"no token", "", api.DelegationRequest{Delegate: "researcher", Actions: []string{"read:*"}}, 401, engine.ReasonUnauthorized},
		{"bad token", "x.y.z", api.DelegationRequest{Delegate: "researcher", Actions: []string{"read:*"}}, 401, engine.ReasonUnauthorized},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.as(t, tc.caller).Delegate(ctx, tc.req)
			ae := apiError(t, err, tc.status)
			if ae.Reason != tc.reason || ae.Message == "" {
				t.Fatalf("reason %q (%s), want %q", ae.Reason, ae.Message, tc.reason)
			}
		})
	}

	// A revoked delegate gets nothing; a revoked member breaks the chain.
	e.f.Revoke(t, mail.ID)
	_, err = e.as(t, res.Token).Delegate(ctx, api.DelegationRequest{Delegate: "emailer", Actions: []string{"write:email"}, Parent: toRes.Token})
	if ae := apiError(t, err, 403); ae.Reason != policy.ReasonDelegationRevoked {
		t.Fatal(ae)
	}
}

// TestStrictBodies: the bodies of both endpoints are decoded strictly
// (internal/httpjson): an unknown or repeated key, a key in another case,
// a wrong type, trailing data or an empty body is a 400 naming what is
// wrong — never a decision on one reading of a body that a log or proxy
// reads another way — and the message never shows a Go type.
func TestStrictBodies(t *testing.T) {
	e := newEnv(t)
	agent := e.agent(t, "someone", trust.Verified, "emailer")
	bearer := map[string]string{"Authorization": "Bearer " + agent.Token, "Content-Type": "application/json"}
	tests := []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"unknown field: check", "/v1/check", `{"action":"read:x","actor":"admin"}`, 400, `unknown field "actor"`},
		{"unknown field: delegations", "/v1/delegations", `{"delegates":"x"}`, 400, `unknown field "delegates"`},
		{"not an object", "/v1/check", `["read:x"]`, 400, "expected a JSON object"},
		{"trailing data", "/v1/check", `{"action":"read:x"} {"action":"write:x"}`, 400, "after the JSON object"},
		{"empty body", "/v1/check", ``, 400, "empty body"},
		{"a key in another case", "/v1/check", `{"Action":"read:x"}`, 400, `unknown field "Action" (field names are case-sensitive: did you mean "action"?)`},
		{"a key in capitals", "/v1/check", `{"action":"read:x","RESOURCE":"r"}`, 400, `unknown field "RESOURCE"`},
		{"a repeated key", "/v1/check", `{"action":"read:x","action":"delete:x"}`, 400, `duplicate key "action"`},
		{"a repeated key in the context", "/v1/check", `{"action":"read:x","context":{"to":"a","to":"b"}}`, 400, `duplicate key "context.to"`},
		{"a repeated key deep in the context", "/v1/check", `{"action":"read:x","context":{"a":[{"b":1,"b":2}]}}`, 400, `duplicate key "context.a[0].b"`},
		{"a key that is not UTF-8", "/v1/check", "{\"action\":\"read:x\",\"context\":{\"a\xff\":1,\"a\xfe\":2}}", 400, "is not valid UTF-8"},
		{"an unknown key", "/v1/check", `{"action":"read:x","agent":"admin"}`, 400, `unknown field "agent"`},
		{"context of the wrong type", "/v1/check", `{"action":"read:x","context":"to=a"}`, 400, "context: expected an object, got string"},
		{"action of the wrong type", "/v1/check", `{"action":["read:x"]}`, 400, "action: expected a string, got array"},
		{"a repeated key asking for a delegation", "/v1/delegations", `{"delegate":"x","delegate":"y","actions":["read:*"]}`, 400, `duplicate key "delegate"`},
		{"wrong content type", "/v1/check", `{"action":"read:x"}`, 415, "application/json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := bearer
			if tc.status == http.StatusUnsupportedMediaType {
				hdr = map[string]string{"Authorization": "Bearer " + agent.Token, "Content-Type": "text/plain"}
			}
			status, h, data := e.raw(t, http.MethodPost, tc.path, strings.NewReader(tc.body), hdr)
			b := errorBody(t, data)
			if status != tc.status || !strings.Contains(b.Message, tc.want) || h.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s, want %d mentioning %q", status, data, tc.status, tc.want)
			}
			if strings.Contains(b.Message, "interface") || strings.Contains(b.Message, "map[") {
				t.Fatalf("the message shows a Go type: %s", b.Message)
			}
		})
	}
	// Nothing was decided on any of it.
	onlyRecord(t, e, agent.Token)
	// Exact keys (and context keys differing in case) are decided.
	status, _, data := e.raw(t, http.MethodPost, "/v1/check", strings.NewReader(`{"action":"read:x","resource":"r","context":{"to":"a","To":"b"}}`), bearer)
	if status != http.StatusOK {
		t.Fatalf("a body with exact keys was refused: %d %s", status, data)
	}
}

// onlyRecord makes one decision that is recorded, waits until the trail
// holds it, and fails unless it is the only record: the trail stores
// records in the order they were queued, so anything a refused request had
// queued before it would be stored by then.
func onlyRecord(t *testing.T, e *env, token string) {
	t.Helper()
	const marker = "read:marker"
	if _, err := e.as(t, token).Check(t.Context(), api.CheckRequest{Action: marker}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, err := e.f.Store.QueryAudit(t.Context(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(page.Records, func(r audit.Record) bool { return r.Action == marker }) {
			if len(page.Records) != 1 {
				t.Fatalf("%d records, want only the marker's: %+v", len(page.Records), page.Records)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the marker decision was never recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOversizedBody: a body over MaxBodyBytes is a 413, sent with a length
// or chunked, and decides nothing.
func TestOversizedBody(t *testing.T) {
	e := newEnv(t)
	agent := e.agent(t, "someone", trust.Verified, "emailer")
	big := `{"action":"read:x","context":{"k":"` + strings.Repeat("a", checkapi.MaxBodyBytes) + `"}}`
	for _, path := range []string{"/v1/check", "/v1/delegations"} {
		for _, chunked := range []bool{false, true} {
			body := strings.NewReader(big)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+path, body)
			if err != nil {
				t.Fatal(err)
			}
			if chunked {
				// Hide the length: the body goes out chunked.
				req.ContentLength = -1
				req.Body = io.NopCloser(struct{ io.Reader }{body})
			}
			req.Header.Set("Authorization", "Bearer "+agent.Token)
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var b api.ErrorBody
			err = json.NewDecoder(resp.Body).Decode(&b)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge || b.Error != "payload_too_large" {
				t.Fatalf("%s (chunked %v): %d %+v %v", path, chunked, resp.StatusCode, b, err)
			}
		}
	}
	onlyRecord(t, e, agent.Token)
}

// TestRouting: the router answers a wrong method with 405 and the methods
// allowed, in JSON.
func TestRouting(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/v1/check", "/v1/delegations"} {
		status, hdr, data := e.raw(t, http.MethodGet, path, nil, nil)
		if b := errorBody(t, data); status != 405 || hdr.Get("Allow") != "POST" || b.Error != "method_not_allowed" {
			t.Errorf("GET %s: %d Allow=%q %s", path, status, hdr.Get("Allow"), data)
		}
	}
}

// lockedRecorder is an audit store that cannot take a record: the real
// engine over it fails closed on every decision.
type lockedRecorder struct{}

func (lockedRecorder) Write(context.Context, audit.Record) error {
	return errors.New("database is locked")
}

// TestEngineFailureIs503: MeshGuard's own failure is a 503, never an
// allow, and says nothing of its cause.
func TestEngineFailureIs503(t *testing.T) {
	e := newEnv(t)
	failing, err := engine.New(engine.Config{Tokens: e.f.Cached, Delegations: e.f.Cached, Delegator: e.f.Issuer,
		Agents: e.f.Agents, Names: e.f.Store, Policies: e.f.Policies, Limiter: e.f.Limiter, Recorder: lockedRecorder{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, failing)
	c, err := client.New(client.Config{BaseURL: srv.URL, AgentToken: "whatever"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Check(t.Context(), api.CheckRequest{Action: "read:x"})
	if ae := apiError(t, err, http.StatusServiceUnavailable); d.Allowed || ae.Code != "unavailable" || strings.Contains(ae.Message, "database") {
		t.Fatalf("%+v %+v", d, ae)
	}
	// A delegation whose record cannot be written is not minted.
	orch := e.agent(t, "orchestrator", trust.Trusted, "orchestrator")
	e.agent(t, "researcher", trust.Verified, "researcher")
	tok, err := c.WithAgentToken(orch.Token).Delegate(t.Context(), api.DelegationRequest{Delegate: "researcher", Actions: []string{"read:*"}})
	if ae := apiError(t, err, http.StatusServiceUnavailable); tok.Token != "" || ae.Code != "unavailable" || strings.Contains(ae.Message, "database") {
		t.Fatalf("%+v %+v", tok, ae)
	}
}

func TestNewRequiresAnEngine(t *testing.T) {
	if _, err := checkapi.New(nil, nil); err == nil {
		t.Fatal("New accepted no engine")
	}
}

// TestRefusedDelegationNamesItsTrace: a refused delegation says which
// trace and decision it was recorded under, in its body and header, as a
// check's denial does, so an SDK's error can name them.
func TestRefusedDelegationNamesItsTrace(t *testing.T) {
	e := newEnv(t)
	mail := e.agent(t, "emailer", trust.Verified, "emailer")
	e.agent(t, "researcher", trust.Verified, "researcher")
	req, err := http.NewRequest("POST", e.srv.URL+"/v1/delegations", strings.NewReader(`{"delegate":"researcher","actions":["read:*"]}`))
	if err != nil {
		t.Fatal(err)
	}
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req.Header.Set("Authorization", "Bearer "+mail.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body api.ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 403 || body.TraceID != trace || !strings.HasPrefix(body.DecisionID, "dec_") || resp.Header.Get("X-MeshGuard-Trace-Id") != trace {
		t.Fatalf("%d %+v, trace header %q: want 403 naming trace %s and a decision", resp.StatusCode, body, resp.Header.Get("X-MeshGuard-Trace-Id"), trace)
	}
}
