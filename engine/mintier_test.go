package engine_test

import (
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/trust"
)

// TestMinTierAdmitsItsOwnTier: a route's minimum tier (the catalogue's
// minTier, docs/enforcement.md) admits agents "of tier X and above": an
// agent exactly at the minimum is decided by its policies, one tier below
// is a 403 tier_below_minimum.
func TestMinTierAdmitsItsOwnTier(t *testing.T) {
	m := newMesh(t, enginetest.Options{}) // the emailer is verified
	tests := []struct {
		min    trust.Tier
		status int
		reason string
	}{
		{trust.Untrusted, 200, policy.ReasonRuleAllow},
		{trust.Verified, 200, policy.ReasonRuleAllow},
		{trust.Trusted, 403, engine.ReasonTierBelowMinimum},
	}
	for _, tc := range tests {
		t.Run(tc.min.String(), func(t *testing.T) {
			d := check(t, m.F.Engine, engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts", MinTier: tc.min})
			if d.Status != tc.status || d.Reason != tc.reason {
				t.Fatalf("got %d %s (%s), want %d %s", d.Status, d.Reason, d.Message, tc.status, tc.reason)
			}
		})
	}
}
