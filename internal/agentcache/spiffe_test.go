package agentcache

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

// TestCacheSPIFFEIDs runs the cache over the real store: lookups by SPIFFE
// ID are cached, misses too, for the TTL, and Invalidate drops them at once.
func TestCacheSPIFFEIDs(t *testing.T) {
	ctx := t.Context()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	const id, other = "spiffe://cluster.local/ns/research/sa/researcher", "spiffe://cluster.local/ns/research/sa/other"
	a, err := db.CreateAgent(ctx, identity.Agent{Name: "researcher", TrustTier: trust.Verified, Status: identity.StatusActive, SPIFFEIDs: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := New(db, time.Second, 0, func() time.Time { return now })
	if got, err := c.AgentBySPIFFEID(ctx, id); err != nil || got.ID != a.ID {
		t.Fatalf("AgentBySPIFFEID(bound) = %q, %v; want %s", got.ID, err, a.ID)
	}
	if _, err := c.AgentBySPIFFEID(ctx, other); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("AgentBySPIFFEID(unbound) = %v, want ErrNotFound", err)
	}

	// Move the binding in the store behind the cache's back, as another
	// replica would: within the TTL the cache still answers as before.
	a.SPIFFEIDs = []string{other}
	if _, err := db.UpdateAgent(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, err := c.AgentBySPIFFEID(ctx, id); err != nil || got.ID != a.ID {
		t.Fatalf("within the TTL: AgentBySPIFFEID(old) = %q, %v; want the cached %s", got.ID, err, a.ID)
	}
	if _, err := c.AgentBySPIFFEID(ctx, other); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("within the TTL the miss is cached: AgentBySPIFFEID(new) = %v, want ErrNotFound", err)
	}

	// Invalidate (this replica made the change) drops both at once.
	c.Invalidate()
	if _, err := c.AgentBySPIFFEID(ctx, id); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("after Invalidate: AgentBySPIFFEID(old) = %v, want ErrNotFound", err)
	}
	if got, err := c.AgentBySPIFFEID(ctx, other); err != nil || got.ID != a.ID {
		t.Fatalf("after Invalidate: AgentBySPIFFEID(new) = %q, %v; want %s", got.ID, err, a.ID)
	}

	// A change made elsewhere is seen once the TTL has passed.
	a.SPIFFEIDs = nil
	if _, err := db.UpdateAgent(ctx, a); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	if _, err := c.AgentBySPIFFEID(ctx, other); !errors.Is(err, identity.ErrNotFound) {
		t.Fatalf("after the TTL: AgentBySPIFFEID = %v, want ErrNotFound", err)
	}
}
