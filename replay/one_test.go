package replay_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/replay"
	"github.com/meshguard/meshguard/store"
)

// TestInputOneRecord: replay.Input rebuilds one record's input as a
// replay does, so deciding it against the candidate gives what the
// replay reports for it, and refuses what a replay could not decide.
func TestInputOneRecord(t *testing.T) {
	s, ids := trail(t)
	set := candidate(t, candidatePolicies)
	byID := map[string]audit.Record{}
	if err := s.ScanAuditFiltered(context.Background(), store.AuditFilter{}, func(rec audit.Record, _ string) error {
		byID[rec.ID] = rec
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		record     string
		wantRule   string // policy/rule of the decision again; "" when refused
		wantReason string
		wantErr    string // in the refusal
	}{
		{record: "mail outside", wantRule: "mail/external", wantReason: policy.ReasonRuleDeny},
		{record: "drafts", wantRule: "mail/reads", wantReason: policy.ReasonRuleAllow},
		{record: "delegated secret", wantRule: "mail/no-delegated-secrets", wantReason: policy.ReasonRuleDeny},
		{record: "login", wantErr: replay.WhyRedacted},
		{record: "flags", wantErr: replay.WhyValueMissing},
	} {
		t.Run(tc.record, func(t *testing.T) {
			rec, ok := byID[ids[tc.record]]
			if !ok {
				t.Fatalf("no record %q in the trail", tc.record)
			}
			in, err := replay.Input(set, &rec)
			if tc.wantErr != "" {
				if !errors.Is(err, replay.ErrCannotDecide) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Input: %v, want ErrCannotDecide naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			in.Explain = true
			d := set.Evaluate(&in)
			if got := d.Policy + "/" + d.Rule; got != tc.wantRule || d.Reason != tc.wantReason {
				t.Fatalf("decided again: %s (%s), want %s (%s)", got, d.Reason, tc.wantRule, tc.wantReason)
			}
			if d.Explain == nil || len(d.Explain.Policies) == 0 {
				t.Fatal("no explanation")
			}
		})
	}
}
