// Package server runs `meshguard serve`: it opens the store, loads keys and
// policies, builds the engine and its adapters, and serves HTTP and gRPC
// until its context ends, then shuts down gracefully: health reports
// NOT_SERVING, in-flight checks finish, the store closes.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/meshguard/meshguard/admin"
	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/approvalapi"
	"github.com/meshguard/meshguard/approvallink"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/catalog/registry"
	"github.com/meshguard/meshguard/checkapi"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/console"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/extauthz"
	"github.com/meshguard/meshguard/filterapi"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/agentcache"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/internal/tlsfiles"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/proxyauth"
	"github.com/meshguard/meshguard/ratelimit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/telemetry"
	"github.com/meshguard/meshguard/xds"
)

// Addrs are the addresses the server listens on, reported once it serves.
type Addrs struct {
	HTTP, GRPC string
}

// Options are what Run needs beyond the configuration.
type Options struct {
	Logger *slog.Logger
	// Ready, if set, receives the listening addresses once both ports are
	// open (tests use port 0).
	Ready chan<- Addrs
	// Announce prints a line for the operator (the generated admin token).
	Announce func(string)
	// KeyReload is how often keys are re-read from the store and pruned.
	// On PostgreSQL a rotation made on another replica arrives at once
	// through the store's change feed; this is the safety net should the
	// feed be down (identity.RetiredKeyGrace requires well under five
	// minutes). Zero means 30 s.
	KeyReload time.Duration
	// RevokedReload is how often, on PostgreSQL, the revoked tokens are
	// read again: the safety net should the change feed be down. Zero
	// means 5 s.
	RevokedReload time.Duration
	// ShutdownGrace bounds how long in-flight requests may take to finish.
	// Zero means 20 s.
	ShutdownGrace time.Duration
	// Getenv reads the OTEL_* variables that configure tracing (os.Getenv
	// in serve); nil reads none, and no span is exported.
	Getenv func(string) string
	// Version is reported as the service.version of MeshGuard's spans.
	Version string
}

// Run serves until ctx ends, then shuts down gracefully. A configuration or
// start-up problem is returned before anything is served.
func Run(ctx context.Context, cfg *config.Config, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.KeyReload <= 0 {
		o.KeyReload = 30 * time.Second
	}
	if o.RevokedReload <= 0 {
		o.RevokedReload = 5 * time.Second
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 20 * time.Second
	}
	s, err := build(ctx, cfg, o, log)
	if err != nil {
		return err
	}
	defer s.close()
	return s.serve(ctx, cfg, o, log)
}

// backend is what the server needs of its store: *store.SQLite, or
// *store.Postgres when DATABASE_URL is set.
type backend interface {
	admin.Store
	admin.PolicyLister
	admin.AuditLog
	identity.KeyStore
	agentcache.Source
	audit.Store
	audit.Pruner
	audit.ApprovalPruner
	registry.Store
	alert.Outbox
	admin.RevocationStore
	engine.Approvals
	approvalapi.Store // covers approvallink.Approvals
	Secret(ctx context.Context, name string, size int) ([]byte, error)
	console.AuditLog
	CountOutbox(ctx context.Context) (map[string]int, error)
	CountActiveAgents(ctx context.Context) (int64, error)
	Close() error
}

var (
	_ backend = (*store.SQLite)(nil)
	_ backend = (*store.Postgres)(nil)
)

// parts is everything Run builds.
type parts struct {
	db       backend
	pg       *store.Postgres // db, when it is PostgreSQL
	shared   *ratelimit.Shared
	agents   *agentcache.Cache
	audit    *audit.Writer
	keys     *identity.Keys
	cached   *identity.CachedVerifier
	revoked  *identity.RevokedSet // the verifier's revoked tokens
	loader   *policy.Loader
	policies string
	router   *httpjson.Router // behind http; tests list its routes
	http     http.Handler
	grpc     *grpc.Server
	health   *health.Server
	tracing  *telemetry.Tracing
	metrics  *telemetry.Metrics
	xds      *xds.Server
	services *registry.Registry
	pub      *publisher
	alerts   *alert.Dispatcher // nil: no provider configured

	// approvals answers and waits for human approvals; tests count its waiters.
	approvals *approvalapi.Service
	// adminToken is the admin token in force; the wasm filters'
	// credentials are keyed by it.
	adminToken string
	tls        *tlsfiles.Reloader // nil: no TLS
	proxies    *proxyauth.Authenticator
	// checkpoints signs the trail's heads (nil with the trail off).
	checkpoints *audit.Checkpointer
	// The watchers of PROXIES_FILE and POLICIES_DIR, registered before
	// build reads them (nil: not watched); serve runs their loops.
	proxyWatch, policyWatch *dirWatcher
	// feed listens on the store's change feeds (PostgreSQL only) from
	// before build first reads the database; watchStore delivers them.
	feed *store.Listener
}

// close releases what build opened. On the serving path the audit writer
// was closed (and flushed) already; this covers a failed start.
func (p *parts) close() {
	p.proxyWatch.close()
	p.policyWatch.close()
	if p.feed != nil {
		p.feed.Close()
	}
	if p.audit != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = p.audit.Close(ctx)
		cancel()
	}
	if p.tracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = p.tracing.Shutdown(ctx)
		cancel()
	}
	if p.shared != nil {
		_ = p.shared.Close()
	}
	if p.db != nil {
		_ = p.db.Close()
	}
}

func build(ctx context.Context, cfg *config.Config, o Options, log *slog.Logger) (*parts, error) {
	p := &parts{policies: cfg.PoliciesDir}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("DATA_DIR %s: %w", cfg.DataDir, err)
	}
	if err := p.openStore(ctx, cfg); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			p.close()
		}
	}()
	if err := p.listenStore(ctx); err != nil {
		return nil, err
	}

	token, created, err := adminToken(cfg.AdminToken, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	p.adminToken = token
	if err := p.buildControlPlaneAuth(cfg, token, log); err != nil {
		return nil, err
	}
	switch {
	case o.Announce == nil:
	case created:
		o.Announce("Generated an admin token (stored in " + filepath.Join(cfg.DataDir, adminTokenFile) + ", shown once):\n  " + token)
	case cfg.AdminToken == "":
		// A later start: say where the token is, never the token.
		o.Announce("The admin token is in " + filepath.Join(cfg.DataDir, adminTokenFile) + " (generated at the first start; ADMIN_TOKEN sets one).")
	}

	if p.keys, err = identity.NewKeys(p.db, identity.KeysConfig{}); err != nil {
		return nil, err
	}
	if err := p.keys.EnsureKey(ctx, identity.AlgEdDSA); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	issuer, err := identity.NewIssuer(identity.IssuerConfig{Keys: p.keys})
	if err != nil {
		return nil, err
	}
	agents := agentcache.New(p.db, 0, 0, nil)
	p.agents = agents
	if err := p.loadRevoked(ctx); err != nil {
		return nil, err
	}
	vcfg := identity.VerifierConfig{Keys: p.keys, Agents: agents, Revoked: p.revoked}
	if cfg.JWTSecret != "" {
		vcfg.HS256Secret = []byte(cfg.JWTSecret)
	}
	verifier, err := identity.NewVerifier(vcfg)
	if err != nil {
		return nil, err
	}
	ccfg := identity.CacheConfig{}
	if p.pg != nil {
		// Other replicas' changes arrive through watchStore at once; should
		// that feed be down, verifications still expire as fast as cached
		// agents do, so a revocation never takes longer than 1 s
		// (docs/storage.md).
		ccfg.MaxAge = agentcache.DefaultTTL
	}
	p.cached = identity.NewCachedVerifier(verifier, ccfg)

	if err := ensureDir(cfg.PoliciesDir, log); err != nil {
		return nil, err
	}
	p.policyWatch = watchPoliciesDir(cfg.PoliciesDir, log)
	files := policy.Dir(cfg.PoliciesDir)
	p.loader = policy.NewLoader(files, admin.NewStoredPolicies(p.db))
	if set, err := p.loader.Reload(ctx); err != nil {
		// Fail closed, but serve: /ready says what is wrong and the
		// watcher loads the files once they are fixed.
		log.Error("policies did not load; every request is denied until they do", "error", err)
	} else {
		log.Info("policies loaded", "policies", set.Len(), "revision", set.Revision())
	}

	if err := p.buildTelemetry(ctx, cfg, o, log); err != nil {
		return nil, err
	}
	signer, err := linkSigner(ctx, cfg, p.db)
	if err != nil {
		return nil, err
	}
	var links alert.LinkFunc
	if signer != nil {
		links = signedLinks(signer)
	}
	var providers []alert.Provider
	if p.alerts, providers, err = p.buildAlerts(cfg, links, log); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	warnUnannounced(p.loader.Current(), p.alerts, log)
	var raiser *alert.Raiser // nil: no provider, nothing raised
	if p.alerts != nil {
		// ALERT_ON decides which decisions and failures raise alerts.
		if raiser, err = alert.NewRaiser(alert.RaiserConfig{Dispatcher: p.alerts, On: cfg.Alerts.On,
			Origin: alert.Origin{Instance: cfg.Alerts.Instance, Environment: cfg.Alerts.Environment}}); err != nil {
			return nil, fmt.Errorf("alerts: %w", err)
		}
	}
	var recorder engine.Recorder // a nil *audit.Writer must not become a non-nil interface
	if cfg.AuditEnabled {
		journal, err := p.auditJournal(ctx, cfg, log)
		if err != nil {
			return nil, fmt.Errorf("audit trail: %w", err)
		}
		alarms := newAuditAlarms(p.metrics, raiser)
		if p.audit, err = audit.NewWriter(ctx, p.db, audit.WriterConfig{
			FlushInterval: time.Duration(cfg.AuditFlushMs) * time.Millisecond, Logger: log,
			MaxLag:   time.Duration(cfg.AuditMaxLagMs) * time.Millisecond,
			OnStored: p.metrics.AuditWritten, OnGap: alarms.gap, OnDeadLetter: alarms.deadLetter, Journal: journal,
			Arguments: audit.ArgumentsConfig{Record: cfg.AuditArguments, Redact: cfg.AuditRedact},
		}); err != nil {
			return nil, fmt.Errorf("audit trail: %w", err)
		}
		recorder = p.audit
		if p.checkpoints, err = p.buildCheckpoints(cfg, p.tracing.Tracer(), log); err != nil {
			return nil, fmt.Errorf("audit trail: %w", err)
		}
		p.metrics.Gauge("meshguard_audit_queue_depth", "Audit records decided and not yet stored.",
			func() float64 { return float64(p.audit.Pending()) })
	} else {
		log.Warn("the audit trail is off (AUDIT_ENABLED=false): decisions are not recorded")
	}
	var observer engine.Observer = p.metrics
	if raiser != nil {
		recorder, observer = raiser.Recorder(recorder), raiser.Observer(observer)
	}
	var limiter engine.Limiter = ratelimit.NewMemory(nil, 0)
	if p.pg != nil {
		// Replicas share limits; each counts under its audit chain's
		// name, which no other process has.
		if p.shared, err = ratelimit.NewShared(p.pg, ratelimit.SharedConfig{Replica: p.pg.AuditChain(), Logger: log}); err != nil {
			return nil, fmt.Errorf("rate limits: %w", err)
		}
		limiter = p.shared
	}
	eng, err := engine.New(engine.Config{
		Mode: cfg.Mode, Answer: cfg.Answer, Tokens: p.cached, Delegations: p.cached, Delegator: issuer,
		Agents: agents, Names: p.db, Policies: p.loader, Limiter: limiter, Recorder: recorder, Routes: cfg.Routes,
		Tracer: p.tracing.CheckTracer(), Observer: observer,
		DenialTracer: p.tracing.DenialTracer(), WithSpanIDs: telemetry.WithSpanIDs,
		Approvals: p.db, ApprovalPendingTTL: cfg.ApprovalPendingTTL,
		ApprovalNotifier: &approvalNotifier{log: log, alerts: p.alerts, names: agentNames(agents),
			origin: alert.Origin{Instance: cfg.Alerts.Instance, Environment: cfg.Alerts.Environment}},
		ApprovalArguments: audit.ArgumentsConfig{Record: cfg.AuditArguments, Redact: cfg.AuditRedact},
	})
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}

	p.xds = xds.NewServer(ctx, log)
	p.pub = newPublisher(publishInputs{XDS: p.xds, Keys: p.keys, Agents: p.db, Policies: p.loader,
		Revoked: p.revoked, Placeholder: p.proxies.Placeholder}, cfg, log)
	p.services = &registry.Registry{File: cfg.ServicesFile, Store: p.db, Changed: p.pub.setCatalogue}
	p.metrics.Gauge("meshguard_xds_clients", "Envoys and proxyless gRPC clients with an open xDS stream.",
		func() float64 { return float64(p.xds.Connected()) })
	// One router holds every route of the main port: the enforcement
	// points checkapi and filterapi and the admin API each register theirs.
	p.router = httpjson.NewRouter(log)
	checks, err := checkapi.New(eng, log)
	if err != nil {
		return nil, fmt.Errorf("check API: %w", err)
	}
	// Human approvals: answered by the admin API, followed and waited for
	// by agents (approvalapi). Straight to the trail: an approver's denial
	// is no request denied, and must not raise a deny alert.
	var approvalRec approvalapi.Recorder
	if p.audit != nil {
		approvalRec = p.audit
	}
	if p.approvals, err = approvalapi.New(ctx, approvalapi.Config{Store: p.db, Recorder: approvalRec, Logger: log}); err != nil {
		return nil, fmt.Errorf("approvals: %w", err)
	}
	p.metrics.Gauge("meshguard_approval_waiters", "Callers waiting for a human approval to be decided (long polls).",
		func() float64 { return float64(p.approvals.Waiters()) })
	approvalsAPI, err := approvalapi.NewAPI(p.approvals, p.cached, token, log)
	if err != nil {
		return nil, fmt.Errorf("approvals: %w", err)
	}
	approvalsAPI.Register(p.router)
	checks.WithApprovals(p.approvals).Register(p.router)
	filters, err := filterapi.New(filterapi.Config{Engine: eng, Agents: p.db, Policies: p.loader,
		Generate: p.pub.filterConfig, Authenticate: p.proxies.Filter, Recorder: recorder, Observer: observer, Dropped: p.metrics.FilterDropped, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("filter API: %w", err)
	}
	filters.Register(p.router)
	api, err := admin.New(admin.Config{
		Store: p.db, Keys: p.keys, Issuer: issuer, Verifier: verifier, Tokens: p.cached, Agents: agents,
		Policies: p.loader, PolicyFiles: files, Audit: p.db, Checkpoints: checkpoints(p.checkpoints), Metrics: p.metrics.Handler(), XDS: p.xds, Services: p.services, AdminToken: token,
		Alerts:       &alertsAdmin{cfg: &cfg.Alerts, providers: providers, outbox: p.db},
		Revocations:  &admin.Revocations{Store: p.db, List: p.revoked},
		FilterConfig: filters.ConfigHandler(),
		// Agents, keys and policies are in the wasm filter's configuration.
		OnChange: func(admin.Change) { p.pub.changed() },
		Ready: func(ctx context.Context) error {
			if p.audit != nil {
				if err := p.audit.Err(); err != nil {
					return fmt.Errorf("audit trail: %w", err)
				}
			}
			_, err := p.db.ListKeys(ctx)
			return err
		},
		Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	api.Register(p.router)
	if err := p.buildConsole(ctx, cfg, api, limiter, log); err != nil {
		return nil, err
	}
	if signer != nil {
		// The signed one-time links of approval notifications.
		linkPages, err := approvallink.New(approvallink.Config{Signer: signer, Approvals: p.db, Decider: linkDecider{p.approvals},
			Limiter: limiter, Names: agentNames(agents), Logger: log})
		if err != nil {
			return nil, err
		}
		linkPages.Register(p.router)
	}
	// The admin API and /v1 read small JSON bodies: they get a read deadline
	// so a slow client cannot hold a connection open. The gateway streams
	// bodies of any length and is mounted beside them, not behind it.
	root := withReadDeadline(p.router, apiReadTimeout)
	var gw http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"unavailable","message":"the gateway is off: set PROXY_TARGET to the upstream URL, or PROXY_SERVICES=true"}` + "\n"))
	})
	if cfg.ProxyServices {
		// The catalogue's services, as served to Envoys (docs/gateway.md).
		if gw, err = gateway.New(gateway.Config{Checker: eng, Services: p.pub, Limiter: limiter, RPM: cfg.RateLimitRPM, Logger: log}); err != nil {
			return nil, fmt.Errorf("PROXY_SERVICES: %w", err)
		}
	} else if cfg.ProxyTarget != "" {
		target, err := url.Parse(cfg.ProxyTarget)
		if err != nil {
			return nil, fmt.Errorf("PROXY_TARGET: %w", err)
		}
		if gw, err = gateway.New(gateway.Config{Checker: eng, Target: target, Limiter: limiter, RPM: cfg.RateLimitRPM, Logger: log}); err != nil {
			return nil, fmt.Errorf("PROXY_TARGET: %w", err)
		}
	}
	// Both adapters take their paths before any mux sees them: a ServeMux
	// answers /proxy and unclean paths with redirects, which would reach the
	// caller undecided.
	p.http = extauthz.Mount(edge.Mount(gateway.Prefix, gw, root), extauthz.NewHTTPHandler(eng, log))

	p.grpc = grpc.NewServer(append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxGRPCMessage),
		grpc.MaxConcurrentStreams(maxGRPCStreams),
		grpc.NumStreamWorkers(grpcStreamWorkers),
		p.xds.ServerOption(), // a push sends each version's encoding to every stream
	}, p.grpcOptions(cfg)...)...)
	extauthz.NewServer(eng, log).TrustPrincipalsFrom(p.proxies.Vouches).Register(p.grpc)
	p.xds.Register(p.grpc)
	p.health = health.NewServer()
	healthpb.RegisterHealthServer(p.grpc, p.health)
	reflection.Register(p.grpc)
	ok = true
	return p, nil
}
