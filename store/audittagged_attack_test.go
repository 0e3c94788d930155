package store

import (
	"bytes"
	"database/sql"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
)

// nearEngineRecords are records whose ids, trace ids and sources are a
// byte away from an engine form — a newline or a space after it (where a
// regular expression's $ may match before a final newline), an upper-case
// or non-hex digit, one digit short, a known source in another case —
// and so must stay text: read back, found and verified as sealed.
func nearEngineRecords(t *testing.T) []audit.Record {
	t.Helper()
	rs := compactRecords(t, audit.GenesisHash, 10)
	odd := []struct{ id, trace, source string }{
		{rs[0].ID + "\n", rs[0].TraceID + "\n", "gateway\n"},
		{rs[1].ID + " ", " " + rs[1].TraceID, "Gateway"},
		{rs[2].ID[:len(rs[2].ID)-1] + "A", rs[2].TraceID[:31] + "A", "wasm "},
		{rs[3].ID[:len(rs[3].ID)-1] + "g", rs[3].TraceID[:31] + "g", " api"},
		{rs[4].ID[:len(rs[4].ID)-2], rs[4].TraceID[:30], "delegatio"},
		{"aud_\n" + rs[5].ID[4:], rs[5].TraceID[:16] + "\n" + rs[5].TraceID[16:], "ext_authz-grpc\t"},
		{"aud_" + strings.Repeat("٠", 24), strings.Repeat("０", 32), "gateway"},
		{rs[7].ID, rs[7].TraceID, "wasm"}, // the engine's forms, among them
	}
	prev := audit.GenesisHash
	for i := range rs {
		if i < len(odd) {
			rs[i].ID, rs[i].TraceID, rs[i].Source = odd[i].id, odd[i].trace, odd[i].source
		}
		rs[i].Hash = ""
		if err := rs[i].Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = rs[i].Hash
	}
	return rs
}

// TestNearEngineFormsMigrate: a text-column trail (SQLite at 0014,
// PostgreSQL at 0017) of values a byte away from the engine's forms
// migrates with each value kept as its text (0015's and 0018's tests of
// the form agree with the store's), verifies, and finds each record by its
// id and its trace id, and by no neighbour of them.
func TestNearEngineFormsMigrate(t *testing.T) {
	for _, tr := range trailsAt(14, 17) {
		t.Run(tr.name, func(t *testing.T) {
			ctx := t.Context()
			rs := nearEngineRecords(t)
			raw, open := tr.setUp(t)
			writeRoundTwo(t, raw, rs)
			s, closeStore := open()
			t.Cleanup(func() { _ = closeStore() })
			if n, err := audit.VerifyChains(ctx, s); n != int64(len(rs)) || err != nil {
				t.Fatalf("verify after migrating: %d, %v", n, err)
			}
			checkNearEngineTypes(t, raw, s, rs)
			want := canonicals(t, rs)
			for i, r := range rs {
				got, ok, err := s.AuditRecord(ctx, r.ID)
				if err != nil || !ok || canonicals(t, []audit.Record{got})[0] != want[i] || got.Hash != r.Hash || got.Unreadable != "" {
					t.Errorf("record %d by id %q: %v %v %s", i, r.ID, ok, err, got.Unreadable)
				}
				page, err := s.QueryAudit(ctx, AuditFilter{TraceID: r.TraceID})
				if err != nil || len(page.Records) != 1 || page.Records[0].ID != r.ID {
					t.Errorf("record %d by trace id %q: %d records, %v", i, r.TraceID, len(page.Records), err)
				}
				if trimmed := strings.TrimSpace(r.ID); trimmed != r.ID {
					if _, ok, err := s.AuditRecord(ctx, trimmed); ok || err != nil {
						t.Errorf("record %d: id %q found by %q (%v)", i, r.ID, trimmed, err)
					}
				}
			}
			st, err := s.AuditStats(ctx, rs[0].Timestamp, rs[len(rs)-1].Timestamp.Add(1))
			if err != nil {
				t.Fatal(err)
			}
			counts := map[string]int64{}
			for _, c := range st.Sources {
				counts[c.Key] += c.Total
			}
			for _, r := range rs[:8] {
				if counts[r.Source] == 0 {
					t.Errorf("stats: source %q not counted (%v)", r.Source, st.Sources)
				}
			}
		})
	}
}

// checkNearEngineTypes: nearEngineRecords' odd values are stored as text,
// the engine's forms (record 6's source, records 7 on) as bytes and
// numbers (see checkStoredTypes).
func checkNearEngineTypes(t *testing.T, raw *sql.DB, s *db, rs []audit.Record) {
	t.Helper()
	q := `SELECT typeof(id), typeof(trace_id), typeof(source) FROM audit WHERE id = $1`
	if s.dialect.taggedCols {
		q = `SELECT CASE get_byte(id, 0) WHEN 0 THEN 'blob' WHEN 1 THEN 'text' END, CASE get_byte(trace_id, 0) WHEN 0 THEN 'blob' WHEN 1 THEN 'text' END,
			CASE get_byte(source, 0) WHEN 0 THEN 'integer' WHEN 1 THEN 'text' END FROM audit WHERE id = $1`
	}
	for i, r := range rs {
		var id, trace, source string
		if err := raw.QueryRowContext(t.Context(), q, s.dialect.idArg(r.ID)).Scan(&id, &trace, &source); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		want := [3]string{"text", "text", "text"}
		if i >= 7 {
			want = [3]string{"blob", "blob", "integer"}
		} else if i == 6 {
			want[2] = "integer"
		}
		if got := [3]string{id, trace, source}; got != want {
			t.Errorf("record %d (%q, %q, %q) stored as %v, want %v", i, r.ID, r.TraceID, r.Source, got, want)
		}
	}
}

// TestTaggedEditsAreReported: on PostgreSQL (0018), edits of a tagged
// column that TestCompactTamperingIsDetected does not make — an empty
// value, a tag alone, a form a byte too long, a client's text turned into
// the engine form of the same hex, a NUL or newline after a text, a
// client's source made a number — break verification at the edited row,
// whatever form the row held.
func TestTaggedEditsAreReported(t *testing.T) {
	pg := compactBackends()[1]
	for _, tc := range []struct {
		name, sql string
		row       int // of mixedRecords: 1 client id and trace id in upper case, 2 a client's source, 4 engine id, empty trace and source
	}{
		{"engine id emptied", `UPDATE audit SET id = ''::bytea WHERE id = $1`, 4},
		{"engine id a tag alone", `UPDATE audit SET id = '\x00'::bytea WHERE id = $1`, 4},
		{"engine id as an empty text", `UPDATE audit SET id = '\x01'::bytea WHERE id = $1`, 4},
		{"empty trace id with no tag", `UPDATE audit SET trace_id = ''::bytea WHERE id = $1`, 4},
		{"empty trace id made an engine tag", `UPDATE audit SET trace_id = '\x00'::bytea WHERE id = $1`, 4},
		{"empty source made an engine tag", `UPDATE audit SET source = '\x00'::bytea WHERE id = $1`, 4},
		{"empty source made two numbers", `UPDATE audit SET source = '\x000000'::bytea WHERE id = $1`, 4},
		{"client trace id made the engine form of its hex", `UPDATE audit SET trace_id = '\x00'::bytea || decode(convert_from(substr(trace_id, 2), 'UTF8'), 'hex') WHERE id = $1`, 1},
		{"client id with a NUL after it", `UPDATE audit SET id = id || '\x00'::bytea WHERE id = $1`, 1},
		{"client trace id with a newline after it", `UPDATE audit SET trace_id = trace_id || '\x0a'::bytea WHERE id = $1`, 1},
		{"client id given the engine tag", `UPDATE audit SET id = '\x00'::bytea || substr(id, 2) WHERE id = $1`, 1},
		{"client source made a number", `UPDATE audit SET source = '\x0001'::bytea WHERE id = $1`, 2},
		{"client source given the engine tag", `UPDATE audit SET source = '\x00'::bytea || substr(source, 2) WHERE id = $1`, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, raw := pg.open(t)
			ctx := t.Context()
			rs := mixedRecords(t, 6)
			if err := s.AppendAudit(ctx, rs); err != nil {
				t.Fatal(err)
			}
			res, err := raw.ExecContext(ctx, tc.sql, s.dialect.idArg(rs[tc.row].ID))
			if err != nil {
				t.Fatal(err)
			}
			if n, err := res.RowsAffected(); n != 1 || err != nil {
				t.Fatalf("edit changed %d rows (%v)", n, err)
			}
			var brk *audit.Break
			if _, err := audit.VerifyChains(ctx, s); !errors.As(err, &brk) || brk.Index != tc.row {
				t.Fatalf("verify after the edit: %v; want a break at record %d", err, tc.row)
			}
		})
	}
}

// TestMigratedFormsAreTheStoresForms: for ids, trace ids and sources drawn
// around the engine's forms (hex of either case, one digit more or less,
// the "aud_" prefix or not, a newline, multi-byte text, each known source
// and near misses), the value the text-column migration (SQLite 0015,
// PostgreSQL 0018) stores is byte for byte the one the store writes for
// the same text (idArg, traceArg, sourceArg): a migrated record is then
// found as a new one is, and its kind is the one verification expects.
func TestMigratedFormsAreTheStoresForms(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 4))
	hexOf := func(n int, upper bool) string {
		const lower, upperHex = "0123456789abcdef", "0123456789ABCDEF"
		b := make([]byte, n)
		for i := range b {
			b[i] = lower[rng.IntN(16)]
			if upper && rng.IntN(4) == 0 {
				b[i] = upperHex[rng.IntN(16)]
			}
		}
		return string(b)
	}
	odd := []string{"", "\n", " ", "ŧ", "g", "٠"}
	near := func(n int) string {
		s := hexOf(n+rng.IntN(3)-1, rng.IntN(3) == 0)
		if rng.IntN(4) == 0 {
			at := rng.IntN(len(s) + 1)
			s = s[:at] + odd[rng.IntN(len(odd))] + s[at:]
		}
		return s
	}
	sources := append(slices.Clone(auditSources[:]), "Gateway", "wasm\n", "api ", "", "mcp-sidecar", "delegatio", "ext_authz")
	rs := compactRecords(t, audit.GenesisHash, 120)
	seen := map[string]bool{}
	prev := audit.GenesisHash
	for i := range rs {
		r := &rs[i]
		for {
			r.ID = "aud_" + near(24)
			if rng.IntN(8) == 0 {
				r.ID = near(28)
			}
			if !seen[r.ID] {
				break
			}
		}
		seen[r.ID] = true
		r.TraceID, r.Source = near(32), sources[rng.IntN(len(sources))]
		r.DecisionID, r.Hash = "", ""
		if err := r.Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = r.Hash
	}
	var engineIDs, engineTraces int
	for _, r := range rs {
		if _, ok := lowerHexBytes(strings.TrimPrefix(r.ID, auditIDPrefix), 12); ok && strings.HasPrefix(r.ID, auditIDPrefix) {
			engineIDs++
		}
		if isLowerHex(r.TraceID, 16) {
			engineTraces++
		}
	}
	if min(engineIDs, engineTraces) < 10 || max(engineIDs, engineTraces) > len(rs)-10 {
		t.Fatalf("%d engine ids and %d engine trace ids of %d: the draw does not test both forms", engineIDs, engineTraces, len(rs))
	}
	for _, tr := range trailsAt(14, 17) {
		t.Run(tr.name, func(t *testing.T) {
			ctx := t.Context()
			raw, open := tr.setUp(t)
			writeRoundTwo(t, raw, rs)
			s, closeStore := open()
			t.Cleanup(func() { _ = closeStore() })
			rows, err := raw.QueryContext(ctx, `SELECT id, trace_id, source FROM audit ORDER BY seq`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			i := 0
			for ; rows.Next(); i++ {
				var id, trace, source any
				if err := rows.Scan(&id, &trace, &source); err != nil {
					t.Fatal(err)
				}
				r := rs[i]
				for _, c := range []struct {
					name, text string
					got, want  any
				}{
					{"id", r.ID, id, s.dialect.idArg(r.ID)},
					{"trace id", r.TraceID, trace, s.dialect.traceArg(r.TraceID)},
					{"source", r.Source, source, s.dialect.sourceArg(r.Source)},
				} {
					if !sameStored(c.got, c.want) {
						t.Errorf("record %d: %s %q migrated to %#v, the store writes %#v", i, c.name, c.text, c.got, c.want)
					}
				}
			}
			if err := rows.Err(); err != nil || i != len(rs) {
				t.Fatalf("%d rows read, want %d (%v)", i, len(rs), err)
			}
			if n, err := audit.VerifyChains(ctx, s); n != int64(len(rs)) || err != nil {
				t.Fatalf("verify after migrating: %d, %v", n, err)
			}
		})
	}
}

// sameStored says whether a value read back raw is the value the store
// binds (bytes, text or a number).
func sameStored(got, want any) bool {
	switch w := want.(type) {
	case []byte:
		g, ok := got.([]byte)
		return ok && bytes.Equal(g, w)
	case string:
		g, ok := got.(string)
		return ok && g == w
	case int64:
		g, ok := got.(int64)
		return ok && g == w
	}
	return false
}
