// Package enginetest builds a real Engine for tests of the packages around
// it (extauthz, gateway, admin): SQLite in a temp dir, real keys and tokens,
// policies from YAML. Nothing in it is a fake.
package enginetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/agentcache"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/ratelimit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
)

// Fixture is a wired engine and the parts behind it.
type Fixture struct {
	Engine   *engine.Engine
	Dir      string // holds the database file, meshguard.db
	Store    *store.SQLite
	Keys     *identity.Keys
	Issuer   *identity.Issuer
	Verifier *identity.Verifier
	Cached   *identity.CachedVerifier
	// Revoked is the verifier's revocation list, loaded from the store
	// (empty) as the server loads it; RevokeToken adds to both.
	Revoked  *identity.RevokedSet
	Agents   *agentcache.Cache
	Policies *policy.Loader
	Limiter  *ratelimit.Memory
	// Audit records every decision of Engine, synchronously, so a test
	// reads a decision's record as soon as Check returns.
	Audit *audit.Writer
}

// Options adjust a Fixture.
type Options struct {
	Mode   engine.Mode
	Routes []engine.Route
	Now    func() time.Time
	// ApprovalNotifier is told of approvals raised (nil: nobody).
	ApprovalNotifier engine.ApprovalNotifier
	// ApprovalArguments is what approvals show of a call's arguments.
	ApprovalArguments audit.ArgumentsConfig
	// ApprovalPendingTTL is how long an approval waits (engine default if 0).
	ApprovalPendingTTL time.Duration
	// Observer is told of every decision (nil: nobody).
	Observer engine.Observer
	// Answer is what answers carry beyond the default (ANSWER_EXTRAS).
	Answer engine.Answer
	// Random is the engine's source of id bytes (nil: crypto/rand).
	Random func() [16]byte
}

// New builds a Fixture whose policies are the given YAML documents (joined
// into one file).
func New(t testing.TB, policies string, opts Options) *Fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "meshguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	f := &Fixture{Store: db, Dir: dir}
	if f.Keys, err = identity.NewKeys(db, identity.KeysConfig{Now: opts.Now}); err != nil {
		t.Fatal(err)
	}
	if err := f.Keys.EnsureKey(ctx, identity.AlgEdDSA); err != nil {
		t.Fatal(err)
	}
	if f.Issuer, err = identity.NewIssuer(identity.IssuerConfig{Keys: f.Keys, Now: opts.Now}); err != nil {
		t.Fatal(err)
	}
	f.Agents = agentcache.New(db, 0, 0, opts.Now)
	f.Revoked = identity.NewRevokedSet(opts.Now)
	if err := f.Revoked.Load(nil); err != nil {
		t.Fatal(err)
	}
	if f.Verifier, err = identity.NewVerifier(identity.VerifierConfig{Keys: f.Keys, Agents: f.Agents, Revoked: f.Revoked, Now: opts.Now}); err != nil {
		t.Fatal(err)
	}
	f.Cached = identity.NewCachedVerifier(f.Verifier, identity.CacheConfig{})
	pfile := filepath.Join(dir, "policies.yaml")
	writeFile(t, pfile, policies)
	f.Policies = policy.NewLoader(policy.File(pfile))
	if _, err := f.Policies.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	f.Limiter = ratelimit.NewMemory(opts.Now, 0)
	if f.Audit, err = audit.NewWriter(ctx, db, audit.WriterConfig{}); err != nil {
		t.Fatal(err)
	}
	f.buildEngine(t, opts)
	return f
}

// buildEngine wires the engine over the fixture's parts, as the server does.
func (f *Fixture) buildEngine(t testing.TB, opts Options) {
	t.Helper()
	var err error
	f.Engine, err = engine.New(engine.Config{
		Mode: opts.Mode, Answer: opts.Answer, Random: opts.Random, Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer,
		Agents: f.Agents, Names: f.Store, Policies: f.Policies, Limiter: f.Limiter, Recorder: f.Audit, Routes: opts.Routes, Now: opts.Now,
		Approvals: f.Store, ApprovalNotifier: opts.ApprovalNotifier, ApprovalArguments: opts.ApprovalArguments,
		ApprovalPendingTTL: opts.ApprovalPendingTTL, Observer: opts.Observer,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Agent creates an active agent and returns it with a one-hour token.
func (f *Fixture) Agent(t testing.TB, name string, tier trust.Tier, tags []string, hosts ...string) (identity.Agent, string) {
	t.Helper()
	a, err := f.Store.CreateAgent(context.Background(), identity.Agent{Name: name, TrustTier: tier, Tags: tags, Hosts: hosts, Status: identity.StatusActive})
	if err != nil {
		t.Fatal(err)
	}
	f.Agents.Invalidate()
	tok, _, err := f.Issuer.Issue(a, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return a, tok
}

// Revoke revokes an agent and drops it from every cache, as the admin API does.
func (f *Fixture) Revoke(t testing.TB, id string) {
	t.Helper()
	if err := f.Store.RevokeAgent(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	f.Agents.Invalidate()
	f.Cached.InvalidateAgent(id)
}

// RevokeToken revokes one token by its jti, in the store and in the
// verifier's list, as the admin API does.
func (f *Fixture) RevokeToken(t testing.TB, token string) identity.RevokedToken {
	t.Helper()
	r, err := f.Verifier.ToRevoke(token)
	if err != nil {
		t.Fatal(err)
	}
	if r, _, err = f.Store.RevokeToken(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if err := f.Revoked.Add(r); err != nil {
		t.Fatal(err)
	}
	f.Cached.InvalidateTokenID(r.JTI)
	return r
}

// Bind binds an agent to SPIFFE IDs (replacing those it had) and drops it
// from every cache, as the admin API does.
func (f *Fixture) Bind(t testing.TB, id string, spiffeIDs ...string) identity.Agent {
	t.Helper()
	ctx := context.Background()
	a, err := f.Store.GetAgent(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	a.SPIFFEIDs = spiffeIDs
	if a, err = f.Store.UpdateAgent(ctx, a); err != nil {
		t.Fatal(err)
	}
	f.Agents.Invalidate()
	f.Cached.InvalidateAgent(id)
	return a
}
