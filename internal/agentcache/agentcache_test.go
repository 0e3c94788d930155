package agentcache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/identity"
)

type fakeSource struct {
	mu     sync.Mutex
	agents map[string]identity.Agent
	hosts  map[string]string
	calls  int
	err    error
}

func (f *fakeSource) GetAgent(_ context.Context, id string) (identity.Agent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return identity.Agent{}, f.err
	}
	a, ok := f.agents[id]
	if !ok {
		return identity.Agent{}, identity.ErrNotFound
	}
	return a, nil
}

func (f *fakeSource) AgentByHost(ctx context.Context, host string) (identity.Agent, error) {
	f.mu.Lock()
	id, ok := f.hosts[host]
	f.mu.Unlock()
	if !ok {
		f.mu.Lock()
		f.calls++
		f.mu.Unlock()
		return identity.Agent{}, identity.ErrNotFound
	}
	return f.GetAgent(ctx, id)
}

// AgentBySPIFFEID: the fake binds no SPIFFE IDs (TestCacheSPIFFEIDs runs
// over the real store).
func (f *fakeSource) AgentBySPIFFEID(context.Context, string) (identity.Agent, error) {
	return identity.Agent{}, identity.ErrNotFound
}

func TestCache(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	src := &fakeSource{agents: map[string]identity.Agent{"agent_a": {ID: "agent_a", Status: identity.StatusActive}}, hosts: map[string]string{"a.mesh": "agent_a"}}
	c := New(src, time.Second, 0, func() time.Time { return now })

	for range 3 {
		if a, err := c.GetAgent(ctx, "agent_a"); err != nil || a.ID != "agent_a" {
			t.Fatal(a, err)
		}
	}
	if src.calls != 1 {
		t.Fatalf("%d source calls for three reads within the TTL", src.calls)
	}
	for range 3 {
		if _, err := c.AgentByHost(ctx, "nobody.mesh"); !errors.Is(err, identity.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if src.calls != 2 {
		t.Fatalf("misses must be cached too: %d calls", src.calls)
	}

	// A revoke on this replica is seen at once after Invalidate.
	src.mu.Lock()
	src.agents["agent_a"] = identity.Agent{ID: "agent_a", Status: identity.StatusRevoked}
	src.mu.Unlock()
	c.Invalidate()
	if a, _ := c.GetAgent(ctx, "agent_a"); a.Active() {
		t.Fatal("stale agent after Invalidate")
	}
	// One made elsewhere is seen once the TTL passes.
	src.mu.Lock()
	src.agents["agent_a"] = identity.Agent{ID: "agent_a", Status: identity.StatusActive}
	src.mu.Unlock()
	if a, _ := c.GetAgent(ctx, "agent_a"); a.Active() {
		t.Fatal("cache should still hold the revoked agent within the TTL")
	}
	now = now.Add(time.Second)
	if a, _ := c.GetAgent(ctx, "agent_a"); !a.Active() {
		t.Fatal("change not seen after the TTL")
	}

	// Store failures are returned and not cached.
	src.mu.Lock()
	src.err = errors.New("database is down")
	src.mu.Unlock()
	now = now.Add(time.Second)
	if _, err := c.GetAgent(ctx, "agent_a"); err == nil || errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("store failure: %v", err)
	}
	src.mu.Lock()
	src.err = nil
	src.mu.Unlock()
	if _, err := c.GetAgent(ctx, "agent_a"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestCacheBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	src := &fakeSource{agents: map[string]identity.Agent{}, hosts: map[string]string{}}
	c := New(src, time.Second, 10, func() time.Time { return now })
	for i := range 100 {
		_, _ = c.AgentByHost(context.Background(), string(rune('a'+i%26))+time.Duration(i).String())
	}
	c.mu.Lock()
	n := len(c.byHost)
	c.mu.Unlock()
	if n > 10 {
		t.Fatalf("%d entries, bound 10", n)
	}
}
