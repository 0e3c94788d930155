package store

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store/pgtest"
)

// compactRecords are sealed records of every shape the engine writes: a
// tool call denied with a shadow answer, a delegated read, a write with an
// id the decision id does not follow from, a time with sub-microsecond
// nanoseconds and one without.
func compactRecords(t testing.TB, prev string, n int) []audit.Record {
	t.Helper()
	at := time.Date(2026, 11, 29, 17, 57, 37, 165412398, time.UTC)
	rs := make([]audit.Record, n)
	for i := range rs {
		r := audit.Record{ID: fmt.Sprintf("aud_01a2287480857309d0e6%04x", i), Timestamp: at.Add(time.Duration(i) * 1500 * time.Millisecond),
			TraceID: fmt.Sprintf("3792e9179db5df94934d3ed73791%04x", i), SpanID: "0411feac429ec27b", DecisionID: fmt.Sprintf("dec_01a2287480857309d0e6%04x", i),
			AgentID: fmt.Sprintf("agent_%d", i%3), AgentName: "mailer-0", TrustTier: "verified", Action: "read:docs", Resource: "/docs",
			Method: "GET", Path: "/docs", Host: "api.internal", Decision: "allow", Status: 200, Policy: "readers", Rule: "reads",
			Chain: []string{fmt.Sprintf("agent_%d", i%3)}, Source: "ext_authz-grpc", SourceAddress: "10.0.3.17", PolicyRevision: "r17",
			LatencyUs: 30, Mode: "enforce", Inputs: &audit.Inputs{Tags: []string{"mailer"}}}
		switch i % 4 {
		case 0:
			r.Action, r.Resource, r.Method, r.Path = "call:mail/send_email", "/mcp", "POST", "/mcp"
			r.Decision, r.Status, r.Reason, r.Rule = "deny", 403, "policy_denied", "external"
			r.Context = map[string]any{"arguments.to": "eve@evil.example", "n": 1.5, "nested": map[string]any{"shadow": map[string]any{"decision": "x"}}}
			r.Call = &audit.Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", JSONRPCID: "7"}
			r.Shadow = &audit.Shadow{Decision: "allow", Policy: "readers", Rule: "reads"}
		case 1:
			r.Chain = []string{"agent_planner", r.AgentID}
			r.DelegationDepth = 1
			r.Inputs.Chain = []audit.ChainMember{{Name: "planner", Tier: "trusted", Tags: []string{"planner"}}}
		case 2:
			r.Action, r.DecisionID, r.Proxy = "write:deploy", "dec_elsewhere", "egress"
			r.Timestamp = r.Timestamp.Truncate(time.Second)
			r.Context = map[string]any{"quote": "a \"shadow\" \u0001 \\ é", "header.x": ""}
		}
		if err := r.Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = r.Hash
		rs[i] = r
	}
	return rs
}

// compactBackend is a store under test and its raw database handle.
type compactBackend struct {
	name string
	open func(t *testing.T) (*db, *sql.DB)
}

func compactBackends() []compactBackend {
	return []compactBackend{
		{"sqlite", func(t *testing.T) (*db, *sql.DB) {
			path := t.TempDir() + "/mg.db"
			s, err := OpenSQLite(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			raw, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = raw.Close() })
			return &s.db, raw
		}},
		{"postgres", func(t *testing.T) (*db, *sql.DB) {
			u := pgtest.NewDatabase(t)
			s, err := OpenPostgres(t.Context(), u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			raw, err := sql.Open("pgx", u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = raw.Close() })
			return &s.db, raw
		}},
	}
}

// canonicals is each record's canonical encoding, re-encoded from its
// fields (what verification hashes).
func canonicals(t *testing.T, rs []audit.Record) []string {
	t.Helper()
	out := make([]string, len(rs))
	for i, r := range rs {
		r := r
		b, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	return out
}

// TestCompactRecordsReadBackTheSame: a record stored compact reads back as
// the record sealed (its canonical encoding byte for byte, both hashes),
// by every query, on both engines.
func TestCompactRecordsReadBackTheSame(t *testing.T) {
	for _, b := range compactBackends() {
		t.Run(b.name, func(t *testing.T) {
			s, _ := b.open(t)
			ctx := t.Context()
			rs := compactRecords(t, audit.GenesisHash, 12)
			if err := s.AppendAudit(ctx, rs); err != nil {
				t.Fatal(err)
			}
			if n, err := audit.VerifyChains(ctx, s); n != 12 || err != nil {
				t.Fatalf("verify: %d, %v", n, err)
			}
			want := canonicals(t, rs)
			for _, tc := range []struct {
				name string
				f    AuditFilter
				keep func(audit.Record) bool
			}{
				{"all", AuditFilter{}, func(audit.Record) bool { return true }},
				{"agent", AuditFilter{AgentID: "agent_1"}, func(r audit.Record) bool { return r.AgentID == "agent_1" }},
				{"deny", AuditFilter{Decision: "deny"}, func(r audit.Record) bool { return r.Decision == "deny" }},
				{"action prefix", AuditFilter{Action: "call:*"}, func(r audit.Record) bool { return r.Action == "call:mail/send_email" }},
				{"trace", AuditFilter{TraceID: rs[5].TraceID}, func(r audit.Record) bool { return r.TraceID == rs[5].TraceID }},
				{"shadow", AuditFilter{Shadow: true}, func(r audit.Record) bool { return r.Shadow != nil }},
				{"time", AuditFilter{From: rs[3].Timestamp, To: rs[7].Timestamp}, func(r audit.Record) bool {
					return !r.Timestamp.Before(rs[3].Timestamp) && r.Timestamp.Before(rs[7].Timestamp)
				}},
			} {
				page, err := s.QueryAudit(ctx, tc.f)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				var wantIDs, gotIDs []string
				for i := len(rs) - 1; i >= 0; i-- {
					if tc.keep(rs[i]) {
						wantIDs = append(wantIDs, rs[i].ID)
					}
				}
				got := canonicals(t, page.Records)
				for i, r := range page.Records {
					gotIDs = append(gotIDs, r.ID)
					j := slices.IndexFunc(rs, func(o audit.Record) bool { return o.ID == r.ID })
					if j < 0 || got[i] != want[j] || r.Hash != rs[j].Hash || r.PrevHash != rs[j].PrevHash || r.Unreadable != "" {
						t.Errorf("%s: record %s reads back as\n%s (%s)\nwant\n%s", tc.name, r.ID, got[i], r.Unreadable, want[max(j, 0)])
					}
				}
				if !slices.Equal(gotIDs, wantIDs) || len(wantIDs) == 0 {
					t.Errorf("%s: got %v, want %v", tc.name, gotIDs, wantIDs)
				}
			}
		})
	}
}

// TestCompactTamperingIsDetected: any edit to a stored row — a column, the
// compact record, a hash — or a deleted row breaks verification at that
// row, on both engines.
func TestCompactTamperingIsDetected(t *testing.T) {
	const target = 4 // its row is edited
	for _, b := range compactBackends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range []struct {
				name, sql string
				edit      func([]byte) []byte // of the record column, instead of sql
				at        int                 // where the break is
				only      string              // the one engine the edit applies to (a stored form's)
			}{
				{"agent edited", `UPDATE audit SET agent = agent + 1 WHERE id = $1`, nil, target, ""},
				{"agent unknown", `UPDATE audit SET agent = 99 WHERE id = $1`, nil, target, ""},
				// Every record of the agent names it: the first breaks.
				{"dictionary entry edited", `UPDATE audit_agents SET agent_id = 'agent_x' WHERE n = (SELECT agent FROM audit WHERE id = $1)`, nil, 1, ""},
				{"action edited", `UPDATE audit SET action = 'read:other' WHERE id = $1`, nil, target, ""},
				{"decision number edited", `UPDATE audit SET decision = 1 - decision WHERE id = $1`, nil, target, ""},
				{"reason edited", `UPDATE audit SET reason = 'edited' WHERE id = $1`, nil, target, ""},
				{"source edited", `UPDATE audit SET source = 'gateway' WHERE id = $1`, nil, target, ""},
				{"source number edited", `UPDATE audit SET source = 2 WHERE id = $1`, nil, target, "sqlite"},
				{"source number unknown", `UPDATE audit SET source = 99 WHERE id = $1`, nil, target, "sqlite"},
				{"status edited", `UPDATE audit SET status = 500 WHERE id = $1`, nil, target, ""},
				{"trace id edited", `UPDATE audit SET trace_id = 'ffff' WHERE id = $1`, nil, target, ""},
				{"trace id bytes edited", `UPDATE audit SET trace_id = zeroblob(16) WHERE id = $1`, nil, target, "sqlite"},
				{"trace id as its text upper-cased", `UPDATE audit SET trace_id = hex(trace_id) WHERE id = $1`, nil, target, "sqlite"},
				{"time edited", `UPDATE audit SET ts = ts + 1 WHERE id = $1`, nil, target, ""},
				{"id edited", `UPDATE audit SET id = 'aud_other' WHERE id = $1`, nil, target, ""},
				{"id bytes edited", `UPDATE audit SET id = zeroblob(12) WHERE id = $1`, nil, target, "sqlite"},
				// PostgreSQL's tagged forms (0018): tag 0 and the engine's
				// bytes, or tag 1 and a text.
				{"id bytes edited (tagged)", `UPDATE audit SET id = '\x00000000000000000000000000'::bytea WHERE id = $1`, nil, target, "postgres"},
				{"id as its text (tagged)", `UPDATE audit SET id = '\x01'::bytea || convert_to('aud_' || encode(substr(id, 2), 'hex'), 'UTF8') WHERE id = $1`, nil, target, "postgres"},
				{"id's tag unknown", `UPDATE audit SET id = '\x02'::bytea || substr(id, 2) WHERE id = $1`, nil, target, "postgres"},
				{"id's engine form a byte longer", `UPDATE audit SET id = id || '\x00'::bytea WHERE id = $1`, nil, target, "postgres"},
				{"trace id bytes edited (tagged)", `UPDATE audit SET trace_id = '\x00'::bytea || substr(trace_id, 2, 15) || '\x00'::bytea WHERE id = $1`, nil, target, "postgres"},
				{"trace id as its text (tagged)", `UPDATE audit SET trace_id = '\x01'::bytea || convert_to(encode(substr(trace_id, 2), 'hex'), 'UTF8') WHERE id = $1`, nil, target, "postgres"},
				{"trace id's engine form a byte shorter", `UPDATE audit SET trace_id = substr(trace_id, 1, 16) WHERE id = $1`, nil, target, "postgres"},
				{"source number edited (tagged)", `UPDATE audit SET source = '\x0002'::bytea WHERE id = $1`, nil, target, "postgres"},
				{"source number unknown (tagged)", `UPDATE audit SET source = '\x0063'::bytea WHERE id = $1`, nil, target, "postgres"},
				{"source as its name (tagged)", `UPDATE audit SET source = '\x01'::bytea || convert_to('ext_authz-grpc', 'UTF8') WHERE id = $1`, nil, target, "postgres"},
				{"source tag missing", `UPDATE audit SET source = ''::bytea WHERE id = $1`, nil, target, "postgres"},
				{"shadow flag edited", `UPDATE audit SET shadow = NOT shadow WHERE id = $1`, nil, target, ""},
				{"hash edited", `UPDATE audit SET hash = prev_hash WHERE id = $1`, nil, target, ""},
				{"prev hash edited", `UPDATE audit SET prev_hash = hash WHERE id = $1`, nil, target, ""},
				{"row deleted", `DELETE FROM audit WHERE id = $1`, nil, target, ""},
				// The rows after a batch's first store no prev_hash: they
				// link to the row before them, so moving one breaks a link.
				{"row moved to the end", `UPDATE audit SET seq = DEFAULT WHERE id = $1`, nil, target, ""},
				{"link stored where it was left out", `UPDATE audit SET prev_hash = (SELECT hash FROM audit p WHERE p.seq < audit.seq ORDER BY p.seq DESC LIMIT 1 OFFSET 1) WHERE id = $1`, nil, target, ""},
				{"agent name edited in the record", "", func(b []byte) []byte { return bytes.Replace(b, []byte("mailer-0"), []byte("mailer-9"), 1) }, target, ""},
				{"record truncated", "", func(b []byte) []byte { return b[:len(b)-3] }, target, ""},
				{"unknown phrase", "", func(b []byte) []byte { return append(b, phraseMark, 255) }, target, ""},
				{"flags edited", "", func(b []byte) []byte { b[1] ^= flagDecisionID; return b }, target, ""},
			} {
				if tc.only != "" && tc.only != b.name {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					s, raw := b.open(t)
					ctx := t.Context()
					rs := compactRecords(t, audit.GenesisHash, 8)
					if err := s.AppendAudit(ctx, rs); err != nil {
						t.Fatal(err)
					}
					// A page read first: what a page keeps in memory (agent
					// ids) must not hide an edit from verification.
					if _, err := s.QueryAudit(ctx, AuditFilter{}); err != nil {
						t.Fatal(err)
					}
					q := tc.sql
					if s.dialect.name == "sqlite" {
						q = replaceAll(q, "NOT shadow", "1 - shadow")
						q = replaceAll(q, "seq = DEFAULT", "seq = (SELECT MAX(seq) + 1 FROM audit)")
					}
					var res sql.Result
					var err error
					if tc.edit != nil {
						var body []byte
						if err := raw.QueryRowContext(ctx, `SELECT record FROM audit WHERE id = $1`, s.dialect.idArg(rs[target].ID)).Scan(&body); err != nil {
							t.Fatal(err)
						}
						edited := tc.edit(slices.Clone(body))
						if bytes.Equal(edited, body) {
							t.Fatal("the edit changes nothing")
						}
						res, err = raw.ExecContext(ctx, `UPDATE audit SET record = $1 WHERE id = $2`, edited, s.dialect.idArg(rs[target].ID))
					} else {
						res, err = raw.ExecContext(ctx, q, s.dialect.idArg(rs[target].ID))
					}
					if err != nil {
						t.Fatal(err)
					}
					if n, err := res.RowsAffected(); n != 1 || err != nil {
						t.Fatalf("edit changed %d rows (%v)", n, err)
					}
					var brk *audit.Break
					if _, err := audit.VerifyChains(ctx, s); !errors.As(err, &brk) || brk.Index != tc.at {
						t.Fatalf("verify after the edit: %v; want a break at record %d", err, tc.at)
					}
				})
			}
		})
	}
}

func replaceAll(s, old, new string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte(old), []byte(new)))
}

// FuzzDecodeAuditBody: no stored bytes make the decoder panic, and what
// decodes from a v1 body re-encodes to the same body.
func FuzzDecodeAuditBody(f *testing.F) {
	for _, r := range compactRecords(f, audit.GenesisHash, 4) {
		canon, _ := r.Canonical()
		body, err := encodeAuditBody(&r, canon)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body, r.ID, r.Timestamp.UnixMicro())
		f.Add(canon, r.ID, r.Timestamp.UnixMicro())
	}
	f.Fuzz(func(t *testing.T, body []byte, id string, ts int64) {
		c := auditColumns{id: id, agentID: "agent_a", action: "read:x", decision: "allow", traceID: "t", status: 200, ts: ts}
		r := decodeAuditBody(body, c)
		if r.Unreadable != "" || len(body) == 0 || body[0] != bodyV1 {
			return
		}
		r.Shadow = nil // the column says none; a body with one is Unreadable
		canon, err := r.Canonical()
		if err != nil {
			return
		}
		again, err := encodeAuditBody(&r, canon)
		if err != nil {
			t.Fatalf("decoded, then refused: %v", err)
		}
		back := decodeAuditBody(again, c)
		if got, err := back.Canonical(); err != nil || !bytes.Equal(got, canon) {
			t.Fatalf("round trip:\n%s\n%s (%v)", got, canon, err)
		}
	})
}

// TestLinksLeftOutReadBack: a batch's rows after its first store no
// prev_hash (it is the hash of the row before), and read back with it —
// from the row before, or, once retention deleted that row, from the
// anchor it left — so the trail verifies, on both engines.
func TestLinksLeftOutReadBack(t *testing.T) {
	for _, b := range compactBackends() {
		t.Run(b.name, func(t *testing.T) {
			s, raw := b.open(t)
			ctx := t.Context()
			rs := compactRecords(t, audit.GenesisHash, 8)
			if err := s.AppendAudit(ctx, rs[:6]); err != nil {
				t.Fatal(err)
			}
			if err := s.AppendAudit(ctx, rs[6:]); err != nil {
				t.Fatal(err)
			}
			for i, r := range rs {
				var n int
				if err := raw.QueryRowContext(ctx, `SELECT length(prev_hash) FROM audit WHERE id = $1`, s.dialect.idArg(r.ID)).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if want := map[bool]int{true: 32, false: 0}[i == 0 || i == 6]; n != want {
					t.Errorf("record %d stores a prev_hash of %d bytes, want %d", i, n, want)
				}
			}
			check := func(from int) {
				t.Helper()
				if _, err := audit.VerifyChains(ctx, s); err != nil {
					t.Fatalf("verify: %v", err)
				}
				page, err := s.QueryAudit(ctx, AuditFilter{AgentID: "agent_1"})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, r := range page.Records {
					got = append(got, r.ID)
					j := slices.IndexFunc(rs, func(o audit.Record) bool { return o.ID == r.ID })
					if r.PrevHash != rs[j].PrevHash || r.Hash != rs[j].Hash {
						t.Errorf("record %d reads back linked to %.12s…, want %.12s…", j, r.PrevHash, rs[j].PrevHash)
					}
				}
				var want []string
				for i := len(rs) - 1; i >= from; i-- {
					if rs[i].AgentID == "agent_1" {
						want = append(want, rs[i].ID)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("agent_1's records: got %v, want %v", got, want)
				}
				// Unfiltered pages link rows to the page's own rows, and
				// its oldest through a lookup; a record by id looks up.
				for _, limit := range []int{1, 2, 3, 100} {
					n := 0
					for f := (AuditFilter{Limit: limit}); ; {
						page, err := s.QueryAudit(ctx, f)
						if err != nil {
							t.Fatal(err)
						}
						for _, r := range page.Records {
							j := len(rs) - 1 - n
							n++
							if r.ID != rs[j].ID || r.PrevHash != rs[j].PrevHash || r.Hash != rs[j].Hash {
								t.Errorf("pages of %d: record %d reads back as %s linked to %.12s…, want %s linked to %.12s…", limit, j, r.ID, r.PrevHash, rs[j].ID, rs[j].PrevHash)
							}
						}
						if page.Next == "" {
							break
						}
						f.Before = page.Next
					}
					if n != len(rs)-from {
						t.Errorf("pages of %d: %d records, want %d", limit, n, len(rs)-from)
					}
				}
				for j := from; j < len(rs); j++ {
					r, ok, err := s.AuditRecord(ctx, rs[j].ID)
					if err != nil || !ok || r.PrevHash != rs[j].PrevHash || r.AgentID != rs[j].AgentID {
						t.Errorf("record %d by id: %v %v, linked to %.12s…, agent %q; want %.12s…, %q", j, ok, err, r.PrevHash, r.AgentID, rs[j].PrevHash, rs[j].AgentID)
					}
				}
			}
			check(0)
			// Cut inside the first batch: record 3 is then the first left,
			// and its link is the anchor's.
			if n, err := s.PruneAudit(ctx, rs[3].Timestamp); err != nil || n != 3 {
				t.Fatalf("prune: %d, %v; want 3 deleted", n, err)
			}
			check(3)
		})
	}
}
