package admin_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/trust"
)

const traceA = "4bf92f3577b34da6a3ce929d0e0e4736"

// auditTraffic makes five decisions through POST /v1/check: the
// researcher reads twice (one in trace A) and is denied a delete; the
// emailer sends mail in trace A and is denied a delete.
func auditTraffic(t *testing.T, e *env) (res, mail api.AgentWithToken) {
	t.Helper()
	res = e.agent(t, "researcher", trust.Verified, "researcher")
	mail = e.agent(t, "emailer", trust.Verified, "emailer")
	ctx := t.Context()
	for _, c := range []struct {
		who   api.AgentWithToken
		req   api.CheckRequest
		allow bool
	}{
		{res, api.CheckRequest{Action: "read:papers/1"}, true},
		{res, api.CheckRequest{Action: "read:papers/2", TraceParent: "00-" + traceA + "-00f067aa0ba902b7-01"}, true},
		{res, api.CheckRequest{Action: "delete:papers/1"}, false},
		{mail, api.CheckRequest{Action: "write:email", Context: map[string]any{"to": "=HYPERLINK(1)"}, TraceParent: "00-" + traceA + "-00f067aa0ba902b8-01"}, true},
		{mail, api.CheckRequest{Action: "delete:contacts/1"}, false},
	} {
		d, err := e.as(c.who.Token).Check(ctx, c.req)
		if c.allow && (err != nil || !d.Allowed) {
			t.Fatalf("%s: %+v %v", c.req.Action, d, err)
		}
		if !c.allow && err == nil {
			t.Fatalf("%s allowed", c.req.Action)
		}
	}
	return res, mail
}

func actions(rs []audit.Record) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Action)
	}
	return out
}

func TestAuditQuery(t *testing.T) {
	e := newEnv(t)
	res, _ := auditTraffic(t, e)
	ctx := t.Context()
	tests := []struct {
		name string
		f    client.AuditFilter
		want []string
	}{
		{"everything, newest first", client.AuditFilter{}, []string{"delete:contacts/1", "write:email", "delete:papers/1", "read:papers/2", "read:papers/1"}},
		{"agent by name", client.AuditFilter{Agent: "researcher"}, []string{"delete:papers/1", "read:papers/2", "read:papers/1"}},
		{"agent by id", client.AuditFilter{Agent: res.ID, Decision: "deny"}, []string{"delete:papers/1"}},
		{"action prefix", client.AuditFilter{Action: "delete:*"}, []string{"delete:contacts/1", "delete:papers/1"}},
		{"trace", client.AuditFilter{TraceID: traceA}, []string{"write:email", "read:papers/2"}},
		{"future", client.AuditFilter{From: time.Now().Add(time.Hour)}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := e.c.QueryAudit(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := actions(page.Records); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	// The records carry what the decision was made on.
	page, err := e.c.QueryAudit(ctx, client.AuditFilter{Action: "write:email"})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("%+v %v", page, err)
	}
	r := page.Records[0]
	if r.AgentName != "emailer" || r.TrustTier != "verified" || r.Source != "api" || r.TraceID != traceA || r.Decision != "allow" ||
		r.Context["to"] != "=HYPERLINK(1)" || r.Hash == "" || r.PrevHash == "" {
		t.Fatalf("record %+v", r)
	}
	// Pages of two walk back through all five.
	var all []string
	f := client.AuditFilter{Limit: 2}
	for range 4 {
		p, err := e.c.QueryAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, actions(p.Records)...)
		if f.Cursor = p.NextCursor; f.Cursor == "" {
			break
		}
	}
	if len(all) != 5 || all[0] != "delete:contacts/1" || all[4] != "read:papers/1" {
		t.Fatalf("paged: %v", all)
	}
}

func TestAuditBadQueries(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		path, want string
	}{
		{"/admin/audit?limit=5000", "limit"},
		{"/admin/audit?limit=ten", "limit"},
		{"/admin/audit?from=yesterday", "RFC 3339"},
		{"/admin/audit?from=2026-03-02T10:00:00Z&to=2026-03-01T10:00:00Z", "from must be before to"},
		{"/admin/audit?decision=maybe", "allow or deny"},
		{"/admin/audit?agnet=x", `unknown query parameter "agnet"`},
		{"/admin/audit?agent=a&agent=b", "more than once"},
		{"/admin/audit?cursor=zz9", "cursor"},
		{"/admin/audit?traceId=XYZ", "32 lower-case hex"},
		{"/admin/audit?agent=%00", "control character"},
		{"/admin/audit?action=%FF", "UTF-8"},
		{"/admin/audit/export?action=read:%1B*", "control character"},
		{"/admin/audit/stats?period=-1h", "period"},
		{"/admin/audit/stats?period=9000h", "period"},
		{"/admin/audit/stats?period=1h&from=2026-03-02T10:00:00Z", "not both"},
		{"/admin/audit/trace/not-a-trace", "32 lower-case hex"},
		{"/admin/audit/export?format=xml", "csv or json"},
		{"/admin/audit/export?shadow=yes", "shadow: \"yes\": expected true or false"},
		{"/admin/audit/stream?limit=3", "no limit"},
		{"/admin/audit/stream?after=bogus", "cursor"},
		{"/admin/audit/verify?deep=1", "unknown query parameter"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			status, _, body := e.raw(t, http.MethodGet, tc.path, nil, adminHeaders(nil))
			if b := errorBody(t, body); status != http.StatusBadRequest || !strings.Contains(b.Message, tc.want) {
				t.Fatalf("%d %s, want 400 mentioning %q", status, body, tc.want)
			}
		})
	}
	// An agent token never reads the audit trail.
	ag := e.agent(t, "snoop", trust.Privileged, "researcher")
	if status, _, _ := e.raw(t, http.MethodGet, "/admin/audit", nil, map[string]string{"Authorization": "Bearer " + ag.Token}); status != http.StatusForbidden {
		t.Fatalf("agent token on /admin/audit: %d", status)
	}
	if status, _, _ := e.raw(t, http.MethodGet, "/admin/audit/trace/"+traceA, nil, adminHeaders(nil)); status != http.StatusNotFound {
		t.Fatalf("unknown trace: %d", status)
	}
}

func TestAuditStatsAndTrace(t *testing.T) {
	e := newEnv(t)
	res, mail := auditTraffic(t, e)
	st, err := e.c.AuditStats(t.Context(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 5 || st.Allowed != 3 || st.Denied != 2 || len(st.Agents) != 2 ||
		st.Agents[0] != (audit.Count{Key: res.ID, Name: "researcher", Total: 3, Denied: 1}) ||
		st.Agents[1] != (audit.Count{Key: mail.ID, Name: "emailer", Total: 2, Denied: 1}) ||
		len(st.DenyReasons) != 1 || st.DenyReasons[0].Total != 2 || st.Sources[0] != (audit.Count{Key: "api", Total: 5, Denied: 2}) {
		t.Fatalf("stats %+v", st)
	}
	tr, err := e.c.AuditTrace(t.Context(), traceA)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(tr.Records); tr.TraceID != traceA || strings.Join(got, " ") != "read:papers/2 write:email" {
		t.Fatalf("trace %+v", tr)
	}
}

func TestAuditExport(t *testing.T) {
	e := newEnv(t)
	auditTraffic(t, e)
	var js bytes.Buffer
	if err := e.c.ExportAudit(t.Context(), client.AuditFilter{}, "json", &js); err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	if err := json.Unmarshal(js.Bytes(), &recs); err != nil || len(recs) != 5 || recs[0].Action != "read:papers/1" {
		t.Fatalf("json export: %v %s", err, js.Bytes())
	}
	// What was exported still verifies: the export is the evidence.
	v := audit.NewVerifier(audit.GenesisHash)
	for i := range recs {
		if err := v.Next(&recs[i]); err != nil {
			t.Fatalf("exported record %d: %v", i, err)
		}
	}
	var cs bytes.Buffer
	if err := e.c.ExportAudit(t.Context(), client.AuditFilter{Decision: "allow"}, "csv", &cs); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&cs).ReadAll()
	if err != nil || len(rows) != 4 || rows[0][0] != "id" || rows[3][8] != "write:email" {
		t.Fatalf("csv export: %v %v", rows, err)
	}
	// A caller's context cannot smuggle a formula into a spreadsheet.
	if ctx := rows[3][24]; !strings.HasPrefix(ctx, `{"to":"=HYPERLINK`) {
		t.Fatalf("context cell %q", ctx)
	}
	var empty bytes.Buffer
	if err := e.c.ExportAudit(t.Context(), client.AuditFilter{Agent: "nobody"}, "json", &empty); err != nil || strings.TrimSpace(empty.String()) != "[\n]" {
		t.Fatalf("empty export: %q %v", empty.String(), err)
	}
}

// TestAuditFollow: a follow without a cursor delivers what is decided
// after it began — nothing decided before, nothing of another agent — each
// line with its cursor; a follow resumed from that cursor delivers what
// was decided after that line, even before the follow began, and nothing
// before it.
func TestAuditFollow(t *testing.T) {
	e := newEnv(t)
	res, mail := auditTraffic(t, e)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	lines := followFromNow(t, ctx, e, "agent=researcher")
	// The follow has its starting point: the emailer is decided first,
	// then the researcher.
	if _, err := e.as(mail.Token).Check(ctx, api.CheckRequest{Action: "write:email"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.as(res.Token).Check(ctx, api.CheckRequest{Action: "read:later"}); err != nil {
		t.Fatal(err)
	}
	var l api.AuditLine
	select {
	case l = <-lines:
	case <-ctx.Done():
		t.Fatal("no record followed")
	}
	if l.Action != "read:later" || l.AgentName != "researcher" || l.Cursor == "" {
		t.Fatalf("followed %s of %s (cursor %q) first, want the researcher's read:later", l.Action, l.AgentName, l.Cursor)
	}
	page, err := e.c.QueryAudit(ctx, client.AuditFilter{Agent: "researcher", Limit: 2})
	if err != nil || page.Records[0].Action != "read:later" || page.FollowCursor != l.Cursor {
		t.Fatalf("page after the follow: %+v %v (followed to %s)", page, err, l.Cursor)
	}

	// Resumed from that cursor, a follow delivers what came after it,
	// though decided before the follow began.
	if _, err := e.as(res.Token).Check(ctx, api.CheckRequest{Action: "read:meanwhile"}); err != nil {
		t.Fatal(err)
	}
	resumed := make(chan api.AuditLine, 10)
	done := make(chan error, 1)
	go func() {
		done <- e.c.FollowAudit(ctx, client.AuditFilter{Agent: "researcher"}, l.Cursor, func(l api.AuditLine) error {
			resumed <- l
			return nil
		})
	}()
	select {
	case l := <-resumed:
		if l.Action != "read:meanwhile" {
			t.Fatalf("the resumed follow began with %+v, want read:meanwhile", l)
		}
	case err := <-done:
		t.Fatalf("follow ended: %v", err)
	case <-ctx.Done():
		t.Fatal("the resumed follow delivered nothing")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow after cancel: %v", err)
	}
}

// followFromNow opens GET /admin/audit/stream?query without a cursor and
// returns once the server has answered: it answers only once it has
// taken its starting point, so whatever is decided after this returns is
// followed. The lines arrive on the channel until ctx ends.
func followFromNow(t *testing.T, ctx context.Context, e *env, query string) <-chan api.AuditLine {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/admin/audit/stream?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Admin-Token", adminToken)
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		t.Fatalf("follow: %d", res.StatusCode)
	}
	lines := make(chan api.AuditLine, 10)
	go func() {
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue // a heartbeat
			}
			var l api.AuditLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("follow: a line that is not a record: %q: %v", sc.Bytes(), err)
				return
			}
			select {
			case lines <- l:
			case <-ctx.Done():
				return
			}
		}
	}()
	return lines
}

func TestAuditVerifyNamesEditedRecord(t *testing.T) {
	e := newEnv(t)
	auditTraffic(t, e)
	ok, err := e.c.VerifyAudit(t.Context())
	if err != nil || !ok.OK || ok.Verified != 5 || ok.Chains != 1 {
		t.Fatalf("intact trail: %+v %v", ok, err)
	}
	page, err := e.c.QueryAudit(t.Context(), client.AuditFilter{Action: "delete:papers/1"})
	if err != nil || len(page.Records) != 1 {
		t.Fatal(page, err)
	}
	target := page.Records[0].ID
	db, err := sql.Open("sqlite", filepath.Join(e.f.Dir, "meshguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// SQLite stores the engine's ids as their 12 bytes and the decision as
	// 0/1 (store/auditcols.go).
	if res, err := db.Exec(`UPDATE audit SET decision = 1 - decision WHERE id = unhex(substr(?, 5))`, target); err != nil {
		t.Fatal(err)
	} else if n, err := res.RowsAffected(); n != 1 || err != nil {
		t.Fatalf("the edit changed %d rows (%v)", n, err)
	}
	bad, err := e.c.VerifyAudit(t.Context())
	if err != nil || bad.OK || bad.Break == nil || bad.Break.ID != target || bad.Break.Index != 2 || bad.Verified != 2 {
		t.Fatalf("edited trail: %+v %v", bad, err)
	}
}
