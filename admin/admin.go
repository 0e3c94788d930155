// Package admin serves MeshGuard's admin API under /admin/ (agents,
// policies, keys, audit, services, alerts) and the public /health, /ready,
// /metrics, JWKS and OIDC discovery documents, on the main port's router
// (httpjson.Router) beside the enforcement points checkapi and filterapi.
// docs/api.md is the reference; package client is its typed Go client and
// owns the request and response types.
//
// The admin API takes only the admin token, in X-Admin-Token, compared in
// constant time; an agent's bearer token is refused there, whatever it
// says. Nothing here decides a request: that is the engine's, behind the
// enforcement points.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/agentcache"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/store"
)

// Store is what the API reads and writes: agents and stored policies
// (store.SQLite).
type Store interface {
	CreateAgent(ctx context.Context, a identity.Agent) (identity.Agent, error)
	GetAgent(ctx context.Context, id string) (identity.Agent, error)
	GetAgentByName(ctx context.Context, name string) (identity.Agent, error)
	ListAgents(ctx context.Context, f store.AgentFilter) ([]identity.Agent, error)
	UpdateAgent(ctx context.Context, a identity.Agent) (identity.Agent, error)
	RevokeAgent(ctx context.Context, id string) error

	PutPolicies(ctx context.Context, ps []store.StoredPolicy) ([]store.StoredPolicy, error)
	GetPolicy(ctx context.Context, name string) (store.StoredPolicy, error)
	ListPolicies(ctx context.Context) ([]store.StoredPolicy, error)
	DeletePolicy(ctx context.Context, name string) error
}

// TokenCache verifies agent tokens and forgets an agent's cached
// verifications when it changes (identity.CachedVerifier).
type TokenCache interface {
	Verify(ctx context.Context, token string) (*identity.Verified, error)
	InvalidateAgent(id string) int
	InvalidateTokenID(jti string) int
}

// AgentCache is the engine's agent cache (agentcache.Cache).
type AgentCache interface {
	Invalidate()
}

// Policies is the policy loader in force (policy.Loader).
type Policies interface {
	Reload(ctx context.Context) (*policy.Set, error)
	Current() *policy.Set
	Err() error
	// Revision is the set of a revision in force now or lately.
	Revision(rev string) (*policy.Set, bool)
}

// What the server passes in satisfies the interfaces.
var (
	_ Store      = (*store.SQLite)(nil)
	_ TokenCache = (*identity.CachedVerifier)(nil)
	_ AgentCache = (*agentcache.Cache)(nil)
	_ Policies   = (*policy.Loader)(nil)
)

// Change names what an admin call changed, for Config.OnChange.
type Change string

// Changes.
const (
	ChangeAgents   Change = "agents"
	ChangePolicies Change = "policies"
	ChangeKeys     Change = "keys"
	ChangeServices Change = "services"
)

// MinAdminTokenLen is the shortest admin token New accepts.
const MinAdminTokenLen = 16

// Body limits (docs/api.md#limits).
const (
	// MaxBodyBytes bounds JSON request bodies.
	MaxBodyBytes = httpjson.MaxBodyBytes
	// MaxPolicyBodyBytes bounds the bodies of the policy endpoints that
	// take policy YAML (apply, validate, test): one policy file's limit.
	MaxPolicyBodyBytes = policy.MaxFileBytes
)

// Config wires an API. Store, Keys, Issuer, Verifier, Tokens, Agents,
// Policies, Audit and AdminToken are required.
type Config struct {
	Store    Store
	Keys     *identity.Keys
	Issuer   *identity.Issuer
	Verifier *identity.Verifier
	// Tokens is the cached verifier the engine uses: every agent change
	// invalidates it.
	Tokens TokenCache
	// Agents is the engine's agent cache, invalidated on every change.
	Agents AgentCache
	// Policies is the loader over the policy files and the stored
	// policies: policy.NewLoader(policy.Dir(POLICIES_DIR), NewStoredPolicies(store)).
	Policies Policies
	// PolicyFiles is the loader's file source (policy.Dir(POLICIES_DIR)).
	// Applying a policy reads it to refuse names the files define and to
	// compile the prospective set; nil falls back to the file policies of
	// the set in force.
	PolicyFiles policy.Source
	// Audit is the stored audit trail the /admin/audit endpoints read.
	Audit AuditLog
	// Checkpoints, if set, signs the trail's heads (GET
	// /admin/audit/checkpoint) and has the last one signed (incremental
	// verification).
	Checkpoints Checkpoints
	// Services, if set, is the service catalogue of /admin/services
	// (registry.Registry).
	Services Services
	// Alerts, if set, serves GET /admin/alerts and POST /admin/alerts/test.
	Alerts Alerts
	// Revocations, if set, serves POST /admin/tokens/revoke and GET
	// /admin/tokens/revoked.
	Revocations *Revocations
	// XDS, if set, answers GET /admin/xds/status (xds.Server).
	XDS interface{ Status() api.XDSStatus }
	// Metrics, if set, serves GET /metrics (telemetry.Metrics). Like
	// /health it needs no token: it holds counts, no agent data.
	Metrics http.Handler
	// AdminToken is the token X-Admin-Token must carry (at least
	// MinAdminTokenLen bytes).
	AdminToken string
	// Ready, if set, reports what else keeps the server from serving (the
	// store, …); /ready adds the policy loader's last error.
	Ready func(ctx context.Context) error
	// IssuerURL is the iss the Issuer writes (identity.DefaultIssuer if
	// empty); BaseURL is the public http(s) address of this port, for the
	// discovery document's jwks_uri. Without BaseURL, jwks_uri is built
	// from each request's Host.
	IssuerURL string
	BaseURL   string
	// DefaultTokenTTL is the lifetime of tokens issued without a ttl (the
	// Issuer's default if zero); at most the keyring's MaxTTL.
	DefaultTokenTTL time.Duration
	// FilterConfig, if set, serves GET /admin/filter/config to the admin
	// token: the handler of the wasm filter's own GET /v1/filter/config
	// (filterapi.API.ConfigHandler), so both answer alike.
	FilterConfig http.Handler
	// OnChange, if set, is called after each successful change, for
	// example to push a new xDS snapshot. It must not block.
	OnChange func(Change)
	// Logger receives one line per change and per internal error; tokens
	// never appear in it. Nil discards.
	Logger *slog.Logger
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// API is the admin API. Create it with New and Register it on the
// server's router.
type API struct {
	cfg       Config
	log       *slog.Logger
	token     TokenCheck
	discovery *identity.Discovery // nil: built per request from Host

	// agentMu serialises agent writes, so two PATCHes of one agent cannot
	// lose each other's change; policyMu serialises policy applies and
	// deletes with the reload that follows them.
	agentMu, policyMu sync.Mutex
}

// New checks cfg and builds the API.
func New(cfg Config) (*API, error) {
	var missing []string
	for name, isNil := range map[string]bool{
		"Store": cfg.Store == nil, "Keys": cfg.Keys == nil, "Issuer": cfg.Issuer == nil,
		"Verifier": cfg.Verifier == nil, "Tokens": cfg.Tokens == nil, "Agents": cfg.Agents == nil,
		"Policies": cfg.Policies == nil, "Audit": cfg.Audit == nil,
	} {
		if isNil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("admin: Config.%s required", strings.Join(sortedStrings(missing), ", Config."))
	}
	if len(cfg.AdminToken) < MinAdminTokenLen {
		return nil, fmt.Errorf("admin: the admin token must be at least %d characters", MinAdminTokenLen)
	}
	if cfg.DefaultTokenTTL < 0 {
		return nil, errors.New("admin: DefaultTokenTTL must not be negative")
	}
	if limit := cfg.Keys.Keyring().MaxTTL(); cfg.DefaultTokenTTL != 0 && (cfg.DefaultTokenTTL < time.Second || cfg.DefaultTokenTTL > limit) {
		return nil, fmt.Errorf("admin: DefaultTokenTTL %s is outside 1s..%s", cfg.DefaultTokenTTL, limit)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Revocations != nil && (cfg.Revocations.Store == nil || cfg.Revocations.List == nil) {
		return nil, errors.New("admin: Config.Revocations.Store and Config.Revocations.List required")
	}
	a := &API{cfg: cfg, log: cfg.Logger, token: NewTokenCheck(cfg.AdminToken)}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if cfg.BaseURL != "" {
		d, err := identity.NewDiscovery(cfg.IssuerURL, cfg.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
		a.discovery = &d
	}
	return a, nil
}

// Mux is where routes are registered (httpjson.Router, which lists
// them for the credential tests and answers what none matches).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Register registers every endpoint on m: the public ones, and the admin
// endpoints wrapped in the admin-token check.
func (a *API) Register(m Mux) {
	admin := a.requireAdmin
	// Public.
	m.Handle("GET /health", http.HandlerFunc(a.health))
	m.Handle("GET /ready", http.HandlerFunc(a.ready))
	if a.cfg.Metrics != nil {
		m.Handle("GET /metrics", a.cfg.Metrics)
	}
	m.Handle("GET "+identity.JWKSPath, http.HandlerFunc(a.jwks))
	m.Handle("GET "+identity.DiscoveryPath, http.HandlerFunc(a.openIDConfiguration))
	if a.cfg.FilterConfig != nil {
		m.Handle("GET /admin/filter/config", admin(a.cfg.FilterConfig.ServeHTTP))
	}
	// Admin: agents.
	m.Handle("GET /admin/agents", admin(a.listAgents))
	m.Handle("POST /admin/agents", admin(a.createAgent))
	m.Handle("GET /admin/agents/{id}", admin(a.getAgent))
	m.Handle("PATCH /admin/agents/{id}", admin(a.updateAgent))
	m.Handle("DELETE /admin/agents/{id}", admin(a.revokeAgent))
	m.Handle("POST /admin/agents/{id}/token", admin(a.issueToken))
	// Admin: single tokens.
	if a.cfg.Revocations != nil {
		m.Handle("POST /admin/tokens/revoke", admin(a.revokeToken))
		m.Handle("GET /admin/tokens/revoked", admin(a.listRevokedTokens))
	}
	// Admin: policies.
	m.Handle("GET /admin/policies", admin(a.listPolicies))
	m.Handle("POST /admin/policies", admin(a.applyPolicies))
	m.Handle("POST /admin/policies/validate", admin(a.validatePolicies))
	m.Handle("POST /admin/policies/test", admin(a.testPolicies))
	m.Handle("POST /admin/policies/replay", admin(a.replayPolicies))
	m.Handle("GET /admin/policies/{name}", admin(a.getPolicy))
	m.Handle("DELETE /admin/policies/{name}", admin(a.deletePolicy))
	// Admin: keys.
	m.Handle("POST /admin/keys/rotate", admin(a.rotateKeys))

	m.Handle("GET /admin/audit", admin(a.queryAudit))
	m.Handle("GET /admin/audit/stats", admin(a.auditStats))
	m.Handle("GET /admin/audit/trace/{traceId}", admin(a.auditTrace))
	m.Handle("GET /admin/audit/export", admin(a.exportAudit))
	m.Handle("GET /admin/audit/stream", admin(a.followAudit))
	m.Handle("GET /admin/audit/verify", admin(a.verifyAudit))
	m.Handle("GET /admin/audit/deadletter", admin(a.auditDeadLetters))
	m.Handle("POST /admin/audit/verify", admin(a.verifyAuditStream))
	if a.cfg.Checkpoints != nil {
		m.Handle("GET /admin/audit/checkpoint", admin(a.auditCheckpoint))
	}
	if a.cfg.Services != nil {
		m.Handle("GET /admin/services", admin(a.listServices))
		m.Handle("GET /admin/services/{name}", admin(a.getService))
		m.Handle("PUT /admin/services/{name}", admin(a.putService))
		m.Handle("DELETE /admin/services/{name}", admin(a.deleteService))
	}
	if a.cfg.XDS != nil {
		m.Handle("GET /admin/xds/status", admin(func(w http.ResponseWriter, _ *http.Request) { httpjson.WriteJSON(w, http.StatusOK, a.cfg.XDS.Status()) }))
	}
	if a.cfg.Alerts != nil {
		m.Handle("GET /admin/alerts", admin(a.alertsStatus))
		m.Handle("POST /admin/alerts/test", admin(a.alertsTest))
	}
}

// changed reports a change to OnChange.
func (a *API) changed(c Change) {
	if a.cfg.OnChange != nil {
		a.cfg.OnChange(c)
	}
}

// Token is the check of the admin token in force, for the console's
// sign-in (one copy of the comparison).
func (a *API) Token() TokenCheck { return a.token }
