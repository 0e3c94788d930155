package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/config"
)

// apiReadTimeout bounds how long a client may take to send an API request
// (headers are bounded separately by ReadHeaderTimeout).
const apiReadTimeout = 30 * time.Second

// withReadDeadline sets a per-request read deadline.
func withReadDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Not every ResponseWriter supports deadlines (httptest's does
		// not); the server's does, and that is where it matters.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		h.ServeHTTP(w, r)
	})
}

// gRPC bounds. A CheckRequest at every bound extauthz checks (96 KiB of
// headers, 64 context extensions of 32 KiB) is over 2 MiB: a message of
// 4 MiB (gRPC's default) holds it, so such a request gets the documented
// 400 naming the bound, not RESOURCE_EXHAUSTED.
const (
	maxGRPCMessage = 4 << 20
	maxGRPCStreams = 1024
	// grpcStreamWorkers reuse goroutines across Checks: a fresh goroutine
	// starts on a 2 KB stack and grows it, copying, part way through every
	// decision (runtime.newstack was ~12% of the server's CPU under load).
	// grpc-go falls back to a new goroutine when every worker is busy, so
	// there are enough for a busy proxy fleet's concurrency.
	grpcStreamWorkers = 128
)

// ensureDir creates a missing policy directory: a first start with no
// policies serves (denying everything) rather than refusing to start.
func ensureDir(dir string, log *slog.Logger) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		log.Warn("POLICIES_DIR does not exist; creating it empty: every request is denied (no_policy) until policies are added", "dir", dir)
		return os.MkdirAll(dir, 0o755)
	case err != nil:
		return fmt.Errorf("POLICIES_DIR: %w", err)
	case !st.IsDir():
		return fmt.Errorf("POLICIES_DIR %s is not a directory", dir)
	}
	return nil
}

func (p *parts) serve(ctx context.Context, cfg *config.Config, o Options, log *slog.Logger) error {
	lc := net.ListenConfig{}
	httpLis, err := lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("PORT: %w", err)
	}
	grpcLis, err := lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.GRPCPort)))
	if err != nil {
		_ = httpLis.Close()
		return fmt.Errorf("GRPC_PORT: %w", err)
	}
	hs := &http.Server{
		Handler:           p.http,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	xo, err := xdsOptions(cfg, grpcLis.Addr().String(), httpLis.Addr().String())
	if err != nil {
		_ = httpLis.Close()
		_ = grpcLis.Close()
		return err
	}
	// SERVICES_FILE is watched before its first load, so no change is
	// missed between the two.
	watchServices := p.watchServices(log)
	if err := p.serveCatalogue(ctx, xo); err != nil {
		// Like a broken policy file: serve, say so, and load the file once
		// it is fixed. Envoys get no services meanwhile.
		log.Error("the service catalogue did not load; Envoys get no services until it does", "error", err)
	}
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { p.pub.run(bg) })
	if p.alerts != nil {
		wg.Go(func() { p.alerts.Run(bg) })
	}
	// The watchers of PROXIES_FILE and POLICIES_DIR were registered before
	// build read the files: a change made since is queued for their loops,
	// however late these start.
	wg.Go(func() { watchServices(bg) })
	wg.Go(func() { p.proxyReloads(log)(bg) })
	wg.Go(func() {
		policyReloads(p.policyWatch, signalling{p.loader, p.pub.changed}, 100*time.Millisecond, log)(bg)
	})
	wg.Add(4)
	go func() { defer wg.Done(); errs <- ignoreClosed(hs.Serve(p.httpListener(cfg, httpLis))) }()
	go func() { defer wg.Done(); errs <- p.grpc.Serve(grpcLis) }()
	go func() { defer wg.Done(); p.refreshKeys(bg, o.KeyReload, log) }()
	go func() { defer wg.Done(); p.watchStore(bg, o.RevokedReload, log) }()
	// Retention runs on every replica: pruning is one transaction, so two
	// replicas pruning at once delete each record once.
	ret := audit.Retention{Store: p.db, Days: cfg.AuditRetentionDays, Approvals: p.db, ApprovalsAfter: cfg.ApprovalRetention, Logger: log}
	wg.Go(func() { ret.Run(bg) })
	if p.checkpoints != nil {
		wg.Go(func() { p.checkpoints.Run(bg) })
	}
	p.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	log.Info("meshguard serving", "http", httpLis.Addr().String(), "grpc", grpcLis.Addr().String(), "mode", cfg.Mode)
	if o.Ready != nil {
		o.Ready <- Addrs{HTTP: httpLis.Addr().String(), GRPC: grpcLis.Addr().String()}
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errs:
	}
	// Shut down: stop taking new work, let in-flight checks finish.
	log.Info("meshguard shutting down")
	p.health.Shutdown()
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownGrace)
	defer cancel()
	stopped := make(chan struct{})
	go func() { p.grpc.GracefulStop(); close(stopped) }()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("HTTP shutdown", "error", err)
	}
	select {
	case <-stopped:
	case <-sctx.Done():
		p.grpc.Stop()
	}
	// Every decision given is durable before the process says it is done.
	if p.audit != nil {
		if err := p.audit.Close(sctx); err != nil {
			log.Error("audit records were not all written before shutdown", "error", err)
			if serveErr == nil {
				serveErr = err
			}
		}
	}
	// The last heads, signed: records cut from the end while it is down
	// are caught.
	if p.checkpoints != nil {
		if _, err := p.checkpoints.Sign(sctx); err != nil {
			log.Error("the audit checkpoint at shutdown failed", "error", err)
		}
	}
	if err := p.tracing.Shutdown(sctx); err != nil {
		log.Warn("spans were not all exported before shutdown", "error", err)
	}
	p.tracing = nil
	stopBG()
	wg.Wait()
	return serveErr
}

// refreshKeys re-reads keys so rotations made elsewhere take effect, and
// prunes keys whose verification window has closed.
func (p *parts) refreshKeys(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.keys.Reload(ctx); err != nil {
				log.Warn("reloading signing keys", "error", err)
				continue
			}
			p.pub.changed() // the JWKS of the wasm filter's configuration
			pruned, err := p.keys.Prune(ctx)
			if err != nil {
				log.Warn("pruning signing keys", "error", err)
			}
			for _, kid := range pruned {
				p.cached.InvalidateKey(kid)
			}
		}
	}
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
