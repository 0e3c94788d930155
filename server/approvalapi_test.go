package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/store/pgtest"
)

// askPolicy holds every read of an asker, and every send, for approval.
const askPolicy = `name: ask
appliesTo: {tags: [asker]}
rules:
  - {name: every-read, effect: approve, actions: ["read:*"], approvers: [security]}
  - {name: every-send, effect: approve, actions: ["send:*"]}
`

func withAsk(t *testing.T) func(*config.Config) {
	return func(c *config.Config) { writePolicy(t, c, "ask.yaml", askPolicy) }
}

// raiseApproval sends a read of path as the agent of tok through ext_authz
// and returns the approval its 403 names.
func raiseApproval(t *testing.T, r *running, tok, path string) string {
	t.Helper()
	denied := r.check(t, tok, "GET", path).GetDeniedResponse()
	for _, h := range denied.GetHeaders() {
		if h.GetHeader().GetKey() == engine.HeaderApproval && approval.ValidID(h.GetHeader().GetValue()) {
			return h.GetHeader().GetValue()
		}
	}
	t.Fatalf("GET %s: no approval raised: %v", path, denied)
	return ""
}

// answer is one HTTP answer, read whole.
type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d %.300s: %v", a.code, a.body, err)
	}
	return m
}

// call sends one request to r's HTTP port, with headers and a body.
func (r *running) call(t *testing.T, ctx context.Context, method, path string, headers map[string]string, body string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+r.addrs.HTTP+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return answer{}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Errorf("%s %s: reading: %v", method, path, err)
	}
	return answer{code: res.StatusCode, header: res.Header, body: b}
}

func bearerOf(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// waiters reads the meshguard_approval_waiters gauge of r's /metrics.
func (r *running) waiters(t *testing.T) int {
	t.Helper()
	a := r.call(t, context.Background(), "GET", "/metrics", nil, "")
	sc := bufio.NewScanner(bytes.NewReader(a.body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "meshguard_approval_waiters "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("meshguard_approval_waiters %q: %v", v, err)
			}
			return int(n)
		}
	}
	t.Fatalf("/metrics has no meshguard_approval_waiters: %.300s", a.body)
	return 0
}

// TestApprovalFollow: GET /v1/approvals/{id} answers the agent that asked
// (its view: no arguments, no approver's name) and the admin token (all of
// it); another agent, an unknown id, no or a wrong credential and a revoked
// agent are refused, and nothing tells another agent the id exists.
func TestApprovalFollow(t *testing.T) {
	r := start(t, func(c *config.Config) { c.AdminToken = authTestAdminToken; withAsk(t)(c) })
	ctx := context.Background()
	asker, other := r.agent(t, "asker", "asker"), r.agent(t, "other", "asker")
	id := raiseApproval(t, r, asker, "/docs/1")
	unknown := approval.NewID(time.Now())
	admin := map[string]string{api.HeaderAdminToken: authTestAdminToken}

	for _, tc := range []struct {
		name    string
		id      string
		headers map[string]string
		code    int
		errCode string
	}{
		{"the agent that asked", id, bearerOf(asker), 200, ""},
		{"the admin token", id, admin, 200, ""},
		{"another agent", id, bearerOf(other), 404, "not_found"},
		{"another agent, an unknown id", unknown, bearerOf(other), 404, "not_found"},
		{"the agent that asked, an unknown id", unknown, bearerOf(asker), 404, "not_found"},
		{"the admin token, an unknown id", unknown, admin, 404, "not_found"},
		{"no credential", id, nil, 401, "unauthorized"},
		{"a wrong admin token", id, map[string]string{api.HeaderAdminToken: authTestAdminToken + "x"}, 401, "unauthorized"},
		{"a token that does not verify", id, bearerOf(asker + "x"), 401, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := r.call(t, ctx, "GET", "/v1/approvals/"+tc.id, tc.headers, "")
			if a.code != tc.code {
				t.Fatalf("%d %.300s, want %d", a.code, a.body, tc.code)
			}
			m := a.json(t)
			if tc.errCode != "" {
				if m["error"] != tc.errCode {
					t.Fatalf("error %v, want %s", m["error"], tc.errCode)
				}
				return
			}
			if m["id"] != id || m["status"] != "pending" || m["action"] != "read:docs/1" {
				t.Fatalf("%s", a.body)
			}
		})
	}
	// What each sees once alice approved it.
	if _, err := r.admin.DecideApproval(ctx, id, true, api.ApprovalDecision{By: "alice", Reason: "ticket 7"}); err != nil {
		t.Fatal(err)
	}
	mine := r.call(t, ctx, "GET", "/v1/approvals/"+id, bearerOf(asker), "").json(t)
	all := r.call(t, ctx, "GET", "/v1/approvals/"+id, admin, "").json(t)
	if mine["status"] != "approved" || mine["reason"] != "ticket 7" || mine["decidedAt"] == nil {
		t.Fatalf("the agent's view: %v", mine)
	}
	for _, k := range []string{"decidedBy", "chain", "arguments", "argumentsDigest", "policy", "rule", "approvers", "decisionId", "uses"} {
		if _, ok := mine[k]; ok {
			t.Errorf("the agent's view holds %s: %v", k, mine)
		}
	}
	if all["decidedBy"] != "alice" || all["policy"] != "ask" || all["rule"] != "every-read" || all["chain"] == nil {
		t.Fatalf("the admin's view: %v", all)
	}

	if _, err := r.admin.RevokeAgent(ctx, "asker"); err != nil {
		t.Fatal(err)
	}
	if a := r.call(t, ctx, "GET", "/v1/approvals/"+id, bearerOf(asker), ""); a.code != 401 {
		t.Fatalf("a revoked agent: %d %.300s, want 401", a.code, a.body)
	}
}

// followInBackground starts GET /v1/approvals/{id} with headers (a long
// poll of 60 s) and returns where its answer arrives. The caller gives up
// after 30 s: an answer at the wait's own deadline would carry the decided
// state too, so only a wait the decision ended is answered in time (this
// bounds a broken build; no timing is asserted).
func followInBackground(t *testing.T, r *running, path string, headers map[string]string) <-chan answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	out := make(chan answer, 1)
	go func() {
		defer cancel()
		out <- r.call(t, ctx, "GET", path, headers, "")
	}()
	return out
}

// TestApprovalLongPoll: a caller waiting on an approval is answered when a
// person decides it — approved, denied, by ?wait or by Prefer — and not
// before: the decision is made only once the server counts the caller
// among its waiters, and the answer carries the decided state.
func TestApprovalLongPoll(t *testing.T) {
	r := start(t, withAsk(t))
	ctx := context.Background()
	asker := r.agent(t, "asker", "asker")
	for i, tc := range []struct {
		name    string
		approve bool
		prefer  bool
		want    string
	}{
		{"approved, ?wait", true, false, "approved"},
		{"denied, ?wait", false, false, "denied"},
		{"approved, Prefer: wait", true, true, "approved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := raiseApproval(t, r, asker, "/docs/poll-"+strconv.Itoa(i))
			path, headers := "/v1/approvals/"+id+"?wait=60", bearerOf(asker)
			if tc.prefer {
				path, headers["Prefer"] = "/v1/approvals/"+id, "wait=60"
			}
			done := followInBackground(t, r, path, headers)
			eventually(t, "the caller waiting", func() bool { return r.waiters(t) == 1 })
			if _, err := r.admin.DecideApproval(ctx, id, tc.approve, api.ApprovalDecision{By: "alice"}); err != nil {
				t.Fatal(err)
			}
			a := <-done
			if m := a.json(t); a.code != 200 || m["status"] != tc.want {
				t.Fatalf("%d %s, want %s", a.code, a.body, tc.want)
			}
			if got, want := a.header.Get(api.HeaderPreferenceApplied), map[bool]string{true: "wait=60"}[tc.prefer]; got != want {
				t.Fatalf("Preference-Applied %q, want %q", got, want)
			}
			eventually(t, "the waiter gone", func() bool { return r.waiters(t) == 0 })
		})
	}
}

// TestApprovalWaitDeadline: a wait nobody ends is answered at its deadline
// (the smallest, 1 s) with the approval still pending.
func TestApprovalWaitDeadline(t *testing.T) {
	r := start(t, withAsk(t))
	asker := r.agent(t, "asker", "asker")
	id := raiseApproval(t, r, asker, "/docs/1")
	h := bearerOf(asker)
	h["Prefer"] = "wait=1"
	a := r.call(t, context.Background(), "GET", "/v1/approvals/"+id, h, "")
	if m := a.json(t); a.code != 200 || m["status"] != "pending" || a.header.Get(api.HeaderPreferenceApplied) != "wait=1" {
		t.Fatalf("%d %v %s", a.code, a.header, a.body)
	}
}

// TestCheckWaitsForApproval: POST /v1/check with Prefer: wait holds a
// request that needs approval until alice approves it, then decides it
// again and answers the granted allow; the approval is then used, the next
// identical check asks anew, and the trail holds requested → approved (by
// alice) → granted under the approval's trace, in that order.
func TestCheckWaitsForApproval(t *testing.T) {
	r := start(t, withAsk(t))
	ctx := context.Background()
	asker := r.agent(t, "asker", "asker")
	const trace = "0af7651916cd43dd8448eb211c80319c"
	h := bearerOf(asker)
	h["Prefer"], h["traceparent"] = "wait=60", "00-"+trace+"-b7ad6b7169203331-01"
	body := `{"action":"send:mail","resource":"/mail/1","context":{"to":"bob@example.com"}}`
	done := make(chan answer, 1)
	go func() { done <- r.call(t, ctx, "POST", "/v1/check", h, body) }()
	eventually(t, "the check waiting", func() bool { return r.waiters(t) == 1 })
	pending, err := r.admin.ListApprovals(ctx, client.ApprovalFilter{Status: "pending"})
	if err != nil || len(pending.Approvals) != 1 {
		t.Fatalf("pending: %v, %v", pending, err)
	}
	ap := pending.Approvals[0]
	if ap.TraceID != trace || ap.Action != "send:mail" {
		t.Fatalf("the approval: %+v", ap)
	}
	if _, err := r.admin.DecideApproval(ctx, ap.ID, true, api.ApprovalDecision{By: "alice", Reason: "fine"}); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if m := a.json(t); a.code != 200 || m["allowed"] != true || m["reason"] != engine.ReasonApprovalGranted || a.header.Get(api.HeaderPreferenceApplied) != "wait=60" {
		t.Fatalf("the waiting check: %d %v %s", a.code, a.header, a.body)
	}
	if got, err := r.admin.GetApproval(ctx, ap.ID); err != nil || got.Status != "used" {
		t.Fatalf("after the check: %+v, %v", got, err)
	}
	delete(h, "Prefer")
	again := r.call(t, ctx, "POST", "/v1/check", h, body)
	if m := again.json(t); again.code != 403 || m["reason"] != engine.ReasonApprovalRequired || m["approval_id"] == ap.ID {
		t.Fatalf("the approval served twice: %d %s", again.code, again.body)
	}

	// The trail, in order, under the approval's trace.
	var recs []map[string]any
	eventually(t, "the trail's records", func() bool {
		tr, err := r.admin.AuditTrace(ctx, trace)
		if err != nil {
			return false
		}
		b, _ := json.Marshal(tr.Records)
		recs = nil
		_ = json.Unmarshal(b, &recs)
		return len(recs) == 4
	})
	want := []struct{ action, source, outcome string }{
		{"send:mail", "api", "requested"},
		{"approval:approve", "admin", "approved"},
		{"send:mail", "api", "granted"},
		{"send:mail", "api", "requested"}, // the next check, a new approval
	}
	for i, w := range want {
		rec := recs[i]
		appr, _ := rec["approval"].(map[string]any)
		if rec["action"] != w.action || rec["source"] != w.source || appr["outcome"] != w.outcome || rec["traceId"] != trace {
			t.Fatalf("record %d: %v, want %+v", i, rec, w)
		}
		if i < 3 && appr["id"] != ap.ID {
			t.Fatalf("record %d names approval %v, want %s", i, appr["id"], ap.ID)
		}
	}
	if c, _ := recs[1]["context"].(map[string]any); c["by"] != "alice" || c["reason"] != "fine" || recs[1]["resource"] != ap.ID || recs[1]["agentId"] != ap.AgentID {
		t.Fatalf("the approval's record: %v", recs[1])
	}
}

// approvalState is what a bad request must not change: the approvals and
// the audit trail, as the admin API reads them.
func approvalState(t *testing.T, r *running) string {
	t.Helper()
	ctx := context.Background()
	list, err := r.admin.ListApprovals(ctx, client.ApprovalFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	page, err := r.admin.QueryAudit(ctx, client.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal([]any{list, len(page.Records)})
	return string(b)
}

// TestApprovalBadInputs: every malformed request to the approval endpoints
// is a 400 (or 404, 409) naming what is wrong, and changes no approval and
// writes no audit record; deciding a decided approval is a 409 with its
// status.
func TestApprovalBadInputs(t *testing.T) {
	// Every decision waits for its record: what a request wrote is stored
	// before its answer, so the state read after the last one holds it.
	r := start(t, func(c *config.Config) { c.AdminToken, c.AuditFlushMs = authTestAdminToken, 0; withAsk(t)(c) })
	ctx := context.Background()
	asker := r.agent(t, "asker", "asker")
	id := raiseApproval(t, r, asker, "/docs/1")
	admin := map[string]string{api.HeaderAdminToken: authTestAdminToken}
	withPrefer := func(h map[string]string, v string) map[string]string {
		out := map[string]string{"Prefer": v}
		for k, x := range h {
			out[k] = x
		}
		return out
	}
	eventually(t, "the trail settled", func() bool {
		page, err := r.admin.QueryAudit(ctx, client.AuditFilter{})
		return err == nil && len(page.Records) == 1
	})
	before := approvalState(t, r)
	decide := "/admin/approvals/" + id + "/approve"
	for _, tc := range []struct {
		name, method, path string
		headers            map[string]string
		body               string
		code               int
		says               string
	}{
		{"wait=0", "GET", "/v1/approvals/" + id + "?wait=0", bearerOf(asker), "", 400, "from 1 to 60"},
		{"wait=61", "GET", "/v1/approvals/" + id + "?wait=61", bearerOf(asker), "", 400, "from 1 to 60"},
		{"wait=abc", "GET", "/v1/approvals/" + id + "?wait=abc", admin, "", 400, "from 1 to 60"},
		{"wait twice", "GET", "/v1/approvals/" + id + "?wait=1&wait=2", admin, "", 400, "once"},
		{"Prefer: wait=61", "GET", "/v1/approvals/" + id, withPrefer(bearerOf(asker), "wait=61"), "", 400, "from 1 to 60"},
		{"Prefer: wait twice", "GET", "/v1/approvals/" + id, withPrefer(bearerOf(asker), "wait=1, wait=2"), "", 400, "twice"},
		{"check with Prefer: wait=0", "POST", "/v1/check", withPrefer(bearerOf(asker), "wait=0"), `{"action":"send:mail"}`, 400, "from 1 to 60"},
		{"by missing", "POST", decide, admin, `{}`, 400, "required"},
		{"by blank", "POST", decide, admin, `{"by":"   "}`, 400, "required"},
		{"by too long", "POST", decide, admin, `{"by":"` + strings.Repeat("a", approval.MaxDecidedBy+1) + `"}`, 400, "at most 256"},
		{"by with a newline", "POST", decide, admin, `{"by":"alice\nINFO forged"}`, 400, "control characters"},
		{"by with a terminal escape", "POST", decide, admin, `{"by":"\u001b[31malice"}`, 400, "control characters"},
		{"reason too long", "POST", decide, admin, `{"by":"alice","reason":"` + strings.Repeat("r", approval.MaxReason+1) + `"}`, 400, "reason longer"},
		{"an unknown field", "POST", decide, admin, `{"by":"alice","approve":true}`, 400, "approve"},
		{"not JSON", "POST", decide, admin, `by=alice`, 400, ""},
		{"an unknown id", "POST", "/admin/approvals/" + approval.NewID(time.Now()) + "/approve", admin, `{"by":"alice"}`, 404, "no approval"},
		{"not an id", "POST", "/admin/approvals/apr_x/deny", admin, `{"by":"alice"}`, 404, "no approval"},
		{"list: unknown status", "GET", "/admin/approvals?status=maybe", admin, "", 400, "status"},
		{"list: limit 1001", "GET", "/admin/approvals?limit=1001", admin, "", 400, "limit"},
		{"list: a bad cursor", "GET", "/admin/approvals?before=x", admin, "", 400, "cursor"},
		{"list: an unknown parameter", "GET", "/admin/approvals?agnet=x", admin, "", 400, "unknown parameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := r.call(t, ctx, tc.method, tc.path, tc.headers, tc.body)
			if a.code != tc.code || !strings.Contains(string(a.body), tc.says) {
				t.Fatalf("%d %.300s, want %d saying %q", a.code, a.body, tc.code, tc.says)
			}
		})
	}
	if after := approvalState(t, r); after != before {
		t.Fatalf("bad requests changed what is stored:\nbefore %s\nafter  %s", before, after)
	}

	// Decided once; twice is a 409 naming its status, and changes nothing.
	if a := r.call(t, ctx, "POST", decide, admin, `{"by":"alice"}`); a.code != 200 || a.json(t)["status"] != "approved" {
		t.Fatalf("the first decision: %d %s", a.code, a.body)
	}
	eventually(t, "the decision recorded", func() bool {
		page, err := r.admin.QueryAudit(ctx, client.AuditFilter{})
		return err == nil && len(page.Records) == 2
	})
	decided := approvalState(t, r)
	for _, path := range []string{decide, "/admin/approvals/" + id + "/deny"} {
		a := r.call(t, ctx, "POST", path, admin, `{"by":"mallory"}`)
		if m := a.json(t); a.code != 409 || m["error"] != api.ErrorApprovalNotPending || m["status"] != "approved" {
			t.Fatalf("POST %s again: %d %s", path, a.code, a.body)
		}
	}
	if after := approvalState(t, r); after != decided {
		t.Fatalf("deciding twice changed what is stored:\nbefore %s\nafter  %s", decided, after)
	}
}

// TestApprovalAcrossReplicas: two replicas on one PostgreSQL. An agent
// waits on replica A; the approval given on replica B ends A's wait (A
// reads the store while waiting), and the agent's retry on A is allowed
// exactly once.
func TestApprovalAcrossReplicas(t *testing.T) {
	u := pgtest.NewDatabase(t)
	withDB := func(c *config.Config) { c.DatabaseURL = u; withAsk(t)(c) }
	a := start(t, withDB)
	b := start(t, withDB)
	ctx := context.Background()
	asker := a.agent(t, "asker", "asker")
	id := raiseApproval(t, a, asker, "/docs/shared")
	done := followInBackground(t, a, "/v1/approvals/"+id+"?wait=60", bearerOf(asker))
	eventually(t, "the agent waiting on replica A", func() bool { return a.waiters(t) == 1 })
	if b.waiters(t) != 0 {
		t.Fatal("replica B counts a waiter it does not hold")
	}
	if _, err := b.admin.DecideApproval(ctx, id, true, api.ApprovalDecision{By: "alice"}); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if m := got.json(t); got.code != 200 || m["status"] != "approved" {
		t.Fatalf("replica A's wait: %d %s", got.code, got.body)
	}
	if resp := a.check(t, asker, "GET", "/docs/shared"); resp.GetDeniedResponse() != nil {
		t.Fatalf("the retry on A after the approval on B: %v", resp)
	}
	if next := raiseApproval(t, a, asker, "/docs/shared"); next == id {
		t.Fatal("the approval served a second request")
	}
}
