package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/internal/tlsfiles"
	"github.com/meshguard/meshguard/proxyauth"
)

// buildControlPlaneAuth reads the TLS files and PROXIES_FILE: who may
// reach the ports, and which proxies may read the xDS configuration and
// call the wasm filter's endpoints. PROXIES_FILE is watched before it is
// read (watchFile).
func (p *parts) buildControlPlaneAuth(cfg *config.Config, adminToken string, log *slog.Logger) error {
	var err error
	p.proxyWatch = watchFile(cfg.ProxyAuth.ProxiesFile, "PROXIES_FILE", log)
	if cfg.TLS.Enabled() {
		p.tls, err = tlsfiles.New(tlsfiles.Files{Cert: cfg.TLS.CertFile, Key: cfg.TLS.KeyFile, ClientCA: cfg.TLS.ClientCAFile, ClientCertOptional: cfg.TLS.ClientCertOptional}, log)
		if err != nil {
			return fmt.Errorf("TLS_CERT_FILE: %w", err)
		}
	}
	p.proxies, err = proxyauth.New(proxyauth.Config{
		File: cfg.ProxyAuth.ProxiesFile, Secret: adminToken,
		InsecureAllowUnauthenticated: cfg.ProxyAuth.InsecureAllowUnauthenticated, Logger: log,
	})
	if err != nil {
		return err
	}
	switch {
	case cfg.ProxyAuth.InsecureAllowUnauthenticated:
		log.Warn("XDS_INSECURE_ALLOW_UNAUTHENTICATED is set: ANYONE WHO REACHES THE gRPC PORT CAN READ THE xDS CONFIGURATION AND GET A WASM FILTER CREDENTIAL. Development only.")
	case p.proxies.Len() == 0:
		log.Info("xds: no proxy is listed (PROXIES_FILE): every xDS stream is refused")
	}
	// TLS_PORTS defaults to grpc, so cfg.TLS.GRPC alone says nothing
	// without a certificate: ask what grpcOptions will actually serve.
	if p.proxies.Len() > 0 && !p.grpcTLS(cfg) {
		log.Warn("xds: the gRPC port is not TLS: proxies' bearer credentials cross the network in the clear (set TLS_CERT_FILE and TLS_KEY_FILE)")
	}
	return nil
}

// grpcOptions are the gRPC server's TLS and the interceptors that guard
// the discovery services.
func (p *parts) grpcOptions(cfg *config.Config) []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(p.proxies.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(p.proxies.StreamInterceptor()),
	}
	if p.grpcTLS(cfg) {
		opts = append(opts, grpc.Creds(credentials.NewTLS(p.tls.ServerConfig("h2"))))
	}
	return opts
}

// grpcTLS says whether the gRPC port serves TLS: a certificate is loaded
// and TLS_PORTS names grpc.
func (p *parts) grpcTLS(cfg *config.Config) bool { return p.tls != nil && cfg.TLS.GRPC }

// httpListener is lis with TLS when TLS_PORTS says so, else with net/http's
// own answers made JSON (jsonErrorsListener).
func (p *parts) httpListener(cfg *config.Config, lis net.Listener) net.Listener {
	if p.tls == nil || !cfg.TLS.HTTP {
		return jsonErrorsListener{lis}
	}
	// net/http must see the *tls.Conn itself (for Request.TLS and HTTP/2),
	// so its own few plain-text answers (jsonErrorsListener) stay plain
	// text under TLS: they are written inside the encrypted stream.
	return tls.NewListener(lis, p.tls.ServerConfig("h2", "http/1.1"))
}

// proxyReloads is the loop that reloads PROXIES_FILE on each change the
// watcher registered before build read it sees, until ctx ends: a proxy
// removed is refused from then on, and its open streams and its filter
// credentials at once.
func (p *parts) proxyReloads(log *slog.Logger) func(context.Context) {
	if p.proxyWatch == nil {
		return func(context.Context) {}
	}
	reload := func(context.Context) {
		if err := p.proxies.Reload(); err != nil {
			log.Error("PROXIES_FILE reload failed; the last good list stays in force", "error", err)
			return
		}
		log.Info("PROXIES_FILE reloaded", "proxies", p.proxies.Len())
	}
	return func(ctx context.Context) { p.proxyWatch.run(ctx, servicesRefresh, log, reload) }
}
