package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/meshguard/meshguard/audit"
)

// hostileValues are strings a caller might get into an audit record: a
// NUL, invalid UTF-8 (a stray byte; a lone surrogate as CESU-8 bytes), a
// lone surrogate's JSON escape as text, the engine's id and trace id forms
// where another value is expected, 8 KB of characters JSON escapes, the
// body's phrase mark followed by a phrase's index.
var hostileValues = []struct{ name, v string }{
	{"NUL", "x:a\x00b"},
	{"invalid UTF-8", "x:a\xffb"},
	{"lone surrogate bytes", "x:a\xed\xa0\x80b"},
	{"lone surrogate escape as text", `x:a\ud800b`},
	{"engine id form", "aud_0123456789abcdef01234567"},
	{"engine trace id form", "4bf92f3577b34da6a3ce929d0e0e4736"},
	{"8 KB of escapes", "x:" + strings.Repeat(`\"`, 4096)},
	{"phrase mark", "x:a\x01\x05b"},
}

// hostileFields are where a hostile value goes: each column the row holds
// as text or in a tagged form, and members of the compact body.
var hostileFields = []struct {
	name string
	set  func(r *audit.Record, v string)
}{
	{"id", func(r *audit.Record, v string) { r.ID = v }},
	{"traceId", func(r *audit.Record, v string) { r.TraceID = v }},
	{"agentId", func(r *audit.Record, v string) { r.AgentID = v }},
	{"action", func(r *audit.Record, v string) { r.Action = v }},
	{"reason", func(r *audit.Record, v string) { r.Reason = v }},
	{"source", func(r *audit.Record, v string) { r.Source = v }},
	{"path", func(r *audit.Record, v string) { r.Path = v }},
	{"context value", func(r *audit.Record, v string) { r.Context = map[string]any{"header.x": v} }},
	{"context key", func(r *audit.Record, v string) { r.Context = map[string]any{v: "v"} }},
	{"call name", func(r *audit.Record, v string) {
		r.Call = &audit.Call{Protocol: "mcp", Method: "tools/call", Name: v, JSONRPCID: "1"}
	}},
}

// columnsRefuse says whether a store must refuse a record holding v in
// field as data (so the writer dead-letters it): a column's text that is
// not UTF-8 (the canonical encoding writes U+FFFD for it, so the column
// could not read back as hashed), and a NUL in a column PostgreSQL keeps
// as text (action, reason, the agent dictionary's).
func columnsRefuse(engine, field, v string) bool {
	switch field {
	case "id", "traceId", "agentId", "action", "reason", "source":
	default:
		return false
	}
	if !utf8.ValidString(v) {
		return true
	}
	return engine == "postgres" && strings.IndexByte(v, 0) >= 0 &&
		(field == "agentId" || field == "action" || field == "reason")
}

// TestHostileValuesInTheTrail: a record holding a hostile value in any
// column or body member, written through a batching audit.Writer between
// two ordinary records of the same batch, on both engines, is either
// stored — read back by id as the record sealed, byte for byte, and
// verified — or, when the store cannot keep it as it is, dead-lettered
// with its record; never stored as another record, never lost, and never
// the cause of its neighbours' loss, delay past Close or dead letter.
func TestHostileValuesInTheTrail(t *testing.T) {
	modes := []struct {
		name string
		cfg  audit.WriterConfig
	}{
		// One batch: nothing is flushed before Close.
		{"batched", audit.WriterConfig{FlushInterval: time.Hour, MaxLag: 2 * time.Hour, RetryBackoff: time.Millisecond, MaxBackoff: time.Millisecond}},
		{"sync", audit.WriterConfig{}}, // AUDIT_FLUSH_MS=0
	}
	for _, b := range compactBackends() {
		for _, m := range modes {
			for _, f := range hostileFields {
				for _, hv := range hostileValues {
					t.Run(b.name+"/"+m.name+"/"+f.name+"/"+hv.name, func(t *testing.T) {
						t.Parallel()
						s, _ := b.open(t)
						writeHostile(t, s, m.cfg, func(r *audit.Record) { f.set(r, hv.v) }, columnsRefuse(b.name, f.name, hv.v))
					})
				}
			}
		}
	}
}

// writeHostile writes three records through a writer configured by cfg,
// the second changed by set, and checks what TestHostileValuesInTheTrail
// says: refused tells whether the store must dead-letter that record.
func writeHostile(t *testing.T, s *db, cfg audit.WriterConfig, set func(*audit.Record), refused bool) {
	t.Helper()
	ctx := t.Context()
	rs := compactRecords(t, audit.GenesisHash, 3)
	set(&rs[1])
	want := make([]string, len(rs))
	for i := range rs {
		// Sealed again: the canonical encoding is cached.
		if err := rs[i].Seal(audit.GenesisHash); err != nil {
			t.Fatal(err)
		}
		c, err := rs[i].Canonical()
		if err != nil {
			t.Fatal(err)
		}
		want[i] = string(c)
	}
	w, err := audit.NewWriter(ctx, s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rs {
		if err := w.Write(ctx, rs[i]); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := w.Close(cctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	inChain := int64(0)
	for i := range rs {
		got, ok, err := s.AuditRecord(ctx, rs[i].ID)
		switch {
		case err != nil:
			t.Fatalf("record %d: %v", i, err)
		case i == 1 && refused && ok:
			t.Errorf("the hostile record is stored (unreadable: %q); want it dead-lettered", got.Unreadable)
		case i == 1 && refused:
			continue
		case !ok || got.Unreadable != "":
			t.Errorf("record %d: found %v, unreadable %q", i, ok, got.Unreadable)
			continue
		}
		inChain++
		if g := canonicals(t, []audit.Record{got})[0]; g != want[i] {
			t.Errorf("record %d reads back as\n%.300q\nsealed\n%.300q", i, g, want[i])
		}
	}
	p, err := s.AuditDeadLetters(ctx, MaxDeadLetterPage, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case refused && len(p.DeadLetters) != 1:
		t.Errorf("%d dead letters, want the hostile record's", len(p.DeadLetters))
	case refused && p.DeadLetters[0].Record != want[1] && !p.DeadLetters[0].Escaped:
		t.Errorf("dead letter's record\n%.300q\nwant\n%.300q", p.DeadLetters[0].Record, want[1])
	case !refused && len(p.DeadLetters) != 0:
		t.Errorf("dead letters: %.300v", p.DeadLetters)
	}
	v, err := audit.VerifyChains(ctx, s)
	if v != inChain || (err != nil && !(refused && errors.Is(err, audit.ErrDeadLettered))) {
		t.Errorf("verify: %d, %v; want %d records", v, err, inChain)
	}
}
