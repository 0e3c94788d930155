package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// TestReplicasShareOnePostgres runs two servers on one database, as two
// replicas: an agent created through one works on the other, a revocation
// made through one is enforced by the other within a second (docs/storage.md), and
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
	// The contract is about a second; the wait only bounds a broken build
	// (no timing assertion on a shared machine).
	took := waitFor(t, "the other replica refusing the revoked agent", func() bool {
		return b.check(t, token, "GET", "/docs/a").GetDeniedResponse().GetStatus().GetCode() == 401
	})
	t.Logf("revocation reached the other replica in %v", took)

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
	if _, err := a.admin.PutService(ctx, api.Service{Name: "ledger", Hosts: []string{"ledger.mesh"}, Port: 8080, Endpoints: []string{"10.0.0.9:8080"}}); err != nil {
		t.Fatal(err)
	}
	// Wait for the push that has it (ctx bounds the wait).
	for _, names := clusters(); !slices.Equal(names, []string{"ledger", "meshguard_authz"}); _, names = clusters() {
	}
	t.Logf("the service reached the other replica's Envoy in %v", time.Since(put))
}

// waitFor polls cond until it holds or a generous deadline passes (the
// contract is 1 s; the deadline only keeps a broken build from hanging).
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s: not after %v", what, time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// TestReplicasSharePolicies: a policy applied through one replica's admin
// API decides on the other, and reaches the other's Envoys in the wasm
// filter's configuration; deleting it there takes it away again.
func TestReplicasSharePolicies(t *testing.T) {
	u := pgtest.NewDatabase(t)
	withDB := func(c *config.Config) {
		c.DatabaseURL, c.WasmFilterPath = u, "/etc/envoy/meshguard-filter.wasm"
	}
	a := start(t, withDB)
	b := start(t, withDB)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	filter := watchFilterConfig(ctx, t, b, "envoy-b")
	if first := filter(); len(first.Policies) != 1 {
		t.Fatalf("b's filter configuration before: %d policies", len(first.Policies))
	}
	token := a.agent(t, "scribe", "writer")
	allowed := func() bool {
		return codes.Code(b.check(t, token, "POST", "/docs/a").GetStatus().GetCode()) == codes.OK
	}
	if allowed() {
		t.Fatal("b allows a write before any policy allows it")
	}

	if _, err := a.admin.ApplyPolicyYAML(ctx, []byte("name: writers\nappliesTo: {tags: [writer]}\nrules:\n  - {name: w, effect: allow, actions: [\"write:*\"]}\n")); err != nil {
		t.Fatal(err)
	}
	t.Logf("the applied policy decided on the other replica after %v", waitFor(t, "b decides with the policy applied on a", allowed))
	// Wait for the push that has it (ctx bounds the wait).
	for c := filter(); len(c.Policies) != 2 || !strings.Contains(string(c.Policies[0])+string(c.Policies[1]), `"writers"`); c = filter() {
	}

	if _, err := a.admin.DeletePolicy(ctx, "writers"); err != nil {
		t.Fatal(err)
	}
	t.Logf("the deletion decided on the other replica after %v", waitFor(t, "b stops allowing after the policy was deleted on a", func() bool { return !allowed() }))
	for c := filter(); len(c.Policies) != 1; c = filter() {
	}
}

// TestReplicasShareKeys: a key rotated in through one replica verifies on
// the other at once (tokens signed with it pass) and is in its JWKS, where
// only the periodic reload (an hour in tests, 30 s by default) used to
// bring it.
func TestReplicasShareKeys(t *testing.T) {
	u := pgtest.NewDatabase(t)
	withDB := func(c *config.Config) { c.DatabaseURL = u }
	a := start(t, withDB)
	b := start(t, withDB)
	ctx := t.Context()

	rotated, err := a.admin.RotateKeys(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	token := a.agent(t, "fresh", "reader") // signed with the new key
	if kid := tokenKID(t, token); kid != rotated.KID {
		t.Fatalf("the token is signed with %q, not the rotated key %q", kid, rotated.KID)
	}
	waited := waitFor(t, "b verifies a token signed with the key rotated in on a", func() bool {
		return codes.Code(b.check(t, token, "GET", "/docs/a").GetStatus().GetCode()) == codes.OK
	})
	t.Logf("the rotated key verified on the other replica after %v", waited)
	jwks, err := b.admin.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(jwks), `"kid":"`+rotated.KID+`"`) {
		t.Fatalf("b's JWKS lacks the rotated key %s: %s", rotated.KID, jwks)
	}
}

// tokenKID reads the kid of a JWT's header.
func tokenKID(t *testing.T, token string) string {
	t.Helper()
	head, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.KID
}
