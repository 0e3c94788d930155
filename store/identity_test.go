package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

// TestIdentityOverSQLite runs identity against the real store, as the server
// will: keys generated into and reloaded from SQLite, tokens verified against
// stored agents, revocation and demotion seen, rotation keeping old tokens
// valid, and a second process (another handle on the same file) verifying
// what the first issued.
func TestIdentityOverSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meshguard.db")
	open := func() *store.SQLite {
		s, err := store.OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	db := open()
	keys, err := identity.NewKeys(db, identity.KeysConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.EnsureKey(ctx, identity.AlgEdDSA); err != nil {
		t.Fatal(err)
	}
	agent, err := db.CreateAgent(ctx, identity.Agent{Name: "researcher", TrustTier: trust.Trusted, Tags: []string{"research"}, Status: identity.StatusActive})
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := identity.NewIssuer(identity.IssuerConfig{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := identity.NewVerifier(identity.VerifierConfig{Keys: keys, Agents: db})
	if err != nil {
		t.Fatal(err)
	}
	cached := identity.NewCachedVerifier(verifier, identity.CacheConfig{})
	token, _, err := issuer.Issue(agent, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cached.Verify(ctx, token)
	if err != nil || got.Agent.ID != agent.ID || got.Tier != trust.Trusted {
		t.Fatalf("verify: %+v, %v", got, err)
	}

	// A second handle, as another replica or the CLI would have, loads the
	// same keys and accepts the token.
	other := open()
	otherKeys, _ := identity.NewKeys(other, identity.KeysConfig{})
	if err := otherKeys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	otherVerifier, _ := identity.NewVerifier(identity.VerifierConfig{Keys: otherKeys, Agents: other})
	if _, err := otherVerifier.Verify(ctx, token); err != nil {
		t.Fatalf("second handle: %v", err)
	}

	// Rotation: new tokens carry the new kid, the old token still verifies.
	oldKID := got.KID
	newKID, err := keys.Rotate(ctx, identity.AlgES256)
	if err != nil || newKID == oldKID {
		t.Fatalf("rotate: %q, %v", newKID, err)
	}
	fresh, _, err := issuer.Issue(agent, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := verifier.Verify(ctx, fresh); err != nil || v.KID != newKID || v.Alg != identity.AlgES256 {
		t.Fatalf("fresh token: %+v, %v", v, err)
	}
	if _, err := verifier.Verify(ctx, token); err != nil {
		t.Fatalf("the old token must outlive the rotation: %v", err)
	}

	// Demotion lowers the effective tier at once.
	agent.TrustTier = trust.Verified
	if _, err := db.UpdateAgent(ctx, agent); err != nil {
		t.Fatal(err)
	}
	cached.InvalidateAgent(agent.ID)
	if v, err := cached.Verify(ctx, token); err != nil || v.Tier != trust.Verified {
		t.Fatalf("after demotion: tier %v, %v", v.Tier, err)
	}

	// Revocation rejects every token of the agent.
	if err := db.RevokeAgent(ctx, agent.ID); err != nil {
		t.Fatal(err)
	}
	cached.InvalidateAgent(agent.ID)
	for _, tok := range []string{token, fresh} {
		if _, err := cached.Verify(ctx, tok); !errors.Is(err, identity.ErrAgentRevoked) {
			t.Fatalf("revoked agent: %v", err)
		}
	}
	// The other handle learns of the rotation when it reloads its keys.
	if _, err := otherVerifier.Verify(ctx, fresh); !errors.Is(err, identity.ErrTokenKID) {
		t.Fatalf("before reloading, the other handle does not know the new key: %v", err)
	}
	if err := otherKeys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := otherVerifier.Verify(ctx, fresh); !errors.Is(err, identity.ErrAgentRevoked) {
		t.Fatalf("revoked agent on the second handle: %v", err)
	}

	// Removing a key rejects what it signed.
	if err := db.DeleteKey(ctx, oldKID); err != nil {
		t.Fatal(err)
	}
	if err := keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := verifier.Verify(ctx, token); !errors.Is(err, identity.ErrTokenKID) {
		t.Fatalf("token of a deleted key: %v", err)
	}
}
