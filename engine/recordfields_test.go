package engine_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// recordingEngine is the mesh's engine with a recorder that keeps the last
// audit record.
func recordingEngine(t *testing.T, m *mesh) (*engine.Engine, *audit.Record) {
	t.Helper()
	var rec audit.Record
	e, err := engine.New(engine.Config{Tokens: m.F.Cached, Delegations: m.F.Cached, Delegator: m.F.Issuer,
		Agents: m.F.Agents, Policies: m.F.Policies, Limiter: m.F.Limiter, Recorder: recorderFunc(func(r audit.Record) { rec = r })})
	if err != nil {
		t.Fatal(err)
	}
	return e, &rec
}

// TestRecordedRequestFieldsAreCutExactly: the audit record keeps a
// request's method, host and path as sent when they are within the
// engine's bounds (a path of exactly 8 KiB included), and otherwise cut
// to exactly the bound, ending in "…", with control characters replaced —
// and only those: a space is kept.
func TestRecordedRequestFieldsAreCutExactly(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	e, rec := recordingEngine(t, m)
	atLimit := "/" + strings.Repeat("a", engine.MaxPathLen-1)
	over := "/" + strings.Repeat("b", engine.MaxPathLen+100)
	// Two-byte runes after an odd number of bytes: the last that would
	// straddle the bound is dropped whole.
	runes := "/x" + strings.Repeat("é", engine.MaxPathLen)
	tests := []struct {
		name, path, want string
	}{
		{"a path of exactly the bound, kept whole", atLimit, atLimit},
		{"a longer path, cut to the bound", over, over[:engine.MaxPathLen-len("…")] + "…"},
		{"two-byte runes, cut between them", runes, runes[:engine.MaxPathLen-len("…")-1] + "…"},
		{"a control character replaced, a space kept", "/a b\x01c", "/a b\uFFFDc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.Check(context.Background(), &engine.Request{Token: m.MailT, Method: "GET", Path: tc.path}); err != nil {
				t.Fatal(err)
			}
			if rec.Path != tc.want {
				t.Fatalf("recorded path of %d bytes ending %q, want %d bytes ending %q", len(rec.Path), tail(rec.Path), len(tc.want), tail(tc.want))
			}
			if len(rec.Path) > engine.MaxPathLen || !utf8.ValidString(rec.Path) {
				t.Fatalf("recorded path of %d bytes, valid UTF-8 %t", len(rec.Path), utf8.ValidString(rec.Path))
			}
		})
	}
}

func tail(s string) string { return s[max(0, len(s)-8):] }

// TestRecordedDelegationDepth: a record's delegationDepth is the chain's
// hops (docs/audit.md): 0 for an agent acting on its own account, 1 for a
// chain of two, 2 for a chain of three.
func TestRecordedDelegationDepth(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	e, rec := recordingEngine(t, m)
	ctx := context.Background()
	decide := func(r engine.Request) engine.Decision {
		t.Helper()
		d, err := e.Check(ctx, &r)
		if err != nil || !d.Allowed {
			t.Fatalf("%+v: %v", d, err)
		}
		return d
	}
	toRes := decide(engine.Request{Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/x"})
	if rec.DelegationDepth != 0 || len(rec.Chain) != 1 {
		t.Fatalf("own account: depth %d, chain %v", rec.DelegationDepth, rec.Chain)
	}
	toMail := decide(engine.Request{Token: m.ResT, Delegation: toRes.Delegation, Method: "POST", Host: "emailer.mesh", Path: "/email?to=a@example.com"})
	if rec.DelegationDepth != 1 || len(rec.Chain) != 2 {
		t.Fatalf("chain of two: depth %d, chain %v", rec.DelegationDepth, rec.Chain)
	}
	decide(engine.Request{Token: m.MailT, Delegation: toMail.Delegation, Method: "POST", Path: "/email?to=a@example.com"})
	if rec.DelegationDepth != 2 || len(rec.Chain) != 3 {
		t.Fatalf("chain of three: depth %d, chain %v", rec.DelegationDepth, rec.Chain)
	}
}
