package store

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/meshguard/meshguard/audit"
)

// mixedRecords are compactRecords with ids, trace ids and sources of every
// stored form (auditcols.go): the engine's, and ones a client chose that
// stay text — an upper-case hex id and trace id, ids and trace ids of
// other lengths, a trace id of multi-byte characters, a source the
// engine does not write.
func mixedRecords(t testing.TB, n int) []audit.Record {
	t.Helper()
	rs := compactRecords(t, audit.GenesisHash, n)
	prev := audit.GenesisHash
	for i := range rs {
		r := &rs[i]
		switch i % 6 {
		case 1:
			r.ID = strings.ToUpper(r.ID[:4]) + strings.ToUpper(r.ID[4:]) // "AUD_…": text
			r.TraceID = strings.ToUpper(r.TraceID)
		case 2:
			r.ID = fmt.Sprintf("aud_%d", i)
			r.TraceID, r.Source = fmt.Sprintf("short-%d", i), "mcp-sidecar"
		case 3:
			r.ID = "aud_" + strings.Repeat("0", 22) + fmt.Sprintf("%02x", i) + "ff" // 13 bytes of hex: text
			r.TraceID, r.Source = r.TraceID+"00", "delegation"
		case 4:
			r.TraceID, r.Source = "", ""
		case 5:
			r.TraceID, r.Source = fmt.Sprintf("ŧrâcé-ïd-%d", i), "wasm"
		}
		r.Hash = ""
		if err := r.Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = r.Hash
	}
	return rs
}

// TestAuditColumnFormsReadBack: records with ids, trace ids, decisions and
// sources in every stored form read back as sealed — by id, by trace id,
// by every filter, in stats — and verify, on both engines; on SQLite the
// engine's forms are stored as bytes and numbers, the rest as text.
func TestAuditColumnFormsReadBack(t *testing.T) {
	for _, b := range compactBackends() {
		t.Run(b.name, func(t *testing.T) {
			s, raw := b.open(t)
			ctx := t.Context()
			rs := mixedRecords(t, 12)
			if err := s.AppendAudit(ctx, rs); err != nil {
				t.Fatal(err)
			}
			if n, err := audit.VerifyChains(ctx, s); n != int64(len(rs)) || err != nil {
				t.Fatalf("verify: %d, %v", n, err)
			}
			want := canonicals(t, rs)
			for i, r := range rs {
				got, ok, err := s.AuditRecord(ctx, r.ID)
				if err != nil || !ok || canonicals(t, []audit.Record{got})[0] != want[i] || got.Hash != r.Hash {
					t.Errorf("record %d by id %q: %v %v %s", i, r.ID, ok, err, got.Unreadable)
				}
				if h, ok, err := s.AuditHashByID(ctx, r.ID); h != r.Hash || !ok || err != nil {
					t.Errorf("record %d's hash by id: %q %v %v", i, h, ok, err)
				}
				if r.TraceID == "" {
					continue
				}
				page, err := s.QueryAudit(ctx, AuditFilter{TraceID: r.TraceID})
				var ids []string
				for _, p := range page.Records {
					ids = append(ids, p.ID)
				}
				if err != nil || !slices.Equal(ids, []string{r.ID}) {
					t.Errorf("record %d by trace id %q: %v %v", i, r.TraceID, ids, err)
				}
			}
			// A stored form's neighbours find nothing: the other case, the
			// engine's form of an id stored as text.
			for _, id := range []string{strings.ToLower(rs[1].ID), strings.ToUpper(rs[0].ID), rs[3].ID[:28]} {
				if _, ok, err := s.AuditRecord(ctx, id); ok || err != nil {
					t.Errorf("id %q: found %v, %v; want nothing", id, ok, err)
				}
			}
			for _, f := range []AuditFilter{{Decision: "deny"}, {Decision: "allow"}, {AgentID: "agent_2", Decision: "deny"}} {
				page, err := s.QueryAudit(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				var got, wantIDs []string
				for _, p := range page.Records {
					got = append(got, p.ID)
				}
				for i := len(rs) - 1; i >= 0; i-- {
					if rs[i].Decision == f.Decision && (f.AgentID == "" || rs[i].AgentID == f.AgentID) {
						wantIDs = append(wantIDs, rs[i].ID)
					}
				}
				if !slices.Equal(got, wantIDs) {
					t.Errorf("%+v: got %v, want %v", f, got, wantIDs)
				}
			}
			st, err := s.AuditStats(ctx, rs[0].Timestamp, rs[len(rs)-1].Timestamp.Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			counts := map[string][2]int64{}
			for _, r := range rs {
				c := counts[r.Source]
				c[0]++
				if r.Decision == "deny" {
					c[1]++
				}
				counts[r.Source] = c
			}
			var wantSources []audit.Count
			for k, c := range counts {
				wantSources = append(wantSources, audit.Count{Key: k, Total: c[0], Denied: c[1]})
			}
			slices.SortFunc(wantSources, func(a, b audit.Count) int {
				if a.Total != b.Total {
					return int(b.Total - a.Total)
				}
				return strings.Compare(a.Key, b.Key)
			})
			if !slices.Equal(st.Sources, wantSources) || st.Total != int64(len(rs)) || st.Denied != 3 {
				t.Errorf("stats: sources %v (want %v), total %d, denied %d", st.Sources, wantSources, st.Total, st.Denied)
			}
			minutes, err := s.AuditPerMinute(ctx, rs[0].Timestamp, rs[len(rs)-1].Timestamp.Add(time.Second))
			var allowed, denied int64
			for _, m := range minutes {
				allowed, denied = allowed+m.Allowed, denied+m.Denied
			}
			if err != nil || allowed != 9 || denied != 3 {
				t.Errorf("per minute: %d allowed, %d denied, %v; want 9 and 3", allowed, denied, err)
			}
			if b.name == "sqlite" {
				checkStoredTypes(t, raw, s, rs)
			}
		})
	}
}

// checkStoredTypes: the engine's ids and trace ids are stored as bytes,
// decisions and its sources as numbers, everything else as text.
func checkStoredTypes(t *testing.T, raw *sql.DB, s *db, rs []audit.Record) {
	t.Helper()
	// On PostgreSQL (0018) the tag byte says the form: 0 the engine's, 1 text.
	q := `SELECT typeof(id), typeof(trace_id), typeof(decision), typeof(source) FROM audit WHERE id = $1`
	if s.dialect.taggedCols {
		q = `SELECT CASE get_byte(id, 0) WHEN 0 THEN 'blob' WHEN 1 THEN 'text' END, CASE get_byte(trace_id, 0) WHEN 0 THEN 'blob' WHEN 1 THEN 'text' END,
			CASE WHEN pg_typeof(decision) = 'smallint'::regtype THEN 'integer' END, CASE get_byte(source, 0) WHEN 0 THEN 'integer' WHEN 1 THEN 'text' END
			FROM audit WHERE id = $1`
	}
	for i, r := range rs {
		var id, trace, decision, source string
		if err := raw.QueryRowContext(t.Context(), q,
			s.dialect.idArg(r.ID)).Scan(&id, &trace, &decision, &source); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		engineID := i%6 != 1 && i%6 != 2 && i%6 != 3
		engineTrace := i%6 == 0
		engineSource := i%6 != 2 && i%6 != 4
		wantType := func(engine bool, form string) string {
			if engine {
				return form
			}
			return "text"
		}
		if id != wantType(engineID, "blob") || trace != wantType(engineTrace, "blob") || decision != "integer" || source != wantType(engineSource, "integer") {
			t.Errorf("record %d (%s, %s, %s) stored as %s, %s, %s, %s", i, r.ID, r.TraceID, r.Source, id, trace, decision, source)
		}
	}
}

// FuzzAuditColumnForms: every id, trace id, decision and source reads back
// from its stored form as the text it was, and two texts never share a
// stored form.
func FuzzAuditColumnForms(f *testing.F) {
	f.Add("aud_01a2287480857309d0e60004", "3792e9179db5df94934d3ed737910004", "ext_authz-grpc", true)
	f.Add("aud_01A2287480857309D0E60004", "3792E9179DB5DF94934D3ED737910004", "mcp", false)
	f.Add("aud_", "", "", false)
	d := dialect{name: "sqlite", compactCols: true}
	pg := dialect{name: "postgres", taggedCols: true}
	f.Fuzz(func(t *testing.T, id, trace, source string, deny bool) {
		decision := map[bool]string{true: "deny", false: "allow"}[deny]
		checkTaggedForms(t, pg, id, trace, source, decision)
		if got := idText(d.idArg(id)); got != id {
			t.Fatalf("id %q reads back as %q", id, got)
		}
		if got := traceText(d.traceArg(trace)); got != trace {
			t.Fatalf("trace id %q reads back as %q", trace, got)
		}
		if got := sourceText(d.sourceArg(source)); got != source {
			t.Fatalf("source %q reads back as %q", source, got)
		}
		if got := decisionText(d.decisionArg(decision)); got != decision {
			t.Fatalf("decision %q reads back as %q", decision, got)
		}
		// A stored form that is bytes comes from exactly one text.
		if b, ok := d.idArg(id).([]byte); ok && (len(b) != 12 || auditIDPrefix+fmt.Sprintf("%x", b) != id) {
			t.Fatalf("id %q stored as %x", id, b)
		}
		if b, ok := d.traceArg(trace).([]byte); ok && (len(b) != 16 || fmt.Sprintf("%x", b) != trace) {
			t.Fatalf("trace id %q stored as %x", trace, b)
		}
	})
}

// writeRoundTwo stores rs as migrations 0014/0017 left the table: the
// compact record, the agent by its dictionary number, ids, trace ids,
// decisions and sources as text.
func writeRoundTwo(t *testing.T, raw *sql.DB, rs []audit.Record) {
	t.Helper()
	ctx := t.Context()
	chain := oldChain(t, raw, rs)
	for _, r := range rs {
		body, prev, hash := compactRow(t, r)
		if _, err := raw.ExecContext(ctx, `INSERT INTO audit_agents (agent_id) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM audit_agents WHERE agent_id = $1)`, r.AgentID); err != nil {
			t.Fatal(err)
		}
		if _, err := raw.ExecContext(ctx, `INSERT INTO audit (chain_id, id, ts, agent, action, decision, trace_id, status, reason, source, shadow, record, prev_hash, hash)
			VALUES ($14, $1, $2, (SELECT n FROM audit_agents WHERE agent_id = $3), $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`, r.ID, r.Timestamp.UnixMicro(), r.AgentID, r.Action, r.Decision,
			r.TraceID, r.Status, r.Reason, r.Source, r.Shadow != nil, body, prev, hash, chain); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.ExecContext(ctx, `INSERT INTO audit_anchors (chain_id, last_seq, last_hash, last_ts, deleted, pruned_at) VALUES ($2, 0, $1, 0, 2, 0)`,
		rs[0].PrevHash, chain); err != nil {
		t.Fatal(err)
	}
}

// TestRoundTwoTrailMigrates: a trail whose ids, trace ids, decisions and
// sources are text (migrations 0014/0017), of every form, verifies after
// their migration with the same hashes, is found by each id and trace id,
// and takes new records after it; a decision edited before the migration
// is still found after it.
func TestRoundTwoTrailMigrates(t *testing.T) {
	for _, tr := range trailsAt(14, 17) {
		t.Run(tr.name, func(t *testing.T) {
			ctx := t.Context()
			all := mixedRecords(t, 18)
			old, later := all[:12], all[12:]
			raw, open := tr.setUp(t)
			writeRoundTwo(t, raw, old)
			s, closeStore := open()
			t.Cleanup(func() { _ = closeStore() })
			if n, err := audit.VerifyChains(ctx, s); n != int64(len(old)) || err != nil {
				t.Fatalf("verify after migrating: %d, %v", n, err)
			}
			checkStoredTypes(t, raw, s, old)
			want := canonicals(t, old)
			for i, r := range old {
				got, ok, err := s.AuditRecord(ctx, r.ID)
				if err != nil || !ok || canonicals(t, []audit.Record{got})[0] != want[i] || got.Hash != r.Hash || got.PrevHash != r.PrevHash {
					t.Errorf("record %d by id %q: %v %v %s", i, r.ID, ok, err, got.Unreadable)
				}
				if r.TraceID == "" {
					continue
				}
				page, err := s.QueryAudit(ctx, AuditFilter{TraceID: r.TraceID})
				if err != nil || len(page.Records) != 1 || page.Records[0].ID != r.ID {
					t.Errorf("record %d by trace id %q: %v %v", i, r.TraceID, page.Records, err)
				}
			}
			if err := s.AppendAudit(ctx, later); err != nil {
				t.Fatal(err)
			}
			if n, err := audit.VerifyChains(ctx, s); n != int64(len(all)) || err != nil {
				t.Fatalf("verify old and new records: %d, %v", n, err)
			}
		})
	}
}

// TestRoundTwoEditStillFound: a decision edited in a text-column trail
// before the migration still breaks verification after it.
func TestRoundTwoEditStillFound(t *testing.T) {
	for _, tr := range trailsAt(14, 17) {
		t.Run(tr.name, func(t *testing.T) {
			ctx := t.Context()
			rs := mixedRecords(t, 8)
			raw, open := tr.setUp(t)
			writeRoundTwo(t, raw, rs)
			if _, err := raw.ExecContext(ctx, `UPDATE audit SET decision = 'deny' WHERE id = $1`, rs[5].ID); err != nil {
				t.Fatal(err)
			}
			s, closeStore := open()
			t.Cleanup(func() { _ = closeStore() })
			var brk *audit.Break
			if _, err := audit.VerifyChains(ctx, s); !errors.As(err, &brk) || brk.ID != rs[5].ID {
				t.Fatalf("verify: %v; want the edited record %s named", err, rs[5].ID)
			}
		})
	}
}

// checkTaggedForms: on PostgreSQL (0018) every id, trace id, decision and
// source reads back from its stored form as the text it was, in the kind
// storedForm expects of it, and a tag 0 form comes from exactly one text.
func checkTaggedForms(t *testing.T, pg dialect, id, trace, source, decision string) {
	t.Helper()
	idc, decc, tracec, srcc := pg.auditCols()
	for _, c := range []struct {
		name, text string
		col        *colText
		stored     any
	}{
		{"id", id, &idc, pg.idArg(id)},
		{"trace id", trace, &tracec, pg.traceArg(trace)},
		{"source", source, &srcc, pg.sourceArg(source)},
		{"decision", decision, &decc, pg.decisionArg(decision)},
	} {
		if err := c.col.Scan(c.stored); err != nil || c.col.s != c.text {
			t.Fatalf("%s %q stored as %x reads back as %q (%v)", c.name, c.text, c.stored, c.col.s, err)
		}
		if b, ok := c.stored.([]byte); ok && (len(b) == 0 || b[0] > tagText) {
			t.Fatalf("%s %q stored as %x: no tag", c.name, c.text, b)
		}
	}
	cols := auditColumns{id: id, traceID: trace, source: source, decision: decision}
	if col := pg.storedForm(&cols, &idc, &decc, &tracec, &srcc); col != "" && utf8.ValidString(id) && utf8.ValidString(trace) && utf8.ValidString(source) {
		t.Fatalf("%q, %q, %q: its %s read back in a form the store does not write", id, trace, source, col)
	}
	if b := pg.idArg(id).([]byte); b[0] == tagEngine && (len(b) != 13 || auditIDPrefix+fmt.Sprintf("%x", b[1:]) != id) {
		t.Fatalf("id %q stored as %x", id, b)
	}
	if b := pg.traceArg(trace).([]byte); b[0] == tagEngine && (len(b) != 17 || fmt.Sprintf("%x", b[1:]) != trace) {
		t.Fatalf("trace id %q stored as %x", trace, b)
	}
	if b := pg.sourceArg(source).([]byte); b[0] == tagEngine && (len(b) != 2 || auditSources[b[1]] != source) {
		t.Fatalf("source %q stored as %x", source, b)
	}
	if p := pg.tracePrefixArg(trace).([]byte); !bytes.HasPrefix(pg.traceArg(trace).([]byte), p) || len(p) > 7 {
		t.Fatalf("trace id %q's index prefix %x", trace, p)
	}
}
