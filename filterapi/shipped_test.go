package filterapi_test

import (
	"cmp"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterdecider"
	"github.com/meshguard/meshguard/filterprotocol"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/store"
)

// recorded keeps the records of a filter's local decisions, as the wasm
// filter's audit queue does, digesting the arguments as it does before
// shipping.
type recorded struct {
	mu sync.Mutex
	rs []audit.Record
}

func (q *recorded) Write(_ context.Context, r audit.Record) error {
	if r.Call != nil {
		c := *r.Call
		if err := c.DigestArguments(); err != nil {
			return err
		}
		r.Call = &c
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.rs = append(q.rs, r)
	return nil
}

// TestFilterShipsEveryCallItRecords: the records the filter's own engine
// writes of MCP requests — a tool call, the server's stream (GET) and the
// end of a session (DELETE), which carry a call without a JSON-RPC id —
// are taken by /v1/filter/audit and stored, in one batch. Before, a GET's
// call was refused as "a notification is exactly a call without an id",
// and the filter drops a refused batch: one GET /mcp by any agent erased
// the records of every decision shipped with it.
func TestFilterShipsEveryCallItRecords(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	cfg, err := filterconfig.Parse(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	q := &recorded{}
	local, err := filterdecider.New(cfg, filterdecider.Options{Now: func() time.Time { return filtertest.Now }, Recorder: q})
	if err != nil {
		t.Fatal(err)
	}
	requests := []struct {
		method string
		body   string
		action string
		status int
		host   string
		path   string
	}{
		{"POST", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_papers","arguments":{"query":"agents","limit":10}}}`, "call:papers/search_papers", 200, "", ""},
		{"GET", "", "connect:papers", 200, "", ""},
		{"DELETE", "", "connect:papers", 200, "", ""},
		{"POST", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, "connect:papers", 200, "", ""},
		// A JSON-RPC method spelt as an HTTP one is a JSON-RPC method.
		{"POST", `{"jsonrpc":"2.0","id":8,"method":"GET"}`, "mcp:papers/GET", 403, "", ""},
		// Within the parser's bounds, however the record spells them:
		// a string id of 4096 characters that JSON escapes six-fold; a
		// tool name making the action longer than the engine decides on.
		{"POST", `{"jsonrpc":"2.0","id":"` + strings.Repeat("<", agentproto.MaxName) + `","method":"tools/call","params":{"name":"search_papers"}}`, "call:papers/search_papers", 200, "", ""},
		{"POST", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"` + strings.Repeat("n", 2000) + `"}}`, "", 400, "", ""},
		// And a plain request whose derived action is longer than 1024.
		{"GET", "", "read:docs/" + strings.Repeat("p", 2000), 200, "docs.mesh", "/docs/" + strings.Repeat("p", 2000)},
	}
	for _, rq := range requests {
		host, path, tok := cmp.Or(rq.host, "papers.mesh"), cmp.Or(rq.path, "/mcp"), env.ToolT
		if rq.host != "" {
			tok = env.OrchT
		}
		r := engine.Request{Method: rq.method, Host: host, Path: path, Token: tok,
			Headers: edge.PairHeaders{{"mcp-session-id", "s-1"}, {"content-type", "application/json"}}}
		if rq.body != "" {
			r.Body = []byte(rq.body)
		}
		local.Prepare(&r)
		d, err := local.Check(t.Context(), &r)
		if err != nil || d.Status != rq.status || rq.action != "" && d.Action != rq.action {
			t.Fatalf("%s %.80s: the filter decided %s %d (%s, %v); want %s %d", rq.method, rq.body, d.Action, d.Status, d.Reason, err, rq.action, rq.status)
		}
	}
	if len(q.rs) != len(requests) {
		t.Fatalf("the filter recorded %d decisions, want %d", len(q.rs), len(requests))
	}
	if code, msg := postAudit(t, api, filterprotocol.AuditBatch{Records: q.rs}); code != 204 {
		t.Fatalf("shipping the filter's own records: %d %q", code, msg)
	}
	page, err := env.F.Store.QueryAudit(context.Background(), store.AuditFilter{})
	if err != nil || len(page.Records) != len(requests) {
		t.Fatalf("stored %d records (%v), want %d", len(page.Records), err, len(requests))
	}
	stored := map[string]audit.Record{}
	for _, r := range page.Records {
		stored[r.DecisionID] = r
	}
	for _, sent := range q.rs {
		r, ok := stored[sent.DecisionID]
		if !ok || r.Action != sent.Action || (r.Call == nil) != (sent.Call == nil) || r.Call != nil && r.Call.Name != sent.Call.Name {
			t.Fatalf("decision %s %.40s stored as %.40s with call %+v, shipped with %+v", sent.DecisionID, sent.Action, r.Action, r.Call, sent.Call)
		}
	}
}
