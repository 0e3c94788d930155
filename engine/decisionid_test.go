package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// TestDecisionIDsBeginWithTheirMilliseconds: "the first 12 hex digits
// [of a decision id] are the decision's Unix milliseconds, so ids sort by
// time" (docs/audit.md), and the audit record's id is the decision id's
// with the audit prefix. The audit ids MeshGuard makes for records it
// stores on another's behalf (NewAuditID) follow the same rule, and so do
// the first 12 of a trace id the engine makes.
func TestDecisionIDsBeginWithTheirMilliseconds(t *testing.T) {
	// Every byte of the millisecond count differs from its neighbours, so
	// a byte taken from the wrong place shows.
	now := time.UnixMilli(0x0102_0304_0506).UTC()
	m := newMesh(t, enginetest.Options{Now: func() time.Time { return now }})
	want := fmt.Sprintf("%012x", now.UnixMilli())
	d := check(t, m.F.Engine, engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts"})
	if len(d.ID) != len("dec_")+24 || d.ID[:4] != "dec_" || d.ID[4:16] != want {
		t.Fatalf("decision id %q, want dec_%s followed by 12 random hex digits", d.ID, want)
	}
	// A trace id the engine makes (the request carried none) starts the
	// same way, so the audit trail's trace index takes records in order
	// instead of a page of its own each; 80 random bits stay, the last 8
	// bytes (what a trace-id ratio sampler reads) among them.
	if len(d.TraceID) != 32 || d.TraceID[:12] != want {
		t.Fatalf("trace id %q, want %s followed by 20 random hex digits", d.TraceID, want)
	}
	if r := engine.Refusal(&engine.Request{}, 429, "rate_limited", "slow down", now); len(r.TraceID) != 32 || r.TraceID[:12] != want {
		t.Fatalf("a refusal's trace id %q, want %s…", r.TraceID, want)
	}
	sent := "4bf92f3577b34da6a3ce929d0e0e4736"
	if d := check(t, m.F.Engine, engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts", TraceID: sent}); d.TraceID != sent {
		t.Fatalf("trace id %q, want the request's %s", d.TraceID, sent)
	}
	if id := engine.NewAuditID(now); len(id) != len("aud_")+24 || id[:16] != "aud_"+want {
		t.Fatalf("audit id %q, want aud_%s…", id, want)
	}
	later := engine.NewAuditID(now.Add(time.Millisecond))
	if earlier := engine.NewAuditID(now); later <= earlier {
		t.Fatalf("%q (a millisecond later) does not sort after %q", later, earlier)
	}
}

// TestIDsComeFromTheConfiguredSource: the engine takes the random part of
// every id it makes (decision, trace and span ids, of a Check and of a
// Reissue) from Config.Random when one is given, so the wasm filter can
// read crypto/rand in bulk (ids.go).
func TestIDsComeFromTheConfiguredSource(t *testing.T) {
	var calls int
	random := func() (b [16]byte) {
		calls++
		for i := range b {
			b[i] = 0xab
		}
		return b
	}
	m := newMesh(t, enginetest.Options{Random: random})
	d := check(t, m.F.Engine, engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts"})
	re, err := m.F.Engine.Reissue(context.Background(), &engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts"}, &d)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, id, want string }{
		{"decision id", d.ID[16:], strings.Repeat("ab", 6)},
		{"trace id", d.TraceID[12:], strings.Repeat("ab", 10)},
		{"span id", d.SpanID, strings.Repeat("ab", 8)},
		{"reissued decision id", re.ID[16:], strings.Repeat("ab", 6)},
		{"reissued trace id", re.TraceID[12:], strings.Repeat("ab", 10)},
		{"reissued span id", re.SpanID, strings.Repeat("ab", 8)},
	} {
		if tc.id != tc.want {
			t.Errorf("%s %q, want %q from the configured source", tc.name, tc.id, tc.want)
		}
	}
	if calls != 6 {
		t.Errorf("the source was read %d times for two decisions' three ids each, want 6", calls)
	}
}
