// Package filtertest builds a real MeshGuard engine (enginetest) and the wasm
// filter configuration MeshGuard generates from the same keys, agents,
// policies and catalogue, with a table of requests that covers every kind
// of outcome. The filter's tests and the tests that hold its decisions to
// ext_authz's share it, so both sides are asked the same questions.
package filtertest

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/filterapi"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/proxyauth"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/trust"
	"github.com/meshguard/meshguard/xds"
)

// Now is the clock of both sides: tokens are issued at it and requests are
// decided at it.
var Now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// AdminToken is the admin token the environment's MeshGuard would have.
const AdminToken = "filtertest-admin-token-0123456789abcdef"

// The proxy the environment's MeshGuard lists (PROXIES_FILE), and the
// bearer credential its filter calls MeshGuard with.
const (
	ProxyName        = "filtertest-proxy"
	FilterCredential = "mgp_filtertest-proxy-credential-0123456789"
)

// Services is the environment's catalogue.
const Services = `
services:
  - name: docs
    hosts: [docs.mesh]
    port: 80
    endpoints: ["10.0.0.10:8080"]
    minTier: verified
    routes:
      - {method: POST, path: "/publish/*", action: "write:docs"}
  - name: vault
    hosts: [vault.mesh]
    port: 80
    endpoints: ["10.0.0.11:8080"]
    minTier: privileged
  - name: mail
    hosts: [mail.mesh]
    port: 80
    endpoints: ["10.0.0.12:8080"]
    routes:
      - {method: POST, path: /outbox, action: "write:email"}
  - name: research
    hosts: [researcher.mesh]
    port: 80
    endpoints: ["10.0.0.13:8080"]
    agent: researcher
  - name: papers
    hosts: [papers.mesh]
    port: 80
    endpoints: ["10.0.0.14:8080"]
    protocol: mcp
  - name: planner
    hosts: [planner.mesh]
    port: 80
    endpoints: ["10.0.0.15:8080"]
    agent: planner
    protocol: a2a
`

// Env is a MeshGuard (F) and the filter configuration it generates.
type Env struct {
	F *enginetest.Fixture
	// The mesh's agents and their tokens (enginetest.MeshPolicies), and a
	// stranger no policy covers, and a revoked emailer.
	Orch, Res, Mail, Stranger, Gone         identity.Agent
	OrchT, ResT, MailT, StrangerT, GoneT    string
	Catalogue                               *catalog.Catalogue
	routes                                  *routev3.RouteConfiguration
	expiredT, foreignT, delegT, wrongDelegT string
	forgedDelegT, hs256T, noneT             string
	// A token of the orchestrator revoked by its jti (its other tokens
	// work).
	revokedT string
	// Delegation tokens each chain check refuses.
	ceilingT, depthT, maxChainT, scopeT, revokedMemberT, revokedRootT string
	// A delegation handed on with revokedT.
	revokedByT string
	// Tool calls MCP tools and messages the planner agent over A2A
	// (ToolPolicies); Planner is that agent.
	Tool, Planner   identity.Agent
	ToolT, PlannerT string
	config          []byte
}

// New builds an Env.
func New(t testing.TB) *Env {
	t.Helper()
	clock := func() time.Time { return Now }
	m := enginetest.NewMesh(t, enginetest.Options{Now: clock})
	e := &Env{F: m.F, Orch: m.Orch, Res: m.Res, Mail: m.Mail, OrchT: m.OrchT, ResT: m.ResT, MailT: m.MailT}
	e.Stranger, e.StrangerT = e.F.Agent(t, "stranger", trust.Verified, nil)
	e.Gone, e.GoneT = e.F.Agent(t, "gone", trust.Verified, []string{"emailer"})
	e.F.Revoke(t, e.Gone.ID)
	e.addToolPolicies(t)

	var err error
	if e.Catalogue, err = catalog.Parse("services.yaml", []byte(Services)); err != nil {
		t.Fatal(err)
	}
	res, err := xds.Build(e.Catalogue, xds.Options{ListenerPort: 10000, AuthzHost: "127.0.0.1", AuthzPort: 3101})
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range res.Routes {
		if rc.GetName() == xds.IngressRoutes {
			e.routes = rc
		}
	}

	// Tokens that must fail, each in its own way.
	past, err := identity.NewIssuer(identity.IssuerConfig{Keys: e.F.Keys, Now: func() time.Time { return Now.Add(-3 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if e.expiredT, _, err = past.Issue(e.Orch, time.Hour); err != nil {
		t.Fatal(err)
	}
	other := enginetest.New(t, enginetest.MeshPolicies, enginetest.Options{Now: clock})
	if e.foreignT, _, err = other.Issuer.Issue(e.Orch, time.Hour); err != nil {
		t.Fatal(err)
	}
	delegate := func(actor identity.Agent) string {
		tok, _, err := e.F.Issuer.Delegate(identity.DelegationGrant{Root: e.Orch.ID, Actors: []string{actor.ID}, ExpiresAt: Now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	e.delegT, e.wrongDelegT = delegate(e.Mail), delegate(e.Res)
	grant := func(root identity.Agent, actors []identity.Agent, scope []string, maxChain int) string {
		g := identity.DelegationGrant{Root: root.ID, Scope: scope, MaxChain: maxChain, ExpiresAt: Now.Add(time.Hour)}
		for _, a := range actors {
			g.Actors = append(g.Actors, a.ID)
		}
		tok, _, err := e.F.Issuer.Delegate(g)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// The orchestrator's ceiling leaves out write:notes/*, which the
	// researcher may do itself.
	e.ceilingT = grant(e.Orch, []identity.Agent{e.Res}, nil, 0)
	// The researcher delegates one hop at most (maxDepth 1): the emailer
	// is two from it.
	e.depthT = grant(e.Res, []identity.Agent{e.Orch, e.Mail}, nil, 0)
	// Within the policies' depths, but the token allows one delegating agent.
	e.maxChainT = grant(e.Orch, []identity.Agent{e.Res, e.Mail}, nil, 1)
	e.scopeT = grant(e.Orch, []identity.Agent{e.Mail}, []string{"read:docs/public/*"}, 0)
	e.revokedMemberT = grant(e.Orch, []identity.Agent{e.Gone, e.Mail}, nil, 0)
	e.revokedRootT = grant(e.Gone, []identity.Agent{e.Mail}, nil, 0)
	if e.forgedDelegT, _, err = other.Issuer.Delegate(identity.DelegationGrant{Root: e.Orch.ID, Actors: []string{e.Mail.ID}, ExpiresAt: Now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e.hs256T = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + strings.Split(e.OrchT, ".")[1] + ".c2lnbmF0dXJl"
	e.noneT = "eyJhbGciOiJub25lIn0." + strings.Split(e.OrchT, ".")[1] + "."
	if e.revokedT, _, err = e.F.Issuer.Issue(e.Orch, time.Hour); err != nil {
		t.Fatal(err)
	}
	rt := e.F.RevokeToken(t, e.revokedT)
	if e.revokedByT, _, err = e.F.Issuer.Delegate(identity.DelegationGrant{Root: e.Orch.ID, Actors: []string{e.Mail.ID}, ExpiresAt: Now.Add(time.Hour), ByTokens: []string{rt.JTI}}); err != nil {
		t.Fatal(err)
	}
	e.config = e.Generate(t)
	return e
}

// Config is the filter configuration generated when the Env was built.
func (e *Env) Config() []byte { return e.config }

// Generate writes the filter configuration for MeshGuard's current state.
func (e *Env) Generate(t testing.TB) []byte {
	t.Helper()
	out, err := e.generate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *Env) generate(ctx context.Context) ([]byte, error) {
	jwks, err := e.F.Keys.JWKS()
	if err != nil {
		return nil, err
	}
	agents, err := e.F.Store.ListAgents(ctx, store.AgentFilter{Limit: 1000})
	if err != nil {
		return nil, err
	}
	doc, _, err := filterconfig.Generate(filterconfig.Inputs{
		JWKS: jwks, Agents: agents, RevokedTokens: e.F.Revoked.Live(), Policies: e.F.Policies.Current().Policies(), Catalogue: e.Catalogue,
		MeshGuard: filterconfig.Upstream{Cluster: "meshguard_http", Token: FilterCredential},
	})
	return doc, err
}

// serve is the API's FilterConfig.Generate: the document and its revision.
func (e *Env) serve(ctx context.Context) ([]byte, string, error) {
	doc, err := e.generate(ctx)
	if err != nil {
		return nil, "", err
	}
	c, err := filterconfig.Parse(doc)
	if err != nil {
		return nil, "", err
	}
	return doc, c.Revision, nil
}

// Case is one request and what MeshGuard decides about it.
type Case struct {
	Name               string
	Method, Host, Path string
	Headers            [][2]string
	Status             int    // the decision's status: 200, 400, 401 or 403
	Reason             string // its reason code
	Defer              bool   // the filter must ask MeshGuard
}

// HeaderMap is the request as an Envoy filter sees it: pseudo headers
// first, then the headers.
func (c *Case) HeaderMap() [][2]string {
	return append([][2]string{{":method", c.Method}, {":authority", c.Host}, {":path", c.Path}}, c.Headers...)
}

func bearer(tok string) [2]string { return [2]string{"authorization", "Bearer " + tok} }

// Cases is the table: every kind of allow, denial and deferral.
func (e *Env) Cases() []Case {
	return []Case{
		{"allowed by a rule", "GET", "docs.mesh", "/docs/readme?lang=en", [][2]string{bearer(e.OrchT)}, 200, "rule_allow", false},
		{"route action allowed", "POST", "docs.mesh", "/publish/q3", [][2]string{bearer(e.OrchT)}, 200, "rule_allow", false},
		{"no token", "GET", "docs.mesh", "/docs", nil, 401, engine.ReasonUnauthorized, false},
		{"basic scheme", "GET", "docs.mesh", "/docs", [][2]string{{"authorization", "Basic b3JjaDpwdw=="}}, 401, engine.ReasonUnauthorized, false},
		{"garbage token", "GET", "docs.mesh", "/docs", [][2]string{bearer("abc.def.ghi")}, 401, engine.ReasonUnauthorized, false},
		{"alg none", "GET", "docs.mesh", "/docs", [][2]string{bearer(e.noneT)}, 401, engine.ReasonUnauthorized, false},
		{"HS256 without JWT_SECRET", "GET", "docs.mesh", "/docs", [][2]string{bearer(e.hs256T)}, 401, engine.ReasonUnauthorized, false},
		{"expired token", "GET", "docs.mesh", "/docs", [][2]string{bearer(e.expiredT)}, 401, engine.ReasonUnauthorized, false},
		{"token of an unknown key", "GET", "docs.mesh", "/docs", [][2]string{bearer(e.foreignT)}, 401, engine.ReasonUnauthorized, false},
		{"revoked agent", "GET", "docs.mesh", "/docs", [][2]string{bearer(e.GoneT)}, 401, engine.ReasonAgentRevoked, false},
		{"a revoked jti", "GET", "docs.mesh", "/docs", [][2]string{bearer(e.revokedT)}, 401, engine.ReasonTokenRevoked, false},
		{"tier below the service's minimum", "GET", "vault.mesh", "/secrets", [][2]string{bearer(e.MailT)}, 403, engine.ReasonTierBelowMinimum, false},
		{"a steering header does not relabel the route", "POST", "mail.mesh", "/outbox?to=eve@evil.test", [][2]string{bearer(e.MailT), {"x-meshguard-action", "read:docs"}}, 403, "rule_deny", false},
		{"denied by a rule's condition", "POST", "mail.mesh", "/outbox?to=eve@evil.test", [][2]string{bearer(e.MailT)}, 403, "rule_deny", false},
		{"X-MeshGuard-Context is not context", "POST", "mail.mesh", "/outbox?to=eve@evil.test", [][2]string{bearer(e.MailT), {"x-meshguard-context", `{"query.to":"team@example.com"}`}}, 403, "rule_deny", false},
		{"allowed with context", "POST", "mail.mesh", "/outbox?to=team@example.com", [][2]string{bearer(e.MailT)}, 200, "rule_allow", false},
		{"a query parameter the policy reads, twice", "POST", "mail.mesh", "/outbox?to=team@example.com&to=eve@evil.test", [][2]string{bearer(e.MailT)}, 400, engine.ReasonBadRequest, false},
		{"the parameter as to[] beside to", "POST", "mail.mesh", "/outbox?to=team@example.com&to[]=eve@evil.test", [][2]string{bearer(e.MailT)}, 400, engine.ReasonBadRequest, false},
		{"a POST overridden to DELETE", "POST", "mail.mesh", "/outbox?to=team@example.com", [][2]string{bearer(e.MailT), {"x-http-method-override", "DELETE"}}, 400, engine.ReasonBadRequest, false},
		{"an escaped ';' in the path", "GET", "docs.mesh", "/docs%3B/private/x", [][2]string{bearer(e.OrchT)}, 400, engine.ReasonBadRequest, false},
		{"no policy covers the agent", "GET", "docs.mesh", "/docs", [][2]string{bearer(e.StrangerT)}, 403, "no_policy", false},
		{"a lower-case method misses no route", "post", "mail.mesh", "/outbox?to=team@example.com", [][2]string{bearer(e.MailT)}, 400, engine.ReasonBadRequest, false},
		{"no verb for the method", "BREW", "docs.mesh", "/pot", [][2]string{bearer(e.OrchT)}, 403, engine.ReasonActionUnresolved, false},
		{"a path parameter", "GET", "docs.mesh", "/docs;/private/x", [][2]string{bearer(e.OrchT)}, 400, engine.ReasonBadRequest, false},
		{"dot segment", "GET", "docs.mesh", "/docs/../admin", [][2]string{bearer(e.OrchT)}, 400, engine.ReasonBadRequest, false},
		{"two credentials", "GET", "docs.mesh", "/docs", [][2]string{bearer(e.OrchT), bearer(e.MailT)}, 400, engine.ReasonBadRequest, false},
		{"two actions are ignored", "GET", "docs.mesh", "/docs", [][2]string{bearer(e.OrchT), {"x-meshguard-action", "read:docs"}, {"x-meshguard-action", "read:all"}}, 200, "rule_allow", false},
		{"oversized header", "GET", "docs.mesh", "/docs", [][2]string{bearer(e.OrchT), {"x-big", strings.Repeat("a", 33<<10)}}, 400, engine.ReasonBadRequest, false},
		{"delegated read", "GET", "docs.mesh", "/docs/plan", [][2]string{bearer(e.MailT), {"x-meshguard-delegation", e.delegT}}, 200, "rule_allow", false},
		{"delegation issued to another agent", "GET", "docs.mesh", "/docs", [][2]string{bearer(e.MailT), {"x-meshguard-delegation", e.wrongDelegT}}, 403, "delegation_actor_mismatch", false},
		{"forged delegation", "GET", "docs.mesh", "/docs", [][2]string{bearer(e.MailT), {"x-meshguard-delegation", e.forgedDelegT}}, 403, "delegation_actor_mismatch", false},
		{"an action outside a delegating agent's ceiling", "POST", "docs.mesh", "/notes/q3", [][2]string{bearer(e.ResT), {"x-meshguard-delegation", e.ceilingT}}, 403, "delegation_ceiling", false},
		{"a chain deeper than a delegating agent's maxDepth", "GET", "docs.mesh", "/docs/plan", [][2]string{bearer(e.MailT), {"x-meshguard-delegation", e.depthT}}, 403, "delegation_depth", false},
		{"a chain longer than its token allows", "GET", "docs.mesh", "/docs/plan", [][2]string{bearer(e.MailT), {"x-meshguard-delegation", e.maxChainT}}, 403, "delegation_depth", false},
		{"an action outside the token's scope", "GET", "docs.mesh", "/docs/plan", [][2]string{bearer(e.MailT), {"x-meshguard-delegation", e.scopeT}}, 403, "delegation_scope", false},
		{"a revoked agent in the chain", "GET", "docs.mesh", "/docs/plan", [][2]string{bearer(e.MailT), {"x-meshguard-delegation", e.revokedMemberT}}, 403, "delegation_revoked", false},
		{"a revoked root of the chain", "GET", "docs.mesh", "/docs/plan", [][2]string{bearer(e.MailT), {"x-meshguard-delegation", e.revokedRootT}}, 403, "delegation_revoked", false},
		{"a delegation handed on by a revoked token", "GET", "docs.mesh", "/docs/plan", [][2]string{bearer(e.MailT), {"x-meshguard-delegation", e.revokedByT}}, 403, "delegation_revoked", false},
		{"an encoded dot-dot segment", "GET", "docs.mesh", "/docs/%2e%2e/admin", [][2]string{bearer(e.OrchT)}, 400, engine.ReasonBadRequest, false},
		{"an encoded dot segment, upper case", "GET", "docs.mesh", "/docs/%2E/admin", [][2]string{bearer(e.OrchT)}, 400, engine.ReasonBadRequest, false},
		{"a half-encoded dot-dot segment", "GET", "docs.mesh", "/docs/.%2e/admin", [][2]string{bearer(e.OrchT)}, 400, engine.ReasonBadRequest, false},
		{"an encoded dot-dot segment under a route", "POST", "docs.mesh", "/publish/%2E%2e/admin", [][2]string{bearer(e.OrchT)}, 400, engine.ReasonBadRequest, false},
		{"task handed to an agent", "POST", "researcher.mesh", "/tasks", [][2]string{bearer(e.OrchT)}, 200, "rule_allow", true},
		{"rate-limited policy", "GET", "docs.mesh", "/docs", [][2]string{bearer(e.ResT)}, 200, "rule_allow", true},
	}
}

// RouteContext is the ext_authz context Envoy would send for a request,
// found the way Envoy's router finds a route in the RouteConfiguration
// MeshGuard's xDS serves: the virtual host by domain, then the first
// route whose path (exact or prefix) and :method header match. It is
// written apart from package catalog's matching, so the two check each
// other.
func (e *Env) RouteContext(method, host, path string) map[string]string {
	path, _, _ = strings.Cut(path, "?")
	for _, vh := range e.routes.GetVirtualHosts() {
		found := false
		for _, d := range vh.GetDomains() {
			found = found || strings.EqualFold(d, host)
		}
		if !found {
			continue
		}
		for _, r := range vh.GetRoutes() {
			m := r.GetMatch()
			if p := m.GetPath(); p != "" && p != path || m.GetPrefix() != "" && !strings.HasPrefix(path, m.GetPrefix()) {
				continue
			}
			if hs := m.GetHeaders(); len(hs) == 1 && hs[0].GetStringMatch().GetExact() != method {
				continue
			}
			var per extauthzv3.ExtAuthzPerRoute
			if a := r.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"]; a != nil {
				if err := a.UnmarshalTo(&per); err != nil {
					panic(err) // generated by xds.Build, validated there
				}
			}
			return per.GetCheckSettings().GetContextExtensions()
		}
	}
	return nil
}

// API serves the wasm filter's backend (filterapi, /v1/filter/*) over
// the Env on 127.0.0.1, on the router the server uses, with
// FilterCredential as ProxyName's credential.
func (e *Env) API(t testing.TB) *httptest.Server {
	t.Helper()
	return e.APIOver(t, e.F.Policies)
}

// APIOver is API with the policies p in place of the environment's (a
// loader that never loaded, say).
func (e *Env) APIOver(t testing.TB, p filterapi.Policies) *httptest.Server {
	t.Helper()
	api, err := filterapi.New(filterapi.Config{
		Engine: e.F.Engine, Agents: e.F.Store, Policies: p, Now: func() time.Time { return Now },
		Generate: e.serve, Authenticate: proxies(t).Filter, Recorder: e.F.Audit,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httpjson.NewRouter(nil)
	api.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

// proxies is an authenticator listing ProxyName with FilterCredential.
func proxies(t testing.TB) *proxyauth.Authenticator {
	t.Helper()
	file := filepath.Join(t.TempDir(), "proxies.yaml")
	doc := "proxies:\n  - {name: " + ProxyName + ", tokens: [\"" + proxyauth.Digest(FilterCredential) + "\"]}\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := proxyauth.New(proxyauth.Config{File: file, Secret: AdminToken})
	if err != nil {
		t.Fatal(err)
	}
	return a
}
