package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
)

// AuditBackend is the audit trail's part of a Backend.
type AuditBackend interface {
	AppendAudit(ctx context.Context, rs []audit.Record) error
	LastAuditHash(ctx context.Context) (string, error)
	ScanAudit(ctx context.Context, fn func(audit.Record) error) error
	AuditRecord(ctx context.Context, id string) (audit.Record, bool, error)
	ScanAuditFiltered(ctx context.Context, f store.AuditFilter, fn func(r audit.Record, cursor string) error) error
	QueryAudit(ctx context.Context, f store.AuditFilter) (store.AuditPage, error)
	AuditStats(ctx context.Context, from, to time.Time) (audit.Stats, error)
	AuditPerMinute(ctx context.Context, from, to time.Time) ([]audit.Minute, error)
	audit.Chains
	PruneAudit(ctx context.Context, before time.Time) (int64, error)
	AgentLastSeen(ctx context.Context, id string) (time.Time, bool, error)
}

func auditTests() []test {
	return []test{
		{"AppendScanVerify", testAuditChain},
		{"ScanWindowInOrder", testAuditScanWindow},
		{"DuplicateID", testAuditDuplicate},
		{"QueryFilters", testAuditFilters},
		{"QueryPages", testAuditPages},
		{"QueryInvalid", testAuditInvalid},
		{"Stats", testAuditStats},
		{"PerMinute", testAuditPerMinute},
		{"PruneKeepsChainVerifiable", testAuditPrune},
		{"AgentLastSeen", testAgentLastSeen},
	}
}

// auditStart is the first record's time: microseconds only, as stored.
var auditStart = time.Date(2026, 3, 2, 10, 0, 0, 123456000, time.UTC)

// trail is 12 records, one a minute: agents a, b, c in turn; every third a
// denial; two traces; actions read:x/…, write:y.
func trail(t *testing.T, prev string) []audit.Record {
	t.Helper()
	rs := make([]audit.Record, 12)
	for i := range rs {
		agent := []string{"agent_a", "agent_b", "agent_c"}[i%3]
		r := audit.Record{
			ID: fmt.Sprintf("aud_%02d", i), DecisionID: fmt.Sprintf("dec_%02d", i),
			Timestamp: auditStart.Add(time.Duration(i) * time.Minute),
			TraceID:   []string{"4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f35aaaaaaaaaaaaaaaaaaaaaaaa"}[i%2],
			AgentID:   agent, Action: fmt.Sprintf("read:x/%d", i), Decision: "allow", Status: 200, Reason: "rule_allow",
			Source: "ext_authz-grpc", Chain: []string{agent}, Mode: "enforce",
			Context: map[string]any{"n": float64(i)},
		}
		if i%4 == 3 {
			r.Action = "write:y"
		}
		if i%3 == 0 {
			// A policy decision's inputs (a delegated one every other
			// time): replay reads them back as they were sealed.
			r.Inputs = &audit.Inputs{Tags: []string{"reader", "<研究>"}, Absent: []string{"header.x-env"}}
			if i%2 == 0 {
				r.Chain = []string{"agent_root", agent}
				r.Inputs.Chain = []audit.ChainMember{{Name: "root", Tier: "trusted", Tags: []string{"planner"}}}
				r.Inputs.Scope = []string{"read:*"}
			}
		}
		if i%3 == 2 {
			r.Decision, r.Status, r.Reason, r.Source = "deny", 403, "no_matching_rule", "gateway"
		}
		if i%4 == 1 {
			// An MCP tool call, its arguments recorded as a writer set to
			// record them does: they must come back byte for byte.
			r.Call = &audit.Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: `"r-` + fmt.Sprint(i) + `"`,
				SessionID: "sess-1", Arguments: []byte(`{"n":12345678901234567890,"password":"[redacted]","to":"\u003cann\u003e@ours.example","z":"研究"}`)}
			r.Call.SetArguments([]byte(`{"to":"<ann>@ours.example","n":12345678901234567890,"password":"p","z":"研究"}`))
		}
		if i%5 == 4 {
			r.Shadow = &audit.Shadow{Decision: "deny", Reason: "rule_deny", Policy: "strict", Rule: "no-x"}
		}
		if i == 6 {
			// Reads like a shadow answer to a text search, and is none.
			r.Context["shadow"] = map[string]any{"decision": "deny"}
		}
		if err := r.Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = r.Hash
		rs[i] = r
	}
	return rs
}

func auditBackend(t *testing.T, open func(*testing.T) Backend) AuditBackend {
	t.Helper()
	b, ok := open(t).(AuditBackend)
	if !ok {
		t.Fatal("the backend has no audit trail")
	}
	t.Cleanup(func() { _ = b.(Backend).Close() })
	return b
}

func appendTrail(t *testing.T, b AuditBackend) []audit.Record {
	t.Helper()
	ctx := t.Context()
	prev, err := b.LastAuditHash(ctx)
	if err != nil || prev != audit.GenesisHash {
		t.Fatalf("empty trail: %q %v", prev, err)
	}
	rs := trail(t, prev)
	// In two batches, as the writer stores them.
	if err := b.AppendAudit(ctx, rs[:5]); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendAudit(ctx, rs[5:]); err != nil {
		t.Fatal(err)
	}
	return rs
}

func verifyStored(ctx context.Context, b AuditBackend) (int, error) {
	n, err := audit.VerifyChains(ctx, b)
	return int(n), err
}

// anchor is the retention anchor of the backend's only chain.
func anchor(t *testing.T, b AuditBackend) string {
	t.Helper()
	heads, err := b.AuditChains(t.Context())
	if err != nil || len(heads) != 1 {
		t.Fatalf("chains: %v %v", heads, err)
	}
	return heads[0].Anchor
}

func ids(rs []audit.Record) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testAuditChain(t *testing.T, open func(*testing.T) Backend) {
	b := auditBackend(t, open)
	rs := appendTrail(t, b)
	if last, err := b.LastAuditHash(t.Context()); err != nil || last != rs[11].Hash {
		t.Fatalf("last hash %q %v, want %q", last, err, rs[11].Hash)
	}
	if n, err := verifyStored(t.Context(), b); err != nil || n != 12 {
		t.Fatalf("verify: %d records, %v", n, err)
	}
	// What comes back is what went in, context and all.
	var got []audit.Record
	if err := b.ScanAudit(t.Context(), func(r audit.Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rs, got, cmp.AllowUnexported(audit.Record{}, audit.Call{}), cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".canon"
	}, cmp.Ignore())); diff != "" {
		t.Fatalf("records read back differ (-stored +read):\n%s", diff)
	}
	// One by id, as the console's decision page reads it.
	for _, id := range []string{rs[0].ID, rs[7].ID, rs[11].ID} {
		r, ok, err := b.AuditRecord(t.Context(), id)
		if err != nil || !ok || r.ID != id || r.Hash == "" || r.Unreadable != "" {
			t.Fatalf("AuditRecord(%s) = %s %q %v %v", id, r.ID, r.Unreadable, ok, err)
		}
	}
	if _, ok, err := b.AuditRecord(t.Context(), "no-such-record"); ok || err != nil {
		t.Fatalf("AuditRecord of an unknown id: %v %v, want not found", ok, err)
	}
}

func testAuditDuplicate(t *testing.T, open func(*testing.T) Backend) {
	b := auditBackend(t, open)
	rs := appendTrail(t, b)
	dup := trail(t, rs[11].Hash)[:2]
	dup[1].ID = rs[0].ID
	if err := b.AppendAudit(t.Context(), dup); !errors.Is(err, identity.ErrConflict) {
		t.Fatalf("duplicate id: %v, want ErrConflict", err)
	}
	if n, err := verifyStored(t.Context(), b); err != nil || n != 12 {
		t.Fatalf("after a refused batch: %d records, %v (nothing of it may be stored)", n, err)
	}
}

func testAuditFilters(t *testing.T, open func(*testing.T) Backend) {
	b := auditBackend(t, open)
	appendTrail(t, b)
	tests := []struct {
		name string
		f    store.AuditFilter
		want []string // newest first
	}{
		{"all", store.AuditFilter{}, []string{"aud_11", "aud_10", "aud_09", "aud_08", "aud_07", "aud_06", "aud_05", "aud_04", "aud_03", "aud_02", "aud_01", "aud_00"}},
		{"agent", store.AuditFilter{AgentID: "agent_b"}, []string{"aud_10", "aud_07", "aud_04", "aud_01"}},
		{"action exact", store.AuditFilter{Action: "write:y"}, []string{"aud_11", "aud_07", "aud_03"}},
		{"action prefix", store.AuditFilter{Action: "read:x/1*"}, []string{"aud_10", "aud_01"}},
		{"decision", store.AuditFilter{Decision: "deny"}, []string{"aud_11", "aud_08", "aud_05", "aud_02"}},
		{"trace", store.AuditFilter{TraceID: "4bf92f35aaaaaaaaaaaaaaaaaaaaaaaa", AgentID: "agent_a"}, []string{"aud_09", "aud_03"}},
		{"trace sharing a prefix only", store.AuditFilter{TraceID: "4bf92f35bbbbbbbbbbbbbbbbbbbbbbbb"}, []string{}},
		{"time range", store.AuditFilter{From: auditStart.Add(2 * time.Minute), To: auditStart.Add(4 * time.Minute)}, []string{"aud_03", "aud_02"}},
		{"from, another zone", store.AuditFilter{From: auditStart.Add(10 * time.Minute).In(time.FixedZone("X", -5*3600))}, []string{"aud_11", "aud_10"}},
		{"nothing", store.AuditFilter{AgentID: "agent_z"}, []string{}},
		{"shadow answers", store.AuditFilter{Shadow: true}, []string{"aud_09", "aud_04"}},
		{"shadow answers of a period", store.AuditFilter{Shadow: true, From: auditStart.Add(5 * time.Minute)}, []string{"aud_09"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := b.QueryAudit(t.Context(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, ids(page.Records)); diff != "" || page.Next != "" {
				t.Fatalf("ids (-want +got):\n%s next %q", diff, page.Next)
			}
			// A scan with the same filter gives the same records, oldest first.
			var scanned []string
			err = b.ScanAuditFiltered(t.Context(), tc.f, func(r audit.Record, _ string) error {
				scanned = append([]string{r.ID}, scanned...)
				return nil
			})
			if err != nil || !cmp.Equal(tc.want, append([]string{}, scanned...)) {
				t.Fatalf("scan: %v %v", scanned, err)
			}
		})
	}
}

func testAuditPages(t *testing.T, open func(*testing.T) Backend) {
	b := auditBackend(t, open)
	appendTrail(t, b)
	var got []string
	f := store.AuditFilter{Decision: "allow", Limit: 3}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		page, err := b.QueryAudit(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(page.Records)...)
		if page.Next == "" {
			break
		}
		f.Before = page.Next
	}
	want := []string{"aud_10", "aud_09", "aud_07", "aud_06", "aud_04", "aud_03", "aud_01", "aud_00"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("pages (-want +got):\n%s", diff)
	}
	// Following: a scan after a cursor sees only what came later, whether
	// the cursor came from a scan or from a page's newest record.
	var cursor string
	_ = b.ScanAuditFiltered(t.Context(), store.AuditFilter{Limit: 10}, func(_ audit.Record, c string) error { cursor = c; return nil })
	page, err := b.QueryAudit(t.Context(), store.AuditFilter{Before: cursor, Limit: 1})
	if err != nil || len(page.Records) != 1 || page.Records[0].ID != "aud_08" {
		t.Fatalf("the page before the 10th: %v %v", ids(page.Records), err)
	}
	for _, c := range []string{cursor, page.Newest} {
		var later []string
		if err := b.ScanAuditFiltered(t.Context(), store.AuditFilter{After: c}, func(r audit.Record, _ string) error {
			later = append(later, r.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want := []string{"aud_10", "aud_11"}
		if c == page.Newest {
			want = []string{"aud_09", "aud_10", "aud_11"}
		}
		if !cmp.Equal(later, want) {
			t.Fatalf("after cursor %q: %v, want %v", c, later, want)
		}
	}
}

func testAuditInvalid(t *testing.T, open func(*testing.T) Backend) {
	b := auditBackend(t, open)
	tests := []struct {
		name string
		f    store.AuditFilter
	}{
		{"limit over the maximum", store.AuditFilter{Limit: store.MaxAuditLimit + 1}},
		{"negative limit", store.AuditFilter{Limit: -1}},
		{"unknown decision", store.AuditFilter{Decision: "maybe"}},
		{"forged cursor", store.AuditFilter{Before: "12; DROP TABLE audit"}},
		{"empty range", store.AuditFilter{From: auditStart, To: auditStart}},
		{"after on a page", store.AuditFilter{After: "c1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := b.QueryAudit(t.Context(), tc.f); !errors.Is(err, store.ErrInvalidFilter) {
				t.Fatalf("got %v, want ErrInvalidFilter", err)
			}
		})
	}
	if _, err := b.AuditStats(t.Context(), auditStart, auditStart); !errors.Is(err, store.ErrInvalidFilter) {
		t.Fatalf("stats over an empty period: %v", err)
	}
}

func testAuditStats(t *testing.T, open func(*testing.T) Backend) {
	b := auditBackend(t, open)
	appendTrail(t, b)
	// The first nine records: a, b, c three times each; 02, 05, 08 denied.
	st, err := b.AuditStats(t.Context(), auditStart, auditStart.Add(9*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := audit.Stats{
		From: auditStart, To: auditStart.Add(9 * time.Minute), Total: 9, Allowed: 6, Denied: 3,
		// Ties are broken by key; counts first.
		Agents: []audit.Count{{Key: "agent_a", Total: 3}, {Key: "agent_b", Total: 3}, {Key: "agent_c", Total: 3, Denied: 3}},
		Actions: []audit.Count{{Key: "write:y", Total: 2}, {Key: "read:x/0", Total: 1}, {Key: "read:x/1", Total: 1},
			{Key: "read:x/2", Total: 1, Denied: 1}, {Key: "read:x/4", Total: 1}, {Key: "read:x/5", Total: 1, Denied: 1},
			{Key: "read:x/6", Total: 1}, {Key: "read:x/8", Total: 1, Denied: 1}},
		DenyReasons: []audit.Count{{Key: "no_matching_rule", Total: 3, Denied: 3}},
		Sources:     []audit.Count{{Key: "ext_authz-grpc", Total: 6}, {Key: "gateway", Total: 3, Denied: 3}},
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Fatalf("stats (-want +got):\n%s", diff)
	}
}

// testAuditPerMinute: the trail's records (one a minute) counted by
// minute from a start that is not on a record's time, and the bounds.
func testAuditPerMinute(t *testing.T, open func(*testing.T) Backend) {
	b := auditBackend(t, open)
	appendTrail(t, b)
	// From 30 s before the record of minute 2 (denied) to the end of
	// minute 5's: minutes 0..3 of the timeline hold records 2..5.
	from := auditStart.Add(90 * time.Second)
	got, err := b.AuditPerMinute(t.Context(), from, from.Add(4*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := []audit.Minute{
		{Start: from, Allowed: 0, Denied: 1},                      // aud_02
		{Start: from.Add(time.Minute), Allowed: 1},                // aud_03
		{Start: from.Add(2 * time.Minute), Allowed: 1},            // aud_04
		{Start: from.Add(3 * time.Minute), Allowed: 0, Denied: 1}, // aud_05
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("per minute (-want +got):\n%s", diff)
	}
	// A quiet stretch is left out, not counted as zero rows.
	if got, err := b.AuditPerMinute(t.Context(), auditStart.Add(time.Hour), auditStart.Add(2*time.Hour)); err != nil || len(got) != 0 {
		t.Fatalf("an hour with no records: %v %v", got, err)
	}
	for _, tc := range []struct {
		name     string
		from, to time.Time
	}{
		{"empty span", auditStart, auditStart},
		{"backwards", auditStart.Add(time.Minute), auditStart},
		{"longer than a day", auditStart, auditStart.Add(24*time.Hour + time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := b.AuditPerMinute(t.Context(), tc.from, tc.to); !errors.Is(err, store.ErrInvalidFilter) {
				t.Fatalf("got %v, want ErrInvalidFilter", err)
			}
		})
	}
}

func testAuditPrune(t *testing.T, open func(*testing.T) Backend) {
	b := auditBackend(t, open)
	rs := appendTrail(t, b)
	ctx := t.Context()
	if n, err := b.PruneAudit(ctx, auditStart); err != nil || n != 0 {
		t.Fatalf("pruning nothing: %d %v", n, err)
	}
	if a := anchor(t, b); a != audit.GenesisHash {
		t.Fatalf("anchor before any pruning: %q", a)
	}
	n, err := b.PruneAudit(ctx, auditStart.Add(5*time.Minute))
	if err != nil || n != 5 {
		t.Fatalf("pruned %d, %v; want 5", n, err)
	}
	if a := anchor(t, b); a != rs[4].Hash {
		t.Fatalf("anchor %q, want the last pruned record's hash", a)
	}
	if n, err := verifyStored(ctx, b); err != nil || n != 7 {
		t.Fatalf("the chain left: %d records, %v", n, err)
	}
	// Twice more: anchors follow.
	if n, err := b.PruneAudit(ctx, auditStart.Add(8*time.Minute)); err != nil || n != 3 {
		t.Fatalf("second prune: %d %v", n, err)
	}
	if n, err := verifyStored(ctx, b); err != nil || n != 4 {
		t.Fatalf("after the second prune: %d records, %v", n, err)
	}
	// The writer links on from the newest record, not the anchor…
	if last, err := b.LastAuditHash(ctx); err != nil || last != rs[11].Hash {
		t.Fatalf("last hash after pruning: %q %v", last, err)
	}
	// …and from the anchor when retention took every record.
	if n, err := b.PruneAudit(ctx, auditStart.Add(time.Hour)); err != nil || n != 4 {
		t.Fatalf("pruning the rest: %d %v", n, err)
	}
	if last, err := b.LastAuditHash(ctx); err != nil || last != rs[11].Hash {
		t.Fatalf("last hash of an emptied trail: %q %v, want the anchor's", last, err)
	}
	// Records after that link to the anchor, and the chain goes on.
	more := trail(t, rs[11].Hash)[:2]
	more[0].ID, more[1].ID = "aud_12", "aud_13"
	for i := range more {
		more[i].Timestamp = auditStart.Add(2 * time.Hour)
		prev := rs[11].Hash
		if i > 0 {
			prev = more[0].Hash
		}
		if err := more[i].Seal(prev); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AppendAudit(ctx, more); err != nil {
		t.Fatal(err)
	}
	if n, err := verifyStored(ctx, b); err != nil || n != 2 {
		t.Fatalf("after an emptied trail: %d records, %v", n, err)
	}
	if _, err := b.PruneAudit(ctx, auditStart.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if last, err := b.LastAuditHash(ctx); err != nil || last != more[1].Hash {
		t.Fatalf("after a second emptying: %q %v, want the newest anchor's hash", last, err)
	}
}

// testAuditScanWindow: a scan of a time window (what policy replay
// streams) gives the window's records oldest first, inputs and all, and
// nothing outside it.
func testAuditScanWindow(t *testing.T, open func(*testing.T) Backend) {
	b := auditBackend(t, open)
	rs := appendTrail(t, b)
	var got []audit.Record
	f := store.AuditFilter{From: rs[3].Timestamp, To: rs[9].Timestamp}
	if err := b.ScanAuditFiltered(t.Context(), f, func(r audit.Record, _ string) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rs[3:9], got, cmp.AllowUnexported(audit.Record{}, audit.Call{}), cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".canon"
	}, cmp.Ignore())); diff != "" {
		t.Fatalf("the window read back differs (-stored +read):\n%s", diff)
	}
	if got[0].Inputs == nil || len(got[0].Inputs.Chain) != 0 || got[3].Inputs == nil || len(got[3].Inputs.Chain) != 1 {
		t.Fatalf("inputs of the window: %+v, %+v", got[0].Inputs, got[3].Inputs)
	}
}
