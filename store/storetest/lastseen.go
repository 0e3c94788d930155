package storetest

import (
	"testing"
	"time"
)

// testAgentLastSeen: an agent is last seen at its newest record's time;
// one with no record is not seen at all.
func testAgentLastSeen(t *testing.T, open func(*testing.T) Backend) {
	b := auditBackend(t, open)
	appendTrail(t, b)
	for _, tc := range []struct {
		agent string
		want  time.Time
		seen  bool
	}{
		// trail: agents a, b, c in turn, a minute apart, twelve records.
		{"agent_a", auditStart.Add(9 * time.Minute), true},
		{"agent_b", auditStart.Add(10 * time.Minute), true},
		{"agent_c", auditStart.Add(11 * time.Minute), true},
		{"agent_never", time.Time{}, false},
	} {
		t.Run(tc.agent, func(t *testing.T) {
			got, seen, err := b.AgentLastSeen(t.Context(), tc.agent)
			if err != nil {
				t.Fatal(err)
			}
			if seen != tc.seen || !got.Equal(tc.want) {
				t.Fatalf("last seen %v (%t), want %v (%t)", got, seen, tc.want, tc.seen)
			}
		})
	}
}
