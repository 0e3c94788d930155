// Package filterdecider is the wasm filter's local decider: it compiles a
// parsed filterconfig.Config into the same engine the server runs (New),
// over the configuration's keys, agents, policies, routes and catalogue,
// so a request the filter decides alone is decided exactly as MeshGuard
// would decide it.
//
// A decision that needs what only MeshGuard holds — a delegation token to
// mint for a target agent, a rate limit shared across proxies, an HS256
// token's secret — is not guessed at: Check returns ErrDefer and the
// filter asks MeshGuard (package filterprotocol).
//
// It is its own package, apart from the configuration, because the server
// generates configurations but never decides with one: only the filter
// (and the tests holding it to the server) imports the decider. It builds
// for wasip1; docs/wasm-filter.md is the reference.
package filterdecider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/ratelimit"
	"github.com/meshguard/meshguard/trust"
)

// ErrDefer says a decision needs MeshGuard itself: a delegation token must
// be minted for the agent the request goes to, a rate limit must be
// counted where every proxy counts, a human approval must be asked for or
// used, or the token is HS256. The filter then
// asks MeshGuard (POST /v1/filter/check), which decides and records.
var ErrDefer = errors.New("the decision needs MeshGuard")

// Options are what New needs beyond the configuration.
type Options struct {
	// Now is the clock (time.Now if nil). The filter passes the request's
	// time as Envoy saw it.
	Now func() time.Time
	// Recorder receives the record of every decision made locally.
	Recorder engine.Recorder
}

// Decider is a compiled configuration: the engine over the configuration's
// keys, agents, policies and routes, and its service catalogue.
type Decider struct {
	// hs256: MeshGuard also takes HS256 tokens, whose secret the filter
	// lacks: they are deferred.
	hs256    bool
	engine   *engine.Engine
	services *catalog.Catalogue
	tokens   *identity.CachedVerifier
	// cache holds allows for repeated requests (cache.go); nil when off.
	cache *decisionCache
	// recorded: there is a Recorder, so a cached decision keeps its
	// record for Reissue (engine.KeepRecord).
	recorded bool
	now      func() time.Time
}

// New compiles c. Every error names what is wrong and wraps
// filterconfig.ErrInvalid, as Parse's do (to the filter, a configuration
// it cannot compile is as invalid as one it cannot parse): a filter that
// cannot compile its configuration must refuse requests (fail closed),
// not run on a part of it.
func New(c *filterconfig.Config, o Options) (*Decider, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	ring, err := identity.NewPublicKeyring(c.JWKS, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: jwks: %w", filterconfig.ErrInvalid, err)
	}
	dir, err := newDirectory(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", filterconfig.ErrInvalid, err)
	}
	// The revoked tokens, as MeshGuard's verifier has them: a token
	// revoked is refused here as there, with the same reason.
	revoked := identity.NewRevokedSet(o.Now)
	list := make([]identity.RevokedToken, len(c.RevokedTokens))
	for i, r := range c.RevokedTokens {
		list[i] = identity.RevokedToken{JTI: r.JTI, ExpiresAt: time.Unix(r.Exp, 0)}
	}
	if err := revoked.Load(list); err != nil {
		return nil, fmt.Errorf("%w: revokedTokens: %w", filterconfig.ErrInvalid, err)
	}
	v, err := identity.NewVerifier(identity.VerifierConfig{Keys: ring, Agents: dir, Revoked: revoked, Issuer: c.Issuer, Audience: c.Audience, Now: o.Now})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", filterconfig.ErrInvalid, err)
	}
	tokens := identity.NewCachedVerifier(v, identity.CacheConfig{MaxEntries: c.TokenCacheEntries})
	set, clocked, err := compilePolicies(c.Policies)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", filterconfig.ErrInvalid, err)
	}
	services, err := compileServices(c.Services)
	if err != nil {
		return nil, fmt.Errorf("%w: services: %w", filterconfig.ErrInvalid, err)
	}
	answer, err := engine.ParseAnswer(c.Answer)
	if err != nil {
		return nil, fmt.Errorf("%w: answer: %w", filterconfig.ErrInvalid, err)
	}
	eng, err := engine.New(engine.Config{
		Mode: c.Mode, Answer: answer, Tokens: tokens, Delegations: tokens, Delegator: deferring{}, Agents: dir,
		Policies: fixedPolicies{set}, Limiter: deferring{}, Recorder: o.Recorder, Routes: c.Routes, Now: o.Now,
		Approvals: deferring{}, Random: newRandomBuffer().next,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", filterconfig.ErrInvalid, err)
	}
	entries := c.TokenCacheEntries
	if entries == 0 {
		entries = identity.DefaultCacheEntries
	}
	cache, err := newDecisionCache(clocked, entries)
	if err != nil {
		return nil, fmt.Errorf("the decision cache's key: %w", err)
	}
	if cache != nil {
		cache.keyTrace = readsTrace(set.RequestKeys())
	}
	return &Decider{hs256: c.HS256, engine: eng, services: services, tokens: tokens, cache: cache, recorded: o.Recorder != nil, now: o.Now}, nil
}

// Prepare sets what the proxy's route configuration would give the
// request: the action of the catalogue route it takes and its service's
// minimum tier, exactly as MeshGuard's xDS passes them to ext_authz. It
// also marks the request as the wasm filter's. Check calls it; the filter
// calls it before deferring, so MeshGuard decides on the same request.
func (d *Decider) Prepare(r *engine.Request) {
	r.Source = engine.SourceWasm
	if s := d.services.Lookup(r.Host); s != nil {
		s.Prepare(r)
	}
}

// Check decides r locally, or returns ErrDefer. Any other error is the
// engine's own failure (the recorder refused the record): fail closed.
func (d *Decider) Check(ctx context.Context, r *engine.Request) (engine.Decision, error) {
	d.Prepare(r)
	// Only HS256 tokens defer (the filter holds no secret to verify them).
	// A header TokenAlg refuses, the local verifier refuses too: no need
	// to ask MeshGuard.
	if d.hs256 {
		if alg, err := identity.TokenAlg(r.Token); err == nil && alg == identity.AlgHS256 {
			return engine.Decision{}, ErrDefer
		}
	}
	if d.cache == nil || !cacheable(r) {
		return d.check(ctx, r)
	}
	key := d.cache.key(r)
	now := d.now()
	if prior := d.cache.get(key, now); prior != nil {
		return d.engine.Reissue(ctx, r, prior)
	}
	dec, err := d.check(ctx, r)
	if err == nil && cacheableDecision(&dec) {
		if exp, ok := d.expiry(ctx, r, now); ok {
			// The cached copy keeps its record, for Reissue to copy;
			// dec, returned, does not.
			kept := dec
			if d.recorded {
				d.engine.KeepRecord(r, &kept)
			}
			d.cache.put(key, kept, exp)
		}
	}
	return dec, err
}

func (d *Decider) check(ctx context.Context, r *engine.Request) (engine.Decision, error) {
	dec, err := d.engine.Check(ctx, r)
	if errors.Is(err, ErrDefer) {
		return engine.Decision{}, ErrDefer
	}
	return dec, err
}

// WantsBody reports whether r, prepared (Prepare), is decided on its body:
// a POST to a route declaring an agent protocol (engine.Engine.WantsBody).
// The filter then waits for the whole body before it calls Check.
func (d *Decider) WantsBody(r *engine.Request) bool { return d.engine.WantsBody(r) }

// CachedTokens is the number of verified tokens cached.
func (d *Decider) CachedTokens() int { return d.tokens.Len() }

// CachedDecisions is the number of decisions cached (cache.go); 0 when
// the cache is off.
func (d *Decider) CachedDecisions() int {
	if d.cache == nil {
		return 0
	}
	return d.cache.len()
}

// CachedDecisionBytes is what the cached decisions keep, as the cache
// bounds it (engine.Decision.KeptBytes, summed); 0 when the cache is off.
func (d *Decider) CachedDecisionBytes() int {
	if d.cache == nil {
		return 0
	}
	return d.cache.held()
}

// deferring is the Limiter, Delegator and Approvals of the local engine:
// counting a shared limit, minting a delegation token and asking for or
// using a human approval are MeshGuard's.
type deferring struct{}

func (deferring) Allow(context.Context, string, int, time.Duration) (ratelimit.Result, error) {
	return ratelimit.Result{}, ErrDefer
}

func (deferring) RequestApproval(context.Context, approval.Approval, time.Time) (approval.Approval, approval.Outcome, error) {
	return approval.Approval{}, "", ErrDefer
}

func (deferring) Delegate(identity.DelegationGrant) (string, identity.DelegationGrant, error) {
	return "", identity.DelegationGrant{}, ErrDefer
}

// fixedPolicies is a policy set that never changes: a new configuration
// makes a new Decider.
type fixedPolicies struct{ set *policy.Set }

func (f fixedPolicies) Current() *policy.Set { return f.set }

// compilePolicies compiles docs; clocked says a rule reads the clock or a
// counter (a time or rateLimit condition), so no decision may be cached.
func compilePolicies(docs []json.RawMessage) (set *policy.Set, clocked bool, err error) {
	var all []*policy.Policy
	for i, doc := range docs {
		ps, err := policy.Parse(fmt.Sprintf("policies[%d]", i), doc)
		if err != nil {
			return nil, false, err
		}
		all = append(all, ps...)
	}
	set, err = policy.Compile(all)
	if err != nil {
		return nil, false, fmt.Errorf("policies: %w", err)
	}
	return set, timed(all), nil
}

// compileServices validates the services as a catalogue (unique hosts,
// valid routes) and puts each one's routes in matching order.
func compileServices(in []filterconfig.Service) (*catalog.Catalogue, error) {
	services := make([]catalog.Service, len(in))
	for i, s := range in {
		t := trust.Untrusted
		if s.MinTier != "" {
			var err error
			if t, err = trust.Parse(s.MinTier); err != nil {
				return nil, fmt.Errorf("[%d] (%s): minTier: %w", i, s.Name, err)
			}
		}
		// Port and endpoints are Envoy's business, not the filter's; the
		// catalogue's validation wants them, so they get placeholders.
		services[i] = catalog.Service{Name: s.Name, Hosts: s.Hosts, MinTier: t, Routes: s.Routes, Protocol: s.Protocol, Port: 1, Endpoints: []string{"127.0.0.1:1"}}
	}
	c, err := catalog.New(services)
	if err != nil {
		return nil, err
	}
	for i := range c.Services {
		c.Services[i].Routes = c.Services[i].OrderedRoutes()
	}
	return c, nil
}

// directory is the configuration's agents, as the verifier and the engine
// look them up.
type directory struct {
	byID   map[string]identity.Agent
	byHost map[string]string // host → agent id
}

func newDirectory(c *filterconfig.Config) (*directory, error) {
	d := &directory{byID: make(map[string]identity.Agent, len(c.Agents)+len(c.RevokedAgents)), byHost: map[string]string{}}
	add := func(field string, list []filterconfig.Agent, status identity.Status) error {
		for i := range list {
			a := list[i].Identity(status)
			if _, dup := d.byID[a.ID]; dup {
				return fmt.Errorf("%s[%d]: agent %s is listed twice", field, i, a.ID)
			}
			d.byID[a.ID] = a
			for _, h := range a.Hosts {
				if other, dup := d.byHost[h]; dup {
					return fmt.Errorf("%s[%d]: host %q already belongs to agent %s", field, i, h, other)
				}
				d.byHost[h] = a.ID
			}
		}
		return nil
	}
	if err := add("agents", c.Agents, identity.StatusActive); err != nil {
		return nil, err
	}
	if err := add("revokedAgents", c.RevokedAgents, identity.StatusRevoked); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *directory) GetAgent(_ context.Context, id string) (identity.Agent, error) {
	a, ok := d.byID[id]
	if !ok {
		return identity.Agent{}, fmt.Errorf("agent %s: %w", id, identity.ErrNotFound)
	}
	return a, nil
}

func (d *directory) AgentByHost(ctx context.Context, host string) (identity.Agent, error) {
	id, ok := d.byHost[identity.NormalizeHost(host)]
	if !ok {
		return identity.Agent{}, fmt.Errorf("agent by host %q: %w", host, identity.ErrNotFound)
	}
	return d.GetAgent(ctx, id)
}

// AgentBySPIFFEID finds no agent: the filter does not read peer principals
// yet (its requests carry none, so the engine never asks), and its
// configuration carries no SPIFFE IDs. See docs/wasm-filter.md.
func (d *directory) AgentBySPIFFEID(_ context.Context, id string) (identity.Agent, error) {
	return identity.Agent{}, fmt.Errorf("agent by SPIFFE ID %q: %w", id, identity.ErrNotFound)
}
