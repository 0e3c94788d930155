package replay_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/replay"
)

// TestReplayGroupsAreBounded: the groups of a report are keyed by the
// recorded policy and rule, which a wasm filter ships (any text up to 256
// bytes, on a denial unchecked): a trail of denials each naming another
// policy, all allowed by the candidate, must not grow a group (and its
// examples) per record. Past replay.MaxGroups the changes are still
// counted, exactly, and the report says how many fell outside the groups
// shown. Before, every distinct name was a group: memory grew with the
// trail, not bounded as replay promises.
func TestReplayGroupsAreBounded(t *testing.T) {
	set := candidate(t, `
name: all
appliesTo: {tags: [reader]}
rules:
  - {name: reads, effect: allow, actions: ["read:*"]}
`)
	r, err := replay.New(set, replay.Options{Examples: replay.MaxExamples})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3 * replay.MaxGroups
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for i := range n {
		r.Add(&audit.Record{ID: fmt.Sprintf("aud_%06d", i), Timestamp: at, AgentID: "agt_r", AgentName: "reader", TrustTier: "verified",
			Action: "read:docs", Resource: "/docs", Decision: "deny", Status: 403, Reason: "rule_deny",
			Policy: fmt.Sprintf("shipped-%06d", i), Rule: "r", Chain: []string{"agt_r"}, Source: "wasm",
			Inputs: &audit.Inputs{Tags: []string{"reader"}}})
	}
	rep := r.Report()
	inGroups := 0
	for _, g := range rep.Changes {
		inGroups += g.Count
	}
	if rep.Redecided != n || rep.DenyToAllow != n {
		t.Fatalf("redecided %d, deny→allow %d; want %d each", rep.Redecided, rep.DenyToAllow, n)
	}
	if len(rep.Changes) > replay.MaxGroups || inGroups+rep.OutsideGroups != n || rep.OutsideGroups != n-replay.MaxGroups {
		t.Fatalf("%d groups holding %d records, %d outside them; want at most %d groups, and %d outside",
			len(rep.Changes), inGroups, rep.OutsideGroups, replay.MaxGroups, n-replay.MaxGroups)
	}
}
