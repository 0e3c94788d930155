package server

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/internal/tlsfiles/tlstest"
)

// TestPlaintextCredentialWarning: serve warns at start when listed proxies
// would send their bearer credentials over a gRPC port without TLS — with
// the configuration's defaults too, where TLS_PORTS is "grpc" but no
// certificate is set — and stays quiet when the gRPC port serves TLS or
// no proxy is listed.
func TestPlaintextCredentialWarning(t *testing.T) {
	ca := tlstest.NewCA(t, "mesh CA")
	files := ca.WriteServer(t, tlstest.Loopback("meshguard-1"))
	for _, tc := range []struct {
		name   string
		mutate func(*config.Config)
		warn   bool
	}{
		{"the defaults: no certificate, a listed proxy", nil, true},
		{"a certificate on the HTTP port only", func(c *config.Config) {
			c.TLS.CertFile, c.TLS.KeyFile, c.TLS.GRPC, c.TLS.HTTP = files.Cert, files.Key, false, true
		}, true},
		{"a certificate on the gRPC port", func(c *config.Config) {
			c.TLS.CertFile, c.TLS.KeyFile = files.Cert, files.Key
		}, false},
		{"no proxy listed", func(c *config.Config) { c.ProxyAuth.ProxiesFile = "" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := newLogEvents()
			cfg := configWith(t, tc.mutate)
			// Ready is sent after start-up logging: every start line is in.
			runWith(t, cfg, Options{Logger: slog.New(logs)})
			warned := false
			logs.store.mu.Lock()
			for _, l := range logs.store.lines {
				if l.level == slog.LevelWarn && strings.Contains(l.msg, "bearer credentials cross the network in the clear") {
					warned = true
				}
			}
			logs.store.mu.Unlock()
			if warned != tc.warn {
				t.Fatalf("warned about plaintext credentials: %v, want %v", warned, tc.warn)
			}
		})
	}
}
