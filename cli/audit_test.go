package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/trust"
)

const chainTrace = "0af7651916cd43dd8448eb211c80319c"

// chainTraffic runs a three-hop delegation in one trace through the
// engine, as ext_authz sees it: the orchestrator calls the researcher, the
// researcher (for the orchestrator) the emailer, the emailer (for both)
// the CRM; then the emailer is denied a delete.
func chainTraffic(t *testing.T, l *live) {
	t.Helper()
	_, orchT := l.f.Agent(t, "orchestrator", trust.Trusted, []string{"orchestrator"})
	_, resT := l.f.Agent(t, "researcher", trust.Verified, []string{"researcher"}, "researcher.mesh")
	_, mailT := l.f.Agent(t, "emailer", trust.Verified, []string{"emailer"}, "emailer.mesh")
	ctx := context.Background()
	step := func(token, delegation, method, host, path string, allow bool) string {
		t.Helper()
		trace := chainTrace
		if !allow {
			trace = "" // a trace of its own
		}
		d, err := l.f.Engine.Check(ctx, &engine.Request{Source: engine.SourceExtAuthzGRPC, Token: token, Delegation: delegation,
			Method: method, Host: host, Path: path, TraceID: trace})
		if err != nil || d.Allowed != allow {
			t.Fatalf("%s %s%s: %+v %v", method, host, path, d, err)
		}
		return d.Delegation
	}
	toRes := step(orchT, "", "GET", "researcher.mesh", "/papers/1", true)
	toMail := step(resT, toRes, "GET", "emailer.mesh", "/contacts", true)
	step(mailT, toMail, "GET", "crm.internal", "/contacts", true)
	step(mailT, "", "DELETE", "crm.internal", "/contacts/1", false)
}

func TestAuditCommands(t *testing.T) {
	l := newLive(t)
	chainTraffic(t, l)

	out := l.must(t, "audit", "tail", "-n", "3")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "ALLOW 200  researcher (via agent_") || !strings.Contains(lines[2], "DENY  403  emailer") {
		t.Fatalf("tail -n 3:\n%s", out)
	}

	out = l.must(t, "audit", "query", "--agent", "emailer", "--decision", "deny", "--from", "1h")
	if !strings.Contains(out, "delete:contacts/1") || strings.Contains(out, "read:contacts") {
		t.Fatalf("query:\n%s", out)
	}
	if code, _, stderr := l.mg(t, "audit", "query", "--from", "last tuesday"); code != ExitUsage || !strings.Contains(stderr, "--from") {
		t.Fatalf("bad --from: %d %s", code, stderr)
	}
	if code, _, stderr := l.mg(t, "audit", "query", "--limit", "5000"); code != ExitUsage || !strings.Contains(stderr, "limit") {
		t.Fatalf("--limit 5000: %d %s", code, stderr)
	}

	out = l.must(t, "audit", "trace", chainTrace)
	for _, want := range []string{
		"trace " + chainTrace + ": 3 decisions",
		"└─ orchestrator (agent_",
		"ALLOW read:papers/1 → researcher.mesh",
		"└─ delegated to researcher (agent_",
		"ALLOW read:contacts → emailer.mesh",
		"└─ delegated to emailer (agent_",
		"ALLOW read:contacts → crm.internal",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("trace tree lacks %q:\n%s", want, out)
		}
	}
	// The tree nests: each hop is indented under the one that delegated.
	if strings.Index(out, "delegated to researcher") > strings.Index(out, "delegated to emailer") {
		t.Fatalf("tree order:\n%s", out)
	}

	out = l.must(t, "audit", "stats", "--period", "1")
	if !strings.Contains(out, "4 decisions, 3 allowed, 1 denied") || !strings.Contains(out, "emailer (agent_") {
		t.Fatalf("stats:\n%s", out)
	}

	file := filepath.Join(t.TempDir(), "trail.json")
	code, _, errOut := l.mg(t, "audit", "export", "--format", "json", "--output", file)
	if code != 0 || errOut != "✓ exported 4 records to "+file+"\n" {
		t.Fatalf("export --output: exit %d, stderr %q", code, errOut)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	if err := json.Unmarshal(data, &recs); err != nil || len(recs) != 4 {
		t.Fatalf("export: %v %d", err, len(recs))
	}
	code, csvOut, errOut := l.mg(t, "audit", "export", "--format", "csv", "--decision", "deny")
	if n := strings.Count(strings.TrimSpace(csvOut), "\n"); code != 0 || n != 1 || !strings.HasPrefix(csvOut, "id,timestamp,traceId") {
		t.Fatalf("csv export: exit %d\n%s", code, csvOut)
	}
	// The count goes to stderr, so stdout stays the data.
	if errOut != "✓ exported 1 record\n" {
		t.Fatalf("csv export: stderr %q", errOut)
	}

	out = l.must(t, "audit", "verify")
	if !strings.Contains(out, "✓ audit trail intact: 4 records verified") {
		t.Fatalf("verify:\n%s", out)
	}
	// Edit a stored record behind MeshGuard's back: verify names it, exit 1.
	db, err := sql.Open("sqlite", filepath.Join(l.f.Dir, "meshguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// SQLite stores the engine's ids as their 12 bytes and the decision as
	// 0/1 (store/auditcols.go).
	if res, err := db.Exec(`UPDATE audit SET decision = 1 - decision WHERE id = unhex(substr(?, 5))`, recs[3].ID); err != nil {
		t.Fatal(err)
	} else if n, err := res.RowsAffected(); n != 1 || err != nil {
		t.Fatalf("the edit changed %d rows (%v)", n, err)
	}
	code, stdout, _ := l.mg(t, "audit", "verify")
	if code != ExitFailure || !strings.Contains(stdout, "broken at index 3 ("+recs[3].ID+")") || !strings.Contains(stdout, "edited") {
		t.Fatalf("verify after an edit: %d\n%s", code, stdout)
	}
	// --json names the same record by the same number as the text.
	code, stdout, _ = l.mg(t, "--json", "audit", "verify")
	var res api.AuditVerifyResult
	if err := json.Unmarshal([]byte(stdout), &res); code != ExitFailure || err != nil || res.Break == nil ||
		res.Break.Index != 3 || res.Break.ID != recs[3].ID || res.Verified != 3 {
		t.Fatalf("verify --json after an edit: %d %v\n%s", code, err, stdout)
	}
}

// lockedBuffer is a bytes.Buffer written by the CLI's goroutine and read
// by the test's.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestAuditTailFollow: tail -f prints the latest records, then each new
// one as it is decided, until interrupted (exit 0).
func TestAuditTailFollow(t *testing.T) {
	l := newLive(t)
	_, tok := l.f.Agent(t, "researcher", trust.Verified, []string{"researcher"})
	check := func(path string) {
		if _, err := l.f.Engine.Check(context.Background(), &engine.Request{Token: tok, Method: "GET", Path: path}); err != nil {
			t.Fatal(err)
		}
	}
	check("/before")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut lockedBuffer
	env := l.env()
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"audit", "tail", "-n", "1", "-f", "--json"}, Options{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }})
	}()
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in:\n%s\nstderr: %s", what, out.String(), errOut.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(`"action":"read:before"`)
	check("/after")
	waitFor(`"action":"read:after"`)
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Fatalf("%d lines, want 2:\n%s", n, out.String())
	}
}

func TestPrintableEscapesControls(t *testing.T) {
	for in, want := range map[string]string{
		"read:x":              "read:x",
		"read:x\x1b[2K ALLOW": `read:x\x1b[2K ALLOW`,
		"a\nb":                `a\nb`,
		"récupérateur → 研究者":  "récupérateur → 研究者",
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAuditShowsCalls: tail, query and trace show what an agent-protocol
// call was — the protocol, JSON-RPC method and id, A2A task — after the
// action that names the tool; a record without a call reads as before.
func TestAuditShowsCalls(t *testing.T) {
	l := newLive(t)
	_, tok := l.f.Agent(t, "researcher", trust.Verified, []string{"researcher"})
	const trace = "1af7651916cd43dd8448eb211c80319c"
	for _, r := range []engine.Request{
		{Method: "GET", Host: "docs.mesh", Path: "/plain"},
		{Method: "POST", Host: "mail.mesh", Path: "/mcp", RouteProtocol: "mcp", RouteService: "mail",
			Body: []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"a@b.example"}}}`)},
		{Method: "POST", Host: "planner.mesh", Path: "/", RouteProtocol: "a2a", RouteService: "planner",
			Body: []byte(`{"jsonrpc":"2.0","id":"q","method":"tasks/get","params":{"id":"t-1"}}`)},
	} {
		r.Source, r.Token, r.TraceID = engine.SourceExtAuthzGRPC, tok, trace
		if _, err := l.f.Engine.Check(context.Background(), &r); err != nil {
			t.Fatal(err)
		}
	}
	out := l.must(t, "audit", "tail", "-n", "3")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i, want := range []string{"  read:plain  ", "  call:mail/send_email [mcp tools/call id=7]  ", `  task:planner/get [a2a tasks/get id="q" task=t-1]  `} {
		if len(lines) != 3 || !strings.Contains(lines[i], want) {
			t.Fatalf("tail line %d lacks %q:\n%s", i, want, out)
		}
	}
	if strings.Contains(lines[0], "[") {
		t.Fatalf("a record without a call shows one: %s", lines[0])
	}
	out = l.must(t, "audit", "query", "--action", "call:mail/*", "--from", "1h")
	if !strings.Contains(out, "call:mail/send_email [mcp tools/call id=7]") || strings.Contains(out, "planner") {
		t.Fatalf("query:\n%s", out)
	}
	out = l.must(t, "audit", "trace", trace)
	if !strings.Contains(out, "call:mail/send_email [mcp tools/call id=7] → mail.mesh") || !strings.Contains(out, "task:planner/get [a2a tasks/get") {
		t.Fatalf("trace tree:\n%s", out)
	}
}

func TestCallNote(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    *audit.Call
		want string
	}{
		{"no call", nil, ""},
		{"a tool call", &audit.Call{Protocol: "mcp", Method: "tools/call", Name: "x", JSONRPCID: "7"}, " [mcp tools/call id=7]"},
		{"a notification", &audit.Call{Protocol: "mcp", Method: "notifications/initialized", Notification: true}, " [mcp notifications/initialized notification]"},
		{"header-only", &audit.Call{Protocol: "mcp", Method: "tools/call", JSONRPCID: `"a"`, HeaderOnly: true}, ` [mcp tools/call id="a" header-only]`},
		{"an A2A task", &audit.Call{Protocol: "a2a", Method: "GetTask", JSONRPCID: "1", TaskID: "t-1"}, " [a2a GetTask id=1 task=t-1]"},
		{"the Agent Card", &audit.Call{Protocol: "a2a", Method: "GET"}, " [a2a GET]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := callNote(tc.c); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
