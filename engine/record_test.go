package engine_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

type failingRecorder struct{}

func (failingRecorder) Write(context.Context, audit.Record) error { return errors.New("disk full") }

// TestEveryDecisionIsRecorded: allows, denials and 401s each leave one
// record in the chain, with the decision's fields, and a decision that
// cannot be recorded is not given.
func TestEveryDecisionIsRecorded(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	ctx := context.Background()
	w, err := audit.NewWriter(ctx, m.F.Store, audit.WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Config{Tokens: m.F.Cached, Delegations: m.F.Cached, Delegator: m.F.Issuer,
		Agents: m.F.Agents, Policies: m.F.Policies, Limiter: m.F.Limiter, Recorder: w})
	if err != nil {
		t.Fatal(err)
	}
	allow := check(t, e, engine.Request{Source: engine.SourceGateway, Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/x?other=1&to=a@example.com",
		SourceAddress: "10.0.0.7"})
	deny := check(t, e, engine.Request{Token: m.MailT, Method: "DELETE", Path: "/contacts/1"})
	unauth := check(t, e, engine.Request{Method: "GET", Path: "/x"})

	var got []audit.Record
	v := audit.NewVerifier(audit.GenesisHash)
	if err := m.F.Store.ScanAudit(ctx, func(r audit.Record) error { got = append(got, r); return v.Next(&r) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d records, want 3", len(got))
	}
	r := got[0]
	if r.DecisionID != allow.ID || r.Decision != "allow" || r.Status != 200 || r.AgentID != m.Orch.ID || r.TrustTier != "trusted" ||
		r.Action != "write:research/x" || r.Source != "gateway" || r.SourceAddress != "10.0.0.7" || r.TraceID != allow.TraceID ||
		r.PolicyRevision == "" || r.Host != "researcher.mesh" || !reflect.DeepEqual(r.Context, map[string]any{"query.to": "a@example.com"}) || r.Mode != "enforce" {
		t.Fatalf("allow record %+v", r)
	}
	if got[1].DecisionID != deny.ID || got[1].Decision != "deny" || got[1].Status != 403 || got[1].Reason != deny.Reason {
		t.Fatalf("deny record %+v", got[1])
	}
	if got[2].DecisionID != unauth.ID || got[2].Status != 401 || got[2].AgentID != "" || got[2].TrustTier != "" {
		t.Fatalf("401 record %+v", got[2])
	}

	failing, err := engine.New(engine.Config{Tokens: m.F.Cached, Delegations: m.F.Cached, Delegator: m.F.Issuer,
		Agents: m.F.Agents, Policies: m.F.Policies, Limiter: m.F.Limiter, Recorder: failingRecorder{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := failing.Check(ctx, &engine.Request{Token: m.OrchT, Method: "GET", Path: "/x"}); !errors.Is(err, engine.ErrInternal) {
		t.Fatalf("unrecordable decision: %v", err)
	}
}

// TestRefusedInputIsRecordedSafely: a request refused for an oversized
// path, a NUL or bytes that are not UTF-8 is still recorded, with those
// fields cut to the bounds and cleaned, so no store refuses the record.
func TestRefusedInputIsRecordedSafely(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	ctx := context.Background()
	var rec audit.Record
	e, err := engine.New(engine.Config{Tokens: m.F.Cached, Delegations: m.F.Cached, Delegator: m.F.Issuer,
		Agents: m.F.Agents, Policies: m.F.Policies, Limiter: m.F.Limiter, Recorder: recorderFunc(func(r audit.Record) { rec = r })})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []engine.Request{
		{Method: "GET", Host: "docs.mesh", Path: "/" + strings.Repeat("a", engine.MaxPathLen+100)},
		{Method: "GET\x00", Host: "docs\x7f.mesh", Path: "/a\x00b\xff"},
	} {
		d, err := e.Check(ctx, &r)
		if err != nil || d.Status != 400 {
			t.Fatalf("%d %v", d.Status, err)
		}
		for name, v := range map[string]string{"method": rec.Method, "host": rec.Host, "path": rec.Path} {
			if len(v) > engine.MaxPathLen || !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\x7f") {
				t.Errorf("recorded %s %q", name, v)
			}
		}
	}
}

type recorderFunc func(audit.Record)

func (f recorderFunc) Write(_ context.Context, r audit.Record) error { f(r); return nil }
