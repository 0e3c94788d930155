package store_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/meshguard/meshguard/audit"
)

// BenchmarkAppendAuditAgents is the trail's writer with its records'
// agents interleaved as many agents' calls arrive (agents=60) against one
// agent, as under make bench-load (agents=1). The (agent, ts) index takes
// each agent's record at the end of that agent's range, inside the index
// rather than at its right edge, so a batch dirties a page an agent and
// the commit writes each of them to the WAL.
func BenchmarkAppendAuditAgents(b *testing.B) {
	for _, agents := range []int{1, 60} {
		b.Run(fmt.Sprintf("agents=%d", agents), func(b *testing.B) {
			pick := rand.New(rand.NewPCG(1, 2))
			benchTrail(b, func(_ int, r *audit.Record) {
				a := fmt.Sprintf("agent_%02d", pick.IntN(agents))
				r.AgentID, r.Chain = a, []string{a}
			})
		})
	}
}
