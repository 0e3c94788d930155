package server

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// TestReplicasShareOnePostgres runs two servers on one database, as two
// replicas: an agent created through one works on the other, a revocation
// made through one is enforced by the other within a second (SPEC §2), and
// both record their decisions in chains that verify.
func TestReplicasShareOnePostgres(t *testing.T) {
	u := pgtest.NewDatabase(t)
	withDB := func(c *config.Config) { c.DatabaseURL = u }
	// One after the other: the second loads the signing key the first made.
	a := start(t, withDB)
	b := start(t, withDB)

	token := a.agent(t, "reader", "reader")
	if resp := a.check(t, token, "GET", "/docs/a"); codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("check: %v", resp)
	}
	// b verifies the token and caches the verification.
	for range 3 {
		if resp := b.check(t, token, "GET", "/docs/a"); codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("check on the other replica: %v", resp)
		}
	}
	if _, err := a.admin.RevokeAgent(context.Background(), "reader"); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for {
		resp := b.check(t, token, "GET", "/docs/a")
		if resp.GetDeniedResponse().GetStatus().GetCode() == 401 {
			break
		}
		if time.Since(revoked) > time.Second {
			t.Fatalf("the other replica still allows a revoked agent after %v: %v", time.Since(revoked), resp)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("revocation reached the other replica in %v", time.Since(revoked))

	// Every decision of both replicas is in the trail, which verifies.
	a.stop(t)
	b.stop(t)
	s, err := store.OpenPostgres(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	heads, err := s.AuditChains(context.Background())
	if err != nil || len(heads) != 2 {
		t.Fatalf("AuditChains = %v, %v; want one chain per replica", heads, err)
	}
	if n, err := audit.VerifyChains(context.Background(), s); err != nil || n < 5 {
		t.Fatalf("VerifyChains = %d, %v", n, err)
	}
}

// TestReplicasShareServices: a service put through one replica reaches the
// Envoys of the other, through PostgreSQL's change feed.
func TestReplicasShareServices(t *testing.T) {
	u := pgtest.NewDatabase(t)
	withDB := func(c *config.Config) { c.DatabaseURL = u }
	a := start(t, withDB)
	b := start(t, withDB)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clusters := watchClusters(ctx, t, b, "envoy-b")
	if _, names := clusters(); !slices.Equal(names, []string{"meshguard_authz"}) {
		t.Fatalf("clusters before: %v", names)
	}
	put := time.Now()
	if _, err := a.admin.PutService(ctx, catalog.Service{Name: "ledger", Hosts: []string{"ledger.mesh"}, Port: 8080, Endpoints: []string{"10.0.0.9:8080"}}); err != nil {
		t.Fatal(err)
	}
	// Wait for the push that has it (ctx bounds the wait).
	for _, names := clusters(); !slices.Equal(names, []string{"ledger", "meshguard_authz"}); _, names = clusters() {
	}
	t.Logf("the service reached the other replica's Envoy in %v", time.Since(put))
}
