package engine_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// TestUpstreamEdit: the one rule every adapter applies to an allowed
// request (docs/enforcement.md): each identity header, steering header and
// the delegation header is either set by MeshGuard or removed — never left
// as the caller sent it, never both (Envoy orders the two as it likes) —
// and the headers set are exactly Decision.UpstreamHeaders.
func TestUpstreamEdit(t *testing.T) {
	m := newMesh(t, enginetest.Options{Mode: engine.ModeAudit})
	e := m.F.Engine
	hand := check(t, e, engine.Request{Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/x"})
	tests := []struct {
		name    string
		req     engine.Request
		removed []string // must be in remove, besides the steering headers
	}{
		{"hand-off mints a delegation", engine.Request{Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/x"}, nil},
		{"delegated call to no agent", engine.Request{Token: m.ResT, Delegation: hand.Delegation, Method: "GET", Host: "papers.example", Path: "/papers"},
			[]string{engine.HeaderDelegation}},
		{"unauthenticated, let through by audit mode", engine.Request{Method: "GET", Path: "/papers"},
			[]string{engine.HeaderAgentID, engine.HeaderAgentName, engine.HeaderTier, engine.HeaderDecisionID, engine.HeaderChain, engine.HeaderDelegation}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := check(t, e, tc.req)
			if !d.Allowed {
				t.Fatalf("not allowed: %+v", d)
			}
			set, remove := d.UpstreamEdit()
			if !slices.Equal(set, d.UpstreamHeaders()) {
				t.Fatalf("sets %v, UpstreamHeaders %v", set, d.UpstreamHeaders())
			}
			for _, name := range append(slices.Clone(engine.StrippedUpstreamHeaders), engine.HeaderDelegation) {
				if isSet, isRemoved := slices.Contains(names(set), name), slices.Contains(remove, name); isSet == isRemoved {
					t.Errorf("%s: set %v, removed %v", name, isSet, isRemoved)
				}
			}
			for _, name := range append([]string{engine.HeaderAction, engine.HeaderResource, engine.HeaderContext}, tc.removed...) {
				if !slices.Contains(remove, name) {
					t.Errorf("%s not removed: %v", name, remove)
				}
			}
			// StrippedFromCaller (the wasm filter's local allow builds the
			// upstream's headers with it) names, in any case, exactly what
			// UpstreamEdit removes or replaces of the caller's.
			for _, name := range append(names(set), "authorization", "traceparent", "x-meshguard-agent", "x-request-id") {
				want := slices.Contains(remove, name) || (slices.Contains(names(set), name) && name != engine.HeaderTraceparent)
				for _, spelt := range []string{name, strings.ToUpper(name)} {
					if got := engine.StrippedFromCaller(spelt); got != want {
						t.Errorf("StrippedFromCaller(%q) = %v, want %v (UpstreamEdit removes %v, sets %v)", spelt, got, want, remove, names(set))
					}
				}
			}
			for _, name := range remove {
				if !engine.StrippedFromCaller(name) {
					t.Errorf("StrippedFromCaller(%q) = false, but UpstreamEdit removes it", name)
				}
			}
		})
	}
}
