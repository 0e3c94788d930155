package storetest

import (
	"strings"
	"testing"

	"github.com/meshguard/meshguard/identity"
)

func testAgentBySPIFFEID(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	const researcher = "spiffe://cluster.local/ns/research/sa/researcher"
	a := mustCreate(t, b, newAgent("alpha", func(a *identity.Agent) {
		a.SPIFFEIDs = []string{researcher, "spiffe://cluster.local/ns/research/sa/researcher-v2"}
	}))
	r := mustCreate(t, b, newAgent("retired", func(a *identity.Agent) { a.SPIFFEIDs = []string{"spiffe://cluster.local/ns/old/sa/x"} }))
	if err := b.RevokeAgent(t.Context(), r.ID); err != nil {
		t.Fatalf("RevokeAgent: %v", err)
	}
	tests := []struct {
		name, id, want string
	}{
		{"bound", researcher, a.ID},
		{"second of two", "spiffe://cluster.local/ns/research/sa/researcher-v2", a.ID},
		{"revoked agents keep their IDs", "spiffe://cluster.local/ns/old/sa/x", r.ID},
		// One spelling is one identity: no case folding, no prefixes.
		{"upper case", strings.ToUpper(researcher), ""},
		{"path differs in case", "spiffe://cluster.local/ns/research/sa/Researcher", ""},
		{"prefix of a bound ID", "spiffe://cluster.local/ns/research", ""},
		{"bound ID with a suffix", researcher + "/x", ""},
		{"trailing slash", researcher + "/", ""},
		{"unknown", "spiffe://cluster.local/ns/research/sa/other", ""},
		{"empty", "", ""},
		{"SQL", "spiffe://x' OR '1'='1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := b.AgentBySPIFFEID(t.Context(), tc.id)
			if tc.want == "" {
				wantErr(t, err, identity.ErrNotFound, "AgentBySPIFFEID("+tc.id+")")
				return
			}
			if err != nil || got.ID != tc.want {
				t.Fatalf("AgentBySPIFFEID(%q) = %q, %v; want %q", tc.id, got.ID, err, tc.want)
			}
		})
	}
}

func testAgentBySPIFFEIDFollowsUpdates(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	const shared, own = "spiffe://td/ns/shared", "spiffe://td/ns/a"
	a := mustCreate(t, b, newAgent("alpha", func(a *identity.Agent) { a.SPIFFEIDs = []string{shared, own} }))
	c := mustCreate(t, b, newAgent("charlie"))
	a.SPIFFEIDs = []string{own}
	if _, err := b.UpdateAgent(t.Context(), a); err != nil {
		t.Fatalf("UpdateAgent: %v", err)
	}
	_, err := b.AgentBySPIFFEID(t.Context(), shared)
	wantErr(t, err, identity.ErrNotFound, "AgentBySPIFFEID after the ID was dropped")
	c.SPIFFEIDs = []string{shared}
	if _, err := b.UpdateAgent(t.Context(), c); err != nil {
		t.Fatalf("UpdateAgent taking a freed ID: %v", err)
	}
	if got, err := b.AgentBySPIFFEID(t.Context(), shared); err != nil || got.ID != c.ID {
		t.Fatalf("AgentBySPIFFEID(shared) = %q, %v; want %q", got.ID, err, c.ID)
	}
	if got, err := b.AgentBySPIFFEID(t.Context(), own); err != nil || got.ID != a.ID {
		t.Fatalf("AgentBySPIFFEID(own) = %q, %v; want %q", got.ID, err, a.ID)
	}
	// Emptied: the agent keeps no IDs, and reads back an empty list.
	a.SPIFFEIDs = nil
	got, err := b.UpdateAgent(t.Context(), a)
	if err != nil || got.SPIFFEIDs == nil || len(got.SPIFFEIDs) != 0 {
		t.Fatalf("UpdateAgent clearing the IDs = %#v, %v; want an empty, non-nil list", got.SPIFFEIDs, err)
	}
	_, err = b.AgentBySPIFFEID(t.Context(), own)
	wantErr(t, err, identity.ErrNotFound, "AgentBySPIFFEID after the IDs were cleared")
}

func testSPIFFEIDConflict(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	seed := mustCreate(t, b, newAgent("alpha", func(a *identity.Agent) {
		a.SPIFFEIDs = []string{"spiffe://td/alpha", "spiffe://td/alpha-v2"}
	}))
	before := snapshot(t, b)
	for _, ids := range [][]string{{"spiffe://td/alpha"}, {"spiffe://td/free", "spiffe://td/alpha-v2"}} {
		_, err := b.CreateAgent(t.Context(), newAgent("other", func(a *identity.Agent) { a.SPIFFEIDs = ids }))
		wantErr(t, err, identity.ErrConflict, "CreateAgent with a bound SPIFFE ID")
		// The holder is named, so an operator knows whom to unbind.
		if !strings.Contains(err.Error(), seed.ID) {
			t.Errorf("conflict error %q does not name the holder %s", err, seed.ID)
		}
	}
	wantUnchanged(t, b, before)
}
