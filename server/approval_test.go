package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/extauthz"
	"github.com/meshguard/meshguard/store"
)

// TestServedApproval: a served MeshGuard answers a request its policy
// holds for approval with a 403 naming the approval — the
// X-MeshGuard-Approval header and the deny body's approval_id — at
// ext_authz over gRPC and HTTP and at the gateway, all three the same
// request and so the same approval; once it is approved (through a second
// handle on the database, as another replica would), the gateway forwards
// the request once, and the next asks again.
func TestServedApproval(t *testing.T) {
	var reached atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached.Add(1)
		_, _ = io.WriteString(w, "done")
	}))
	t.Cleanup(upstream.Close)
	r := start(t, func(c *config.Config) {
		c.ProxyTarget = upstream.URL
		writePolicy(t, c, "ask.yaml", "name: ask\nappliesTo: {tags: [asker]}\nrules:\n  - {name: every-read, effect: approve, actions: [\"read:*\"], approvers: [security]}\n")
	})
	tok := r.agent(t, "asker", "asker")

	resp := r.check(t, tok, "GET", "/docs/1")
	denied := resp.GetDeniedResponse()
	if denied.GetStatus().GetCode() != 403 {
		t.Fatalf("ext_authz gRPC: %v", resp)
	}
	var id string
	for _, h := range denied.GetHeaders() {
		if h.GetHeader().GetKey() == engine.HeaderApproval {
			id = h.GetHeader().GetValue()
		}
	}
	var body struct {
		Reason     string `json:"reason"`
		ApprovalID string `json:"approval_id"`
	}
	if err := json.Unmarshal([]byte(denied.GetBody()), &body); err != nil || !approval.ValidID(id) || body.ApprovalID != id || body.Reason != "approval_required" {
		t.Fatalf("ext_authz gRPC: header %q, body %s (%v)", id, denied.GetBody(), err)
	}

	get := func(path string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), "GET", "http://"+r.addrs.HTTP+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return res
	}
	for _, tc := range []struct{ name, path string }{
		{"ext_authz HTTP", extauthz.PathPrefix + "/docs/1"},
		{"gateway", "/proxy/docs/1"},
	} {
		res := get(tc.path)
		if res.StatusCode != 403 || res.Header.Get(engine.HeaderApproval) != id {
			t.Fatalf("%s: %d, %s %q; want 403 naming %s", tc.name, res.StatusCode, engine.HeaderApproval, res.Header.Get(engine.HeaderApproval), id)
		}
	}
	if reached.Load() != 0 {
		t.Fatal("the upstream was reached before any approval")
	}

	other, err := store.OpenSQLite(context.Background(), filepath.Join(r.cfg.DataDir, "meshguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	if _, err := other.DecideApproval(context.Background(), approval.Decision{ID: id, Approve: true, By: "alice"}); err != nil {
		t.Fatal(err)
	}
	if res := get("/proxy/docs/1"); res.StatusCode != 200 || reached.Load() != 1 {
		t.Fatalf("after the approval: %d, upstream reached %d times", res.StatusCode, reached.Load())
	}
	res := get("/proxy/docs/1")
	if next := res.Header.Get(engine.HeaderApproval); res.StatusCode != 403 || next == id || !strings.HasPrefix(next, "apr_") {
		t.Fatalf("the approval was used twice: %d %q", res.StatusCode, next)
	}
}
