package store_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

// The numbers belong in docs/performance.md, not in pass/fail tests.

func benchStore(b *testing.B, agents int) (*store.SQLite, []identity.Agent) {
	b.Helper()
	s, err := store.OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	var out []identity.Agent
	for i := range agents {
		a, err := s.CreateAgent(b.Context(), benchAgent(fmt.Sprintf("seed-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, a)
	}
	return s, out
}

// benchAgent is a typical agent: a few tags, two hosts, some metadata.
func benchAgent(name string) identity.Agent {
	return identity.Agent{
		Name: name, TrustTier: trust.Trusted, Status: identity.StatusActive,
		Tags:     []string{"team:payments", "env:prod", "pci"},
		Hosts:    []string{name + ".mesh.local", name + "-api.mesh.local"},
		Metadata: map[string]string{"owner": "payments@example.com", "runtime": "python"},
	}
}

func BenchmarkGetAgent(b *testing.B) {
	s, agents := benchStore(b, 1000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.GetAgent(b.Context(), agents[i%len(agents)].ID); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkGetAgentParallel(b *testing.B) {
	s, agents := benchStore(b, 1000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.GetAgent(b.Context(), agents[i%len(agents)].ID); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func BenchmarkAgentByHost(b *testing.B) {
	s, agents := benchStore(b, 1000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.AgentByHost(b.Context(), agents[i%len(agents)].Hosts[1]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkCreateAgent(b *testing.B) {
	s, _ := benchStore(b, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.CreateAgent(b.Context(), benchAgent(fmt.Sprintf("new-%d", i))); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkListAgents100(b *testing.B) {
	s, _ := benchStore(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ListAgents(b.Context(), store.AgentFilter{Limit: 100}); err != nil {
			b.Fatal(err)
		}
	}
}
