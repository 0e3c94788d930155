package filterapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterprotocol"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/store"
)

// TestFilterAuditRefusesWhatNoProxyWrites: a batch holding a record the
// engine could not have written — another source, a control character,
// a stamp from another day, beyond the bounds, an allow for an agent that
// does not exist or under another's name, an allow the policies it names
// deny — is refused whole with a 400 naming the record and field, and
// nothing of it is stored; a good batch is stored under MeshGuard's own
// ids, marked with the proxy that shipped it.
func TestFilterAuditRefusesWhatNoProxyWrites(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	good := audit.Record{ID: "aud_from_the_filter", Timestamp: filtertest.Now, DecisionID: "dec_x", AgentID: env.Orch.ID, AgentName: env.Orch.Name, Action: "read:docs",
		Method: "GET", Path: "/docs", Host: "docs.mesh", Decision: "allow", Status: 200, Reason: "rule_allow", Source: "wasm", Mode: "enforce"}
	post := func(b filterprotocol.AuditBatch) (int, string) { return postAudit(t, api, b) }
	bad := func(edit func(r *audit.Record)) filterprotocol.AuditBatch {
		r := good
		edit(&r)
		return filterprotocol.AuditBatch{Records: []audit.Record{good, r}}
	}
	for _, tt := range []struct {
		name  string
		batch filterprotocol.AuditBatch
		want  string
	}{
		{"another source", bad(func(r *audit.Record) { r.Source = "api" }), "records[1]: source"},
		{"a NUL", bad(func(r *audit.Record) { r.Path = "/a\x00" }), "records[1]: path: contains a control character"},
		{"a DEL", bad(func(r *audit.Record) { r.Resource = "/a\x7f" }), "records[1]: resource: contains a control character"},
		{"a chain entry with ESC", bad(func(r *audit.Record) { r.Chain = []string{"agt_\x1b[2J"} }), "records[1]: chain: contains a control character"},
		{"from last week", bad(func(r *audit.Record) { r.Timestamp = filtertest.Now.Add(-7 * 24 * time.Hour) }), "records[1]: timestamp"},
		{"from the future", bad(func(r *audit.Record) { r.Timestamp = filtertest.Now.Add(time.Hour) }), "records[1]: timestamp"},
		{"no decision", bad(func(r *audit.Record) { r.Decision = "maybe" }), "records[1]: decision"},
		{"a long action", bad(func(r *audit.Record) { r.Action = strings.Repeat("a", 9000) }), "records[1]: action: longer than 8200 bytes"},
		{"an allow for no agent", bad(func(r *audit.Record) { r.AgentID = "agt_forged" }), "records[1]: MeshGuard would not have allowed it: agentId"},
		{"an allow under another agent's name", bad(func(r *audit.Record) { r.AgentName = env.Res.Name }), "records[1]: MeshGuard would not have allowed it: agentName"},
		{"an allow the policies in force deny", bad(func(r *audit.Record) {
			r.Action, r.PolicyRevision = "delete:everything", env.F.Policies.Current().Revision()
		}), "records[1]: MeshGuard would not have allowed it: the policies in force"},
		{"a call with an unknown protocol", bad(func(r *audit.Record) { r.Call = &audit.Call{Protocol: "grpc", Method: "x", JSONRPCID: "1"} }), "records[1]: call.protocol"},
		{"a call shipping its arguments", bad(func(r *audit.Record) {
			r.Method, r.Call = "POST", &audit.Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: "1", Arguments: []byte(`{"to":"x"}`)}
		}), "records[1]: call.arguments"},
		{"an allowed action recorded as another tool's call", bad(func(r *audit.Record) {
			r.Method, r.Call = "POST", &audit.Call{Protocol: "mcp", Method: "tools/call", Name: "delete_paper", JSONRPCID: "1", ArgumentsDigest: strings.Repeat("0f", 32)}
		}), `records[1]: call.method: mcp tools/call "delete_paper" is not the call of action "read:docs"`},
		{"too many records", filterprotocol.AuditBatch{Records: make([]audit.Record, filterprotocol.MaxAuditBatch+1)}, "at most"},
		{"an impossible drop count", filterprotocol.AuditBatch{Dropped: 1 << 50}, "dropped"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, msg := post(tt.batch); code != 400 || !strings.Contains(msg, tt.want) {
				t.Fatalf("%d %q; want 400 mentioning %q", code, msg, tt.want)
			}
		})
	}
	page, err := env.F.Store.QueryAudit(context.Background(), store.AuditFilter{})
	if err != nil || len(page.Records) != 0 {
		t.Fatalf("refused batches stored %d records (%v)", len(page.Records), err)
	}
	if code, msg := post(filterprotocol.AuditBatch{Records: []audit.Record{good}, Dropped: 3}); code != 204 {
		t.Fatalf("a good batch: %d %s", code, msg)
	}
	page, err = env.F.Store.QueryAudit(context.Background(), store.AuditFilter{})
	if err != nil || len(page.Records) != 1 || page.Records[0].ID == good.ID || page.Records[0].DecisionID != "dec_x" || page.Records[0].Proxy != filtertest.ProxyName {
		t.Fatalf("stored %+v, %v", page.Records, err)
	}
	// A record with a call is stored with it, and the chain still verifies.
	withCall := good
	withCall.DecisionID, withCall.Decision, withCall.Status, withCall.Reason = "dec_call", "deny", 403, "rule_deny"
	withCall.Action, withCall.Method, withCall.Path = "call:papers/delete_paper", "POST", "/mcp"
	withCall.Call = &audit.Call{Protocol: "mcp", Method: "tools/call", Name: "delete_paper", JSONRPCID: `"r-1"`, ArgumentsDigest: strings.Repeat("0f", 32)}
	if code, msg := post(filterprotocol.AuditBatch{Records: []audit.Record{withCall}}); code != 204 {
		t.Fatalf("a record with a call: %d %s", code, msg)
	}
	page, err = env.F.Store.QueryAudit(context.Background(), store.AuditFilter{})
	if err != nil || len(page.Records) != 2 {
		t.Fatalf("stored %+v, %v", page.Records, err)
	}
	var stored *audit.Record
	for i := range page.Records {
		if page.Records[i].DecisionID == "dec_call" {
			stored = &page.Records[i]
		}
	}
	if stored == nil || stored.Call == nil || !reflect.DeepEqual(*stored.Call, *withCall.Call) {
		t.Fatalf("the call was not stored as shipped: %+v", stored)
	}
	v := audit.NewVerifier(audit.GenesisHash)
	if err := env.F.Store.ScanAudit(context.Background(), func(r audit.Record) error { return v.Next(&r) }); err != nil {
		t.Fatalf("the chain with a shipped call does not verify: %v", err)
	}
}

// TestFilterAuditChecksAllowsUnderTheirRevision: an allow is checked
// against the policies of the revision it names when MeshGuard had them in
// force lately, and against those in force now when it names another
// revision or none. Before, any record naming a revision other than the
// current one — an empty one, a made-up one — skipped the policy check, so
// a filter credential could seal an allow of anything into the chain.
func TestFilterAuditChecksAllowsUnderTheirRevision(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	post := func(r audit.Record) (int, string) {
		return postAudit(t, api, filterprotocol.AuditBatch{Records: []audit.Record{r}})
	}
	record := func(action, revision string) audit.Record {
		return audit.Record{Timestamp: filtertest.Now, DecisionID: "dec_" + action, AgentID: env.Orch.ID, AgentName: env.Orch.Name, Action: action,
			Method: "GET", Path: "/docs", Host: "docs.mesh", Decision: "allow", Status: 200, Reason: "rule_allow", Source: "wasm", Mode: "enforce", PolicyRevision: revision}
	}
	old := env.F.Policies.Current().Revision()
	if code, msg := post(record("read:docs", old)); code != 204 {
		t.Fatalf("an allow the policies give: %d %s", code, msg)
	}
	// The operator replaces the policies: nothing is allowed to anyone.
	if err := os.WriteFile(filepath.Join(env.F.Dir, "policies.yaml"), []byte("name: nobody\nappliesTo: {tags: [nobody]}\nrules:\n  - {name: r, effect: allow, actions: [\"read:*\"]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := env.F.Policies.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	current := env.F.Policies.Current().Revision()
	for _, tt := range []struct {
		name   string
		rec    audit.Record
		status int
		want   string
	}{
		{"decided under the revision before, which allowed it", record("read:docs", old), 204, ""},
		{"decided under the revision before, which denied it", record("delete:everything", old), 400, "the policies of revision"},
		{"under the revision in force, which denies it", record("read:docs", current), 400, "the policies in force"},
		{"under no revision", record("read:docs", ""), 400, "no revision MeshGuard had in force lately"},
		{"under a made-up revision", record("read:docs", "0123456789abcdef"), 400, "no revision MeshGuard had in force lately"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, msg := post(tt.rec); code != tt.status || !strings.Contains(msg, tt.want) {
				t.Fatalf("%d %q; want %d mentioning %q", code, msg, tt.status, tt.want)
			}
		})
	}
}

// TestFilterAuditWithNoPoliciesRefusesAllows: before the policies first
// load, MeshGuard denies everything (no_policy), so a shipped allow is not
// reproduced: it is refused, not taken on trust.
func TestFilterAuditWithNoPoliciesRefusesAllows(t *testing.T) {
	env := filtertest.New(t)
	api := env.APIOver(t, policy.NewLoader(policy.Dir(env.F.Dir))) // never loaded
	rec := audit.Record{Timestamp: filtertest.Now, DecisionID: "dec_1", AgentID: env.Orch.ID, AgentName: env.Orch.Name, Action: "read:docs",
		Method: "GET", Path: "/docs", Host: "docs.mesh", Decision: "allow", Status: 200, Reason: "rule_allow", Source: "wasm", Mode: "enforce"}
	code, msg := postAudit(t, api, filterprotocol.AuditBatch{Records: []audit.Record{rec}})
	if code != 400 || !strings.Contains(msg, "no_policy") {
		t.Fatalf("%d %q; want 400: no_policy", code, msg)
	}
}

// postAudit ships b to srv's POST /v1/filter/audit as the test proxy and
// returns the status and the error message, if any.
func postAudit(t *testing.T, srv *httptest.Server, b filterprotocol.AuditBatch) (int, string) {
	t.Helper()
	body, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+filterprotocol.AuditPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(filterprotocol.HeaderFilterToken, filtertest.FilterCredential)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e struct{ Message string }
	_ = json.NewDecoder(res.Body).Decode(&e)
	return res.StatusCode, e.Message
}
