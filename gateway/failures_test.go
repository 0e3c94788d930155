package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/ratelimit"
	"github.com/meshguard/meshguard/trust"
)

func TestUpstreamFailures(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})

	// A port nothing listens on any more.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	_ = l.Close()

	plain := newUpstream(t, nil)
	tlsUp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tlsUp.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors are expected
	tlsUp.StartTLS()
	t.Cleanup(tlsUp.Close)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	slowTransport := &http.Transport{ResponseHeaderTimeout: 200 * time.Millisecond}
	t.Cleanup(slowTransport.CloseIdleConnections)

	tests := []struct {
		name      string
		target    string
		transport http.RoundTripper
		message   string
	}{
		{"connection refused", closed, nil, "refused"},
		{"TLS to a plain HTTP server", "https://" + strings.TrimPrefix(plain.URL, "http://"), nil, "TLS"},
		{"untrusted certificate", tlsUp.URL, nil, "TLS"},
		{"timeout", slow.URL, slowTransport, "in time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, tc.target), Transport: tc.transport})
			res := call(t, newClient(t), "GET", gw+"/proxy/docs", bearer(tok))
			if res.Status != http.StatusBadGateway {
				t.Fatalf("status %d: %s", res.Status, res.Body)
			}
			body := res.json(t)
			msg, _ := body["message"].(string)
			if body["error"] != "bad_gateway" || !strings.Contains(msg, tc.message) {
				t.Errorf("body %s, want bad_gateway mentioning %q", res.Body, tc.message)
			}
			if strings.Contains(string(res.Body), "127.0.0.1") || strings.Contains(string(res.Body), "x509") {
				t.Errorf("the body leaks internals: %s", res.Body)
			}
			if res.Header.Get("X-MeshGuard-Decision") != "allow" || len(res.Header.Get("X-MeshGuard-Trace-Id")) != 32 {
				t.Errorf("decision headers missing on the 502: %v", res.Header)
			}
		})
	}
}

// failingChecker is the engine with its store down.
type failingChecker struct{}

func (failingChecker) Check(context.Context, *engine.Request) (engine.Decision, error) {
	return engine.Decision{}, fmt.Errorf("%w: verifying the agent token: database is locked", engine.ErrInternal)
}

func (failingChecker) WantsBody(*engine.Request) bool { return false }

// failingLimiter is a shared limiter that cannot be reached.
type failingLimiter struct{}

func (failingLimiter) Allow(context.Context, string, int, time.Duration) (ratelimit.Result, error) {
	return ratelimit.Result{}, errors.New("limiter backend unreachable")
}

func TestInternalFailureIsUnavailable(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	up := newUpstream(t, nil)
	tests := []struct {
		name string
		cfg  gateway.Config
	}{
		{"engine error", gateway.Config{Checker: failingChecker{}}},
		{"limiter error", gateway.Config{Checker: f.Engine, Limiter: failingLimiter{}, RPM: 100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Target = mustURL(t, up.URL)
			gw := startGateway(t, tc.cfg)
			res := call(t, newClient(t), "GET", gw+"/proxy/docs", bearer(tok))
			if res.Status != http.StatusServiceUnavailable || res.json(t)["error"] != "unavailable" {
				t.Fatalf("%d %s, want 503 unavailable", res.Status, res.Body)
			}
			if strings.Contains(string(res.Body), "database") || strings.Contains(string(res.Body), "backend") {
				t.Errorf("the body leaks internals: %s", res.Body)
			}
		})
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream received %d requests", n)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	checker := failingChecker{}
	tests := []struct {
		name   string
		cfg    gateway.Config
		target string
		want   string
	}{
		{"ok", gateway.Config{Checker: checker}, "https://api.internal:8443/base", ""},
		{"ok with limit", gateway.Config{Checker: checker, Limiter: failingLimiter{}, RPM: 600}, "http://api.internal", ""},
		{"no checker", gateway.Config{}, "http://api.internal", "Checker"},
		{"no target", gateway.Config{Checker: checker}, "", "PROXY_TARGET"},
		{"ftp", gateway.Config{Checker: checker}, "ftp://files.internal", "PROXY_TARGET"},
		{"no host", gateway.Config{Checker: checker}, "http:///path", "PROXY_TARGET"},
		{"relative", gateway.Config{Checker: checker}, "api.internal:8080", "PROXY_TARGET"},
		{"user info", gateway.Config{Checker: checker}, "https://user:secret@api.internal", "user info"},
		{"query", gateway.Config{Checker: checker}, "http://api.internal/?k=v", "PROXY_TARGET"},
		{"fragment", gateway.Config{Checker: checker}, "http://api.internal/#x", "PROXY_TARGET"},
		{"negative rpm", gateway.Config{Checker: checker, Limiter: failingLimiter{}, RPM: -1}, "http://api.internal", "RATE_LIMIT_RPM"},
		{"rpm without limiter", gateway.Config{Checker: checker, RPM: 10}, "http://api.internal", "Limiter"},
		{"negative header limit", gateway.Config{Checker: checker, MaxHeaderBytes: -1}, "http://api.internal", "MaxHeaderBytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.target != "" {
				tc.cfg.Target = mustURL(t, tc.target)
			}
			_, err := gateway.New(tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Fatalf("the error repeats the password: %v", err)
			}
		})
	}
}
