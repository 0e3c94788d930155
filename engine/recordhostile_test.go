package engine_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// teeRecorder keeps each record it writes, in order.
type teeRecorder struct {
	w    *audit.Writer
	recs []audit.Record
}

func (t *teeRecorder) Write(ctx context.Context, r audit.Record) error {
	t.recs = append(t.recs, r)
	return t.w.Write(ctx, r)
}

// TestHostileRequestValuesStayOutOfTheColumns: what a caller chooses of a
// request — the path, the traceparent, POST /v1/check's action and
// context — holding a NUL, invalid UTF-8, a lone surrogate (as bytes, as
// its escape), the phrase mark, the engine's id or trace id forms or 8 KB
// of characters JSON escapes, is decided (a refusal is a 400 denial,
// never an error or an allow the policies did not give) and recorded with
// every column (id, trace id, agent, action, reason, source) valid UTF-8
// without control characters; so SQLite and PostgreSQL both store every
// record in the chain, none dead-lettered, and the trail verifies.
func TestHostileRequestValuesStayOutOfTheColumns(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	ctx := t.Context()
	w, err := audit.NewWriter(ctx, m.F.Store, audit.WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tee := &teeRecorder{w: w}
	e, err := engine.New(engine.Config{Tokens: m.F.Cached, Delegations: m.F.Cached, Delegator: m.F.Issuer,
		Agents: m.F.Agents, Policies: m.F.Policies, Limiter: m.F.Limiter, Recorder: tee})
	if err != nil {
		t.Fatal(err)
	}
	const auditID, traceID = "aud_0123456789abcdef01234567", "4bf92f3577b34da6a3ce929d0e0e4736"
	escapes := strings.Repeat(`\"`, 4096)
	api := func(action string, ctx map[string]any) engine.Request {
		return engine.Request{Source: engine.SourceAPI, Token: m.OrchT, Method: "POST", Path: "/v1/check",
			Action: action, Resource: "/research/x", Context: ctx}
	}
	traced := func(tp string) engine.Request {
		r := engine.Request{Source: engine.SourceGateway, Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/x"}
		r.SetTraceparent(tp)
		return r
	}
	for _, tc := range []struct {
		name  string
		r     engine.Request
		allow bool // the policies allow it, hostile bytes kept out of the columns
	}{
		{"action with a NUL", api("write:research/x\x00", nil), false},
		{"action not UTF-8", api("write:research/\xff", nil), false},
		{"action with a lone surrogate's bytes", api("write:research/\xed\xa0\x80", nil), false},
		{"action with the phrase mark", api("write:research/\x01\x05", nil), false},
		{"action of 8 KB of escapes", api("write:"+escapes, nil), false},
		{"action an audit id", api(auditID, nil), false},
		{"action naming a trace id", api("write:"+traceID, nil), true},
		{"action with a surrogate escape as text", api(`write:research/\ud800`, nil), true},
		{"context values", api("write:research/x", map[string]any{"a": "\x00", "b": "\xff\xed\xa0\x80", "c": "\x01\x05",
			"d": `\ud800`, "e": auditID, "f": traceID, "g": escapes[:2048]}), true},
		{"context of 8 KB of escapes", api("write:research/x", map[string]any{"g": escapes}), false},
		{"context keys", api("write:research/x", map[string]any{"\x00": 1, "\xff": 2, "\x01\x05": 3, `\ud800`: 4}), true},
		{"path with an escaped NUL", engine.Request{Source: engine.SourceGateway, Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/%00"}, false},
		{"path with an escaped invalid byte", engine.Request{Source: engine.SourceGateway, Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/%FF"}, true},
		{"path with raw hostile bytes", engine.Request{Source: engine.SourceGateway, Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/\x00\xff\x01\x05"}, false},
		{"path of escapes", engine.Request{Source: engine.SourceGateway, Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/" + strings.Repeat("%5C", 2000)}, false},
		{"traceparent with an audit id", traced("00-" + auditID + "0000-00f067aa0ba902b7-01"), true},
		{"traceparent with a NUL", traced("00-4bf92f3577b34da6a3ce929d0e0e47\x0036-00f067aa0ba902b7-01"), true},
		{"traceparent not UTF-8", traced("00-4bf92f3577b34da6a3ce929d0e0e47\xff6-00f067aa0ba902b7-01"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(tee.recs)
			d, err := e.Check(ctx, &tc.r)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if d.Allowed != tc.allow || (!d.Allowed && d.Status != 400 && d.Status != 403) {
				t.Errorf("allowed %v, status %d, reason %s (%.100s); want allowed %v", d.Allowed, d.Status, d.Reason, d.Message, tc.allow)
			}
			if len(tee.recs) != n+1 {
				t.Fatalf("%d records, want 1", len(tee.recs)-n)
			}
			r := tee.recs[n]
			for name, v := range map[string]string{"id": r.ID, "traceId": r.TraceID, "agentId": r.AgentID, "action": r.Action,
				"reason": r.Reason, "source": r.Source} {
				if !utf8.ValidString(v) || edge.HasControl(v) {
					t.Errorf("recorded %s %q", name, v)
				}
			}
			if !strings.HasPrefix(r.ID, "aud_") || !edge.ValidTraceID(r.TraceID) {
				t.Errorf("recorded id %q, trace id %q", r.ID, r.TraceID)
			}
		})
	}
	if n, err := audit.VerifyChains(ctx, m.F.Store); n != int64(len(tee.recs)) || err != nil {
		t.Fatalf("SQLite: verify: %d, %v; want %d records", n, err, len(tee.recs))
	}
	// The same records on PostgreSQL, in one batch.
	pg, err := store.OpenPostgres(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	pw, err := audit.NewWriter(ctx, pg, audit.WriterConfig{FlushInterval: 3600e9, MaxLag: 7200e9})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range tee.recs {
		r.Hash, r.PrevHash = "", ""
		if err := pw.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// A dead letter would fail this too (audit.ErrDeadLettered).
	if n, err := audit.VerifyChains(ctx, pg); n != int64(len(tee.recs)) || err != nil {
		t.Fatalf("PostgreSQL: verify: %d, %v; want %d records", n, err, len(tee.recs))
	}
}
