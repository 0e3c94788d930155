package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/identity"
)

// durabilityTests cover what spans calls: reopening, concurrency,
// cancellation.
func durabilityTests() []test {
	return []test{
		{"Reopen", testReopen},
		{"ConcurrentWriters", testConcurrentWriters},
		{"CanceledContext", testCanceledContext},
	}
}

func testReopen(t *testing.T, open func(*testing.T) Backend) {
	base := baseTime()
	b := open(t)
	a := mustCreate(t, b, newAgent("alpha", func(a *identity.Agent) {
		a.Tags, a.Hosts, a.Metadata = []string{"x"}, []string{"alpha.local"}, map[string]string{"k": "v"}
	}))
	r := mustCreate(t, b, newAgent("revoked"))
	if err := b.RevokeAgent(t.Context(), r.ID); err != nil {
		t.Fatalf("RevokeAgent: %v", err)
	}
	a.TrustTier = a.TrustTier + 1
	if _, err := b.UpdateAgent(t.Context(), a); err != nil {
		t.Fatalf("UpdateAgent: %v", err)
	}
	mustRotate(t, b, newKey("k1", base))
	mustRotate(t, b, newKey("k2", base.Add(time.Minute)))
	mustPutPolicy(t, b, "stored-a", "name: stored-a\n")
	before := snapshot(t, b)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	b = openClosed(t, open)
	wantUnchanged(t, b, before)
	if got, err := b.AgentByHost(t.Context(), "alpha.local"); err != nil || got.ID != a.ID {
		t.Errorf("AgentByHost after reopen = %q, %v; want %q", got.ID, err, a.ID)
	}
	// Constraints survive too.
	_, err := b.CreateAgent(t.Context(), newAgent("alpha"))
	wantErr(t, err, identity.ErrConflict, "CreateAgent(alpha) after reopen")
}

// testConcurrentWriters writes from many goroutines at once. Every call must
// succeed: lock contention is the backend's to absorb (SQLITE_BUSY, or a
// serialization failure in PostgreSQL), never the caller's.
func testConcurrentWriters(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	const workers, perWorker = 8, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				a, err := b.CreateAgent(t.Context(), newAgent(fmt.Sprintf("w%d-%d", w, i), func(a *identity.Agent) {
					a.Hosts = []string{fmt.Sprintf("w%d-%d.local", w, i)}
				}))
				if err != nil {
					t.Errorf("CreateAgent: %v", err)
					return
				}
				a.Tags = []string{"updated"}
				if _, err := b.UpdateAgent(t.Context(), a); err != nil {
					t.Errorf("UpdateAgent: %v", err)
				}
				if _, err := b.GetAgent(t.Context(), a.ID); err != nil {
					t.Errorf("GetAgent: %v", err)
				}
				if i%3 == 0 {
					if err := b.RevokeAgent(t.Context(), a.ID); err != nil {
						t.Errorf("RevokeAgent: %v", err)
					}
				}
			}
		})
	}
	// Everyone wants the same name: exactly one wins, the rest conflict.
	var wins sync.Map
	for w := range workers {
		wg.Go(func() {
			_, err := b.CreateAgent(t.Context(), newAgent("contested"))
			switch {
			case err == nil:
				wins.Store(w, true)
			case !errors.Is(err, identity.ErrConflict):
				t.Errorf("CreateAgent(contested): %v, want nil or ErrConflict", err)
			}
		})
	}
	wg.Wait()
	n := 0
	wins.Range(func(_, _ any) bool { n++; return true })
	if n != 1 {
		t.Errorf("%d creations of the same name succeeded, want 1", n)
	}
	if got := len(snapshot(t, b).Agents); got != workers*perWorker+1 {
		t.Errorf("%d agents stored, want %d", got, workers*perWorker+1)
	}
}

func testCanceledContext(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	a := mustCreate(t, b, newAgent("alpha"))
	before := snapshot(t, b)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]func() error{
		"CreateAgent": func() error { _, err := b.CreateAgent(ctx, newAgent("beta")); return err },
		"UpdateAgent": func() error {
			x := a
			x.Name = "renamed"
			_, err := b.UpdateAgent(ctx, x)
			return err
		},
		"RevokeAgent": func() error { return b.RevokeAgent(ctx, a.ID) },
		"RotateKey":   func() error { return b.RotateKey(ctx, newKey("k1", baseTime())) },
		"GetAgent":    func() error { _, err := b.GetAgent(ctx, a.ID); return err },
		"PutPolicy":   func() error { _, err := b.PutPolicy(ctx, "p", "name: p\n"); return err },
		"DeletePolicy": func() error {
			return b.DeletePolicy(ctx, "p")
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: error = %v, want context.Canceled", name, err)
		}
	}
	wantUnchanged(t, b, before)
	if diff := cmp.Diff(before.Agents[0], a); diff != "" {
		t.Errorf("(-stored +created):\n%s", diff)
	}
}
