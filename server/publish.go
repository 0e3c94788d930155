package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/xds"
)

// publishEvery is how often the publisher regenerates even without a
// signal: a safety net for changes no signal reports (a key retired on
// another replica, an agent changed there while LISTEN was down). The xDS
// server pushes only what changed, so a quiet mesh sees nothing.
const publishEvery = 10 * time.Second

// publisher keeps the xDS resources current: the catalogue's, and, with
// WASM_FILTER_PATH, the wasm filter's configuration, which also depends on
// agents, keys and policies. Every change signals it; it regenerates at
// once (within a second).
type publisher struct {
	in   publishInputs
	cfg  *config.Config
	log  *slog.Logger
	kick chan struct{}

	mu        sync.Mutex
	opts      xds.Options
	ready     bool // opts are set: the listeners' addresses are known
	catalogue *catalog.Catalogue
	// byName is the catalogue served, by service name, for the gateway
	// (PROXY_SERVICES): read on every request without the lock.
	byName atomic.Pointer[map[string]*catalog.Service]

	// The wasm filter's configuration last generated, and when: filters
	// that fetch it (every worker of every sidecar, every few seconds)
	// are served this copy while it is fresh, not a new agent scan each.
	genMu    sync.Mutex
	doc      []byte
	revision string
	at       time.Time
}

// publishInputs is what the publisher reads and where it publishes, passed
// in explicitly so it depends on these and nothing else of the server.
type publishInputs struct {
	// XDS serves the resources (xds.Server).
	XDS interface {
		Update(ctx context.Context, r *xds.Resources) error
	}
	// Keys gives the JWKS of the wasm filter's configuration (identity.Keys).
	Keys interface{ JWKS() ([]byte, error) }
	// Agents lists the agents (the store).
	Agents agentLister
	// Policies is the policy set in force (policy.Loader).
	Policies interface{ Current() *policy.Set }
	// Revoked lists the revoked tokens still live (identity.RevokedSet).
	Revoked interface {
		Live() []identity.RevokedToken
	}
	// Placeholder is the credential placeholder each xDS stream replaces
	// with its proxy's own (proxyauth.Authenticator).
	Placeholder func() string
}

// fetchedFresh is how long a generated configuration is served to fetching
// filters before it is generated again (changes also regenerate it).
const fetchedFresh = time.Second

func newPublisher(in publishInputs, cfg *config.Config, log *slog.Logger) *publisher {
	return &publisher{in: in, cfg: cfg, log: log, kick: make(chan struct{}, 1), catalogue: &catalog.Catalogue{}}
}

// changed asks for a regeneration; it never blocks.
func (pub *publisher) changed() {
	select {
	case pub.kick <- struct{}{}:
	default:
	}
}

// setCatalogue is the registry's Changed: the new catalogue is served, or
// the error says why not (and the registry keeps the last good one).
func (pub *publisher) setCatalogue(ctx context.Context, c *catalog.Catalogue) error {
	pub.mu.Lock()
	defer pub.mu.Unlock()
	prev := pub.catalogue
	pub.catalogue = c
	if err := pub.publishLocked(ctx); err != nil {
		pub.catalogue = prev
		return err
	}
	byName := make(map[string]*catalog.Service, len(c.Services))
	for i := range c.Services {
		byName[c.Services[i].Name] = &c.Services[i]
	}
	pub.byName.Store(&byName)
	return nil
}

// Service returns the served catalogue's service named name: the
// gateway's view of the catalogue (gateway.Services).
func (pub *publisher) Service(name string) (*catalog.Service, bool) {
	m := pub.byName.Load()
	if m == nil {
		return nil, false
	}
	s, ok := (*m)[name]
	return s, ok
}

// start sets where Envoys reach this server; the catalogue's first load
// (serveCatalogue) publishes.
func (pub *publisher) start(o xds.Options) {
	pub.mu.Lock()
	defer pub.mu.Unlock()
	pub.opts, pub.ready = o, true
}

// run regenerates on every signal and every publishEvery until ctx ends.
func (pub *publisher) run(ctx context.Context) {
	t := time.NewTicker(publishEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pub.kick:
		case <-t.C:
		}
		if err := pub.regenerate(ctx); err != nil && ctx.Err() == nil {
			pub.log.Error("xds: regenerating the resources failed; Envoys keep the last ones", "error", err)
		}
	}
}

// regenerate is one round of run: the resources are built again and
// handed to the xDS server, which makes a new version only if they differ.
func (pub *publisher) regenerate(ctx context.Context) error {
	pub.mu.Lock()
	defer pub.mu.Unlock()
	return pub.publishLocked(ctx)
}

func (pub *publisher) publishLocked(ctx context.Context) error {
	if !pub.ready {
		return nil
	}
	o := pub.opts
	if pub.cfg.WasmFilterPath != "" {
		conf, _, err := pub.generate(ctx, pub.catalogue)
		if err != nil {
			return err
		}
		w := *o.Wasm
		w.Config = conf
		o.Wasm = &w
	}
	r, err := xds.Build(pub.catalogue, o)
	if err != nil {
		return err
	}
	if err := pub.secureClusters(r, o); err != nil {
		return err
	}
	return pub.in.XDS.Update(ctx, r)
}

// secureClusters makes the clusters back to MeshGuard's TLS ports speak
// TLS (and present the Envoys' certificate with mTLS).
func (pub *publisher) secureClusters(r *xds.Resources, o xds.Options) error {
	t := pub.cfg.TLS
	if !t.Enabled() {
		return nil
	}
	up := xds.UpstreamTLS{CAFile: t.EnvoyCAFile, CertFile: t.EnvoyCertFile, KeyFile: t.EnvoyKeyFile}
	if t.GRPC {
		up.Host = o.AuthzHost
		if err := r.SecureMeshGuardClusters(&up, xds.AuthzCluster); err != nil {
			return err
		}
	}
	if t.HTTP && o.Wasm != nil {
		up.Host = o.Wasm.HTTPHost
		return r.SecureMeshGuardClusters(&up, xds.HTTPCluster)
	}
	return nil
}

// filterConfig is the wasm filter's configuration in force and its
// revision (GET /v1/filter/config).
func (pub *publisher) filterConfig(ctx context.Context) ([]byte, string, error) {
	pub.genMu.Lock()
	if pub.doc != nil && time.Since(pub.at) < fetchedFresh {
		defer pub.genMu.Unlock()
		return pub.doc, pub.revision, nil
	}
	pub.genMu.Unlock()
	pub.mu.Lock()
	c := pub.catalogue
	pub.mu.Unlock()
	return pub.generate(ctx, c)
}

// generate writes the wasm filter's configuration for the catalogue c and
// the agents, keys and policies in force. When that fails (the store is
// down), the last configuration generated stands in, so a catalogue change
// still reaches the Envoys; with none yet, the error is returned.
func (pub *publisher) generate(ctx context.Context, c *catalog.Catalogue) ([]byte, string, error) {
	doc, rev, err := pub.render(ctx, c)
	pub.genMu.Lock()
	defer pub.genMu.Unlock()
	if err != nil {
		if pub.doc == nil {
			return nil, "", err
		}
		pub.log.Error("generating the wasm filter's configuration failed; the last one stays", "error", err, "revision", pub.revision)
		return pub.doc, pub.revision, nil
	}
	pub.doc, pub.revision, pub.at = doc, rev, time.Now()
	return doc, rev, nil
}

func (pub *publisher) render(ctx context.Context, c *catalog.Catalogue) ([]byte, string, error) {
	jwks, err := pub.in.Keys.JWKS()
	if err != nil {
		return nil, "", fmt.Errorf("filter configuration: %w", err)
	}
	agents, err := allAgents(ctx, pub.in.Agents)
	if err != nil {
		return nil, "", fmt.Errorf("filter configuration: %w", err)
	}
	var policies []*policy.Policy
	if set := pub.in.Policies.Current(); set != nil {
		policies = set.Policies()
	}
	return filterconfig.Generate(filterconfig.Inputs{
		Mode: pub.cfg.Mode, Answer: pub.cfg.Answer, JWKS: jwks, HS256: pub.cfg.JWTSecret != "", Agents: agents, Policies: policies,
		RevokedTokens: pub.in.Revoked.Live(),
		Routes:        pub.cfg.Routes, Catalogue: c,
		// Each xDS stream gets its own proxy's credential in place of the
		// placeholder (proxyauth's interceptor); a fetching filter uses
		// the credential of its source.
		MeshGuard: filterconfig.Upstream{Cluster: xds.HTTPCluster, Token: pub.in.Placeholder()},
	})
}

// agentLister is the store's agent listing.
type agentLister interface {
	ListAgents(ctx context.Context, f store.AgentFilter) ([]identity.Agent, error)
}

// allAgents lists every agent, page by page.
func allAgents(ctx context.Context, db agentLister) ([]identity.Agent, error) {
	var out []identity.Agent
	after := ""
	for {
		page, err := db.ListAgents(ctx, store.AgentFilter{After: after, Limit: store.MaxListLimit})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < store.MaxListLimit {
			return out, nil
		}
		after = page[len(page)-1].Name
		if len(out) > filterconfig.MaxAgents {
			return nil, fmt.Errorf("more than %d agents: the wasm filter's configuration cannot hold them", filterconfig.MaxAgents)
		}
	}
}
