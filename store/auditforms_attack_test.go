package store

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// TestStoredFormEditIsReported: on SQLite every id, trace id, decision and
// source has one stored form (auditcols.go). A row edited into another
// form of the same text — the engine's id or trace id as text instead of
// bytes, a client's 13-byte hex id as bytes, a known source as its name —
// reads back as the record that was sealed, yet lookups by id or trace id
// no longer find it and stats count its source twice. Verification must
// name it.
// resealed seals rs again, in order, after a test changed them.
func resealed(t *testing.T, rs []audit.Record) {
	t.Helper()
	prev := audit.GenesisHash
	for i := range rs {
		rs[i].Hash = ""
		if err := rs[i].Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = rs[i].Hash
	}
}

func TestStoredFormEditIsReported(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   int // a record of mixedRecords whose row is edited
		edit string
	}{
		{"engine id kept as its text", 0, `UPDATE audit SET id = 'aud_' || lower(hex(id)) WHERE id = $1`},
		{"engine trace id kept as its text", 0, `UPDATE audit SET trace_id = lower(hex(trace_id)) WHERE id = $1`},
		{"client id of 13 hex bytes kept as bytes", 3, `UPDATE audit SET id = unhex(substr(id, 5)) WHERE id = $1`},
		{"known source kept as its name", 0, `UPDATE audit SET source = 'ext_authz-grpc' WHERE id = $1`},
		// Edits to another value (the hash tells; kept for the forms).
		{"decision flipped", 0, `UPDATE audit SET decision = 1 - decision WHERE id = $1`},
		{"source a number no source has", 0, `UPDATE audit SET source = 9 WHERE id = $1`},
		{"id a number", 2, `UPDATE audit SET id = 2 WHERE id = $1`},
		{"engine id in upper case", 0, `UPDATE audit SET id = 'AUD_' || hex(id) WHERE id = $1`},
		// The canonical encoding writes an invalid byte as U+FFFD: a text
		// column's U+FFFD (EF BF BD) replaced by a lone invalid byte reads
		// as the same record, and a filter on the real value misses it.
		{"action's U+FFFD made an invalid byte", 0, `UPDATE audit SET action = CAST(replace(CAST(action AS BLOB), X'EFBFBD', X'FF') AS TEXT) WHERE id = $1`},
		{"reason's U+FFFD made an invalid byte", 0, `UPDATE audit SET reason = CAST(replace(CAST(reason AS BLOB), X'EFBFBD', X'FE') AS TEXT) WHERE id = $1`},
		{"client trace id's U+FFFD made an invalid byte", 5, `UPDATE audit SET trace_id = CAST(replace(CAST(trace_id AS BLOB), X'EFBFBD', X'FF') AS TEXT) WHERE id = $1`},
		{"agent's U+FFFD made an invalid byte", 0, `UPDATE audit_agents SET agent_id = CAST(replace(CAST(agent_id AS BLOB), X'EFBFBD', X'FF') AS TEXT) WHERE n = (SELECT agent FROM audit WHERE id = $1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, raw := compactBackends()[0].open(t)
			ctx := t.Context()
			rs := mixedRecords(t, 6)
			// Values a request may carry: U+FFFD is valid UTF-8.
			rs[0].Action, rs[0].Reason, rs[0].AgentID = "read:caf\uFFFD", "denied \uFFFD", "agent_\uFFFD"
			rs[5].TraceID = "trace-\uFFFD"
			resealed(t, rs)
			if err := s.AppendAudit(ctx, rs); err != nil {
				t.Fatal(err)
			}
			res, err := raw.ExecContext(ctx, tc.edit, s.dialect.idArg(rs[tc.at].ID))
			if err != nil {
				t.Fatal(err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				t.Skipf("the edit changed %d rows (%v)", n, err)
			}
			var brk *audit.Break
			if _, err := audit.VerifyChains(ctx, s); !errors.As(err, &brk) || brk.Index != tc.at {
				t.Fatalf("verify: %v; want record %d (%s) named", err, tc.at, rs[tc.at].ID)
			}
		})
	}
}

// TestDecisionColumnRefusesOtherValues: the decision column takes 0
// (allow) and 1 (deny) only, on both engines (SQLite 0015, PostgreSQL
// 0018): an edit to any other number, to text that is no integer, to
// bytes or a real is refused by the database itself and changes nothing.
// (The text '1' is taken as the integer 1: a flip to deny, which the
// record's hash reports, as "decision flipped".)
func TestDecisionColumnRefusesOtherValues(t *testing.T) {
	for _, b := range compactBackends() {
		t.Run(b.name, func(t *testing.T) {
			s, raw := b.open(t)
			ctx := t.Context()
			rs := mixedRecords(t, 2)
			if err := s.AppendAudit(ctx, rs); err != nil {
				t.Fatal(err)
			}
			// PostgreSQL rounds a real to an integer before its check (0.5
			// stores 0, the same decision): a real that rounds to 2 there.
			fraction := map[string]float64{"sqlite": 0.5, "postgres": 2.5}[b.name]
			for _, v := range []any{int64(2), int64(-1), "deny", "allow", []byte{1}, fraction} {
				if _, err := raw.ExecContext(ctx, `UPDATE audit SET decision = $1 WHERE id = $2`, v, s.dialect.idArg(rs[0].ID)); err == nil {
					t.Errorf("decision %#v: stored", v)
				}
			}
			if n, err := audit.VerifyChains(ctx, s); n != 2 || err != nil {
				t.Fatalf("verify after the refused edits: %d, %v", n, err)
			}
		})
	}
}

// TestOddRecordsReadBackAsSealed: records at the edges of the canonical
// encoding and the compact body — timestamps in years below 1000 and above
// 9999, just before 1970 with nanoseconds, in another zone; context keys
// and values holding quotes, backslashes, a body phrase spelled out, the
// phrase mark's escape, U+FFFD and U+2028 — are stored, read back by id as
// the record sealed (byte for byte) and verify, on both engines.
func TestOddRecordsReadBackAsSealed(t *testing.T) {
	zone := time.FixedZone("odd", -(9*3600 + 30*60))
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 12, 6, 21, 0, 0, 500, zone),
		time.Date(10000, 1, 1, 0, 0, 0, 123456789, time.UTC),
	}
	contexts := []map[string]any{
		{`k"ey`: `v\"al\\`, `\`: `"`, "header.x": `","method":"GET","path":"`},
		{"\u0001": "\\u0001", "query.q": "\uFFFD\u2028\u2029", "n": 1e21, "neg": math.Copysign(0, -1)},
		{`","agent_`: []any{"tools/call", map[string]any{"b": "\x7f", "a": "<&>"}}, "": ""},
	}
	for _, b := range compactBackends() {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t)
			ctx := t.Context()
			rs := mixedRecords(t, len(times))
			for i := range rs {
				rs[i].Timestamp = times[i]
				rs[i].Context = contexts[i%len(contexts)]
			}
			resealed(t, rs)
			if err := s.AppendAudit(ctx, rs); err != nil {
				t.Fatal(err)
			}
			if n, err := audit.VerifyChains(ctx, s); n != int64(len(rs)) || err != nil {
				t.Fatalf("verify: %d, %v", n, err)
			}
			want := canonicals(t, rs)
			for i, r := range rs {
				got, ok, err := s.AuditRecord(ctx, r.ID)
				if err != nil || !ok || got.Unreadable != "" {
					t.Fatalf("record %d: %v %v %q", i, ok, err, got.Unreadable)
				}
				if g := canonicals(t, []audit.Record{got})[0]; g != want[i] || got.Hash != r.Hash {
					t.Errorf("record %d reads back as\n%s\nsealed\n%s", i, g, want[i])
				}
			}
		})
	}
}
