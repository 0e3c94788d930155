package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/xds"
)

// servicesRefresh is how long a burst of changes to SERVICES_FILE is
// gathered before the catalogue is read again (docs/xds.md: a change is
// pushed within a second).
const servicesRefresh = 100 * time.Millisecond

// xdsOptions are the resource options for Envoys reaching this server's
// gRPC listener at grpcAddr and its HTTP listener at httpAddr (unless
// XDS_AUTHZ_ADDRESS and XDS_HTTP_ADDRESS say otherwise).
func xdsOptions(cfg *config.Config, grpcAddr, httpAddr string) (xds.Options, error) {
	host, p, err := envoyAddress(cfg.XDSAuthzAddress, grpcAddr)
	if err != nil {
		return xds.Options{}, fmt.Errorf("XDS_AUTHZ_ADDRESS: %w", err)
	}
	o := xds.Options{ListenerPort: cfg.ListenerPort, AuthzHost: host, AuthzPort: p}
	if cfg.WasmFilterPath != "" {
		hh, hp, err := envoyAddress(cfg.XDSHTTPAddress, httpAddr)
		if err != nil {
			return xds.Options{}, fmt.Errorf("XDS_HTTP_ADDRESS: %w", err)
		}
		o.Wasm = &xds.Wasm{Path: cfg.WasmFilterPath, HTTPHost: hh, HTTPPort: hp}
	}
	return o, nil
}

// envoyAddress is configured, or else 127.0.0.1 and listening's port.
func envoyAddress(configured, listening string) (string, int, error) {
	addr := configured
	if addr == "" {
		_, port, err := net.SplitHostPort(listening)
		if err != nil {
			return "", 0, err
		}
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	return host, p, err
}

// serveCatalogue starts publishing for Envoys reaching MeshGuard as o
// says, and loads the catalogue: one publish, of the catalogue loaded or,
// should it not load, of the empty one.
func (p *parts) serveCatalogue(ctx context.Context, o xds.Options) error {
	p.pub.start(o)
	err := p.services.Load(ctx) // publishes what it loaded (setCatalogue)
	if err == nil {
		return nil
	}
	if perr := p.pub.regenerate(ctx); perr != nil {
		return errors.Join(err, perr)
	}
	return err
}

// watchServices watches SERVICES_FILE's directory now (editors and
// ConfigMaps replace files rather than write them) and returns the loop
// that reloads the catalogue on each change until ctx ends.
func (p *parts) watchServices(log *slog.Logger) func(context.Context) {
	file := p.services.File
	if file == "" {
		return func(context.Context) {}
	}
	w, err := newFileWatcher(file)
	if err != nil {
		log.Error("watching SERVICES_FILE failed; catalogue changes need a restart", "error", err)
		return func(context.Context) {}
	}
	return func(ctx context.Context) {
		w.run(ctx, servicesRefresh, log, func(ctx context.Context) {
			if err := p.services.Load(ctx); err != nil {
				log.Error("service catalogue reload failed; the last good catalogue stays served", "error", err)
				return
			}
			log.Info("service catalogue reloaded", "file", file)
		})
	}
}
