package engine_test

import (
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// TestUpstreamHeadersOfADecision: what an adapter sets on an allowed
// request (docs/enforcement.md, "Headers") with every part of the answer
// asked for: the agent's id, name and tier, the decision id and the chain,
// root first, comma-separated; the
// delegation token only when the target host belongs to an agent; and no
// identity at all for a request audit mode let through unauthenticated.
func TestUpstreamHeadersOfADecision(t *testing.T) {
	m := newMesh(t, enginetest.Options{Mode: engine.ModeAudit, Answer: engine.AnswerAll})
	e := m.F.Engine
	identity := []string{engine.HeaderAgentID, engine.HeaderAgentName, engine.HeaderTier, engine.HeaderDecisionID, engine.HeaderChain}

	// The orchestrator hands a task to the researcher: the researcher's
	// token goes with it.
	hand := check(t, e, engine.Request{Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/x"})
	if hand.Delegation == "" {
		t.Fatalf("no delegation token minted: %+v", hand)
	}
	want := []engine.Header{
		{Name: engine.HeaderAgentID, Value: m.Orch.ID}, {Name: engine.HeaderAgentName, Value: "orchestrator"},
		{Name: engine.HeaderTier, Value: "trusted"}, {Name: engine.HeaderDecisionID, Value: hand.ID},
		{Name: engine.HeaderChain, Value: m.Orch.ID}, {Name: engine.HeaderDelegation, Value: hand.Delegation},
	}
	if got := hand.UpstreamHeaders(); !slices.Equal(got[:min(len(got), len(want))], want) {
		t.Fatalf("hand-off: upstream headers %v, want %v", got, want)
	}

	// The researcher acts for the orchestrator on a host of no agent: the
	// chain, and no delegation header.
	acts := check(t, e, engine.Request{Token: m.ResT, Delegation: hand.Delegation, Method: "GET", Host: "papers.example", Path: "/papers"})
	got := acts.UpstreamHeaders()
	if slices.Contains(names(got), engine.HeaderDelegation) || !slices.Contains(got, engine.Header{Name: engine.HeaderChain, Value: m.Orch.ID + "," + m.Res.ID}) {
		t.Fatalf("delegated call: upstream headers %v", got)
	}

	// Audit mode lets a request without a credential through: it carries
	// no identity upstream.
	anon := check(t, e, engine.Request{Method: "GET", Path: "/papers"})
	if !anon.Allowed || anon.AgentID != "" {
		t.Fatalf("unauthenticated in audit mode: %+v", anon)
	}
	for _, h := range anon.UpstreamHeaders() {
		if slices.Contains(identity, h.Name) || h.Name == engine.HeaderDelegation {
			t.Fatalf("an unauthenticated request carries %s: %v", h.Name, anon.UpstreamHeaders())
		}
	}
}

// TestRetryAfterRoundsUp: a 429 tells the caller in whole seconds when to
// come back (docs/enforcement.md: retry-after, retry_after), rounded up so
// a caller that waits that long is not refused again, and never 0.
func TestRetryAfterRoundsUp(t *testing.T) {
	tests := []struct {
		after time.Duration
		want  int
	}{
		{0, 1},
		{time.Nanosecond, 1},
		{time.Second, 1},
		{time.Second + time.Nanosecond, 2},
		{1500 * time.Millisecond, 2},
		{59*time.Second + 750*time.Millisecond, 60},
	}
	for _, tc := range tests {
		t.Run(tc.after.String(), func(t *testing.T) {
			d := engine.Decision{Effect: "deny", Status: 429, Reason: engine.ReasonRateLimited, RetryAfter: tc.after}
			if got := d.ResponseHeaders(); !slices.Contains(got, engine.Header{Name: "retry-after", Value: strconv.Itoa(tc.want)}) {
				t.Fatalf("response headers %v, want retry-after %d", got, tc.want)
			}
			var body struct {
				RetryAfter int `json:"retry_after"`
			}
			if err := json.Unmarshal(d.DenyBody(), &body); err != nil || body.RetryAfter != tc.want {
				t.Fatalf("body %s (%v), want retry_after %d", d.DenyBody(), err, tc.want)
			}
		})
	}
	// A 429 that audit mode let through is no refusal: nothing to wait for.
	d := engine.Decision{Effect: "deny", Allowed: true, Status: 429, RetryAfter: time.Second, Mode: engine.ModeAudit}
	if h := d.ResponseHeaders(); slices.Contains(names(h), "retry-after") {
		t.Fatalf("audit mode: %v", h)
	}
}

func names(hs []engine.Header) []string {
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}
