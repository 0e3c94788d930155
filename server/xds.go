package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/xds"
)

// servicesRefresh is how long a burst of changes to SERVICES_FILE is
// gathered before the catalogue is read again (SPEC §11: a change is
// pushed within 1 s).
const servicesRefresh = 100 * time.Millisecond

// xdsOptions are the resource options for Envoys reaching this server's
// gRPC listener at grpcAddr.
func xdsOptions(cfg *config.Config, grpcAddr string) (xds.Options, error) {
	addr := cfg.XDSAuthzAddress
	if addr == "" {
		_, port, err := net.SplitHostPort(grpcAddr)
		if err != nil {
			return xds.Options{}, err
		}
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return xds.Options{}, fmt.Errorf("XDS_AUTHZ_ADDRESS: %w", err)
	}
	p, _ := strconv.Atoi(port)
	return xds.Options{ListenerPort: cfg.ListenerPort, AuthzHost: host, AuthzPort: p}, nil
}

// loadServices reads SERVICES_FILE and serves its resources. On an error
// the last good catalogue stays served.
func (p *parts) loadServices(ctx context.Context, file string, o xds.Options) error {
	c := &catalog.Catalogue{}
	if file != "" {
		data, err := policy.ReadFile(file)
		if err != nil {
			return fmt.Errorf("SERVICES_FILE: %w", err)
		}
		if c, err = catalog.Parse(file, data); err != nil {
			return fmt.Errorf("SERVICES_FILE: %w", err)
		}
	}
	r, err := xds.Build(c, o)
	if err != nil {
		return err
	}
	return p.xds.Update(ctx, r)
}

// watchServices reloads SERVICES_FILE whenever its directory changes
// (editors and ConfigMaps replace files rather than write them).
func (p *parts) watchServices(ctx context.Context, file string, o xds.Options, log *slog.Logger) {
	if file == "" {
		return
	}
	err := watch(ctx, filepath.Dir(file), false, servicesRefresh, log, func(ctx context.Context) {
		if err := p.loadServices(ctx, file, o); err != nil {
			log.Error("service catalogue reload failed; the last good catalogue stays served", "error", err)
			return
		}
		log.Info("service catalogue reloaded", "file", file)
	})
	if err != nil {
		log.Error("watching SERVICES_FILE failed; catalogue changes need a restart", "error", err)
	}
}
