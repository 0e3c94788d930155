package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/ratelimit"
)

// Checker decides requests (engine.Engine).
type Checker interface {
	Check(ctx context.Context, r *engine.Request) (engine.Decision, error)
	// WantsBody reports whether deciding r needs its body (a POST to a
	// route declaring an agent protocol); the gateway reads only those.
	WantsBody(r *engine.Request) bool
}

// Limiter counts requests per key (ratelimit.Memory, or a shared store).
type Limiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (ratelimit.Result, error)
}

// Prefix is the path the server mounts the gateway under ("/proxy/"); the
// gateway strips it before deciding and forwarding.
const Prefix = "/proxy"

// DefaultMaxHeaderBytes bounds the request line and headers of a gateway
// request when Config.MaxHeaderBytes is zero: 60 KiB, Envoy's default
// max_request_headers_kb, so a request fits through the gateway exactly
// when it fits through an Envoy sidecar.
const DefaultMaxHeaderBytes = 60 << 10

// Config wires a Gateway.
type Config struct {
	// Checker decides every request. Required.
	Checker Checker
	// Target is PROXY_TARGET: http or https, a host, optionally a base
	// path; no user info, query or fragment. Target or Services is
	// required, not both.
	Target *url.URL
	// Services is PROXY_SERVICES: `/proxy/<service>/<rest>` goes to the
	// catalogue's service <service>, decided as an Envoy configured by
	// MeshGuard's xDS decides it (docs/gateway.md).
	Services Services
	// Limiter counts requests per client IP; required when RPM > 0.
	Limiter Limiter
	// RPM is RATE_LIMIT_RPM: requests per minute per client IP; 0 turns the
	// per-IP limit off.
	RPM int
	// Logger receives upstream failures and MeshGuard's own errors
	// (slog.Default() if nil). Decisions are not logged here: recording
	// them is the audit trail's job.
	Logger *slog.Logger
	// Transport sends requests upstream (a tuned http.Transport if nil).
	Transport http.RoundTripper
	// MaxHeaderBytes bounds the request line plus headers
	// (DefaultMaxHeaderBytes if zero); larger requests get 431. The
	// http.Server's own MaxHeaderBytes must be at least this large.
	MaxHeaderBytes int
}

// Gateway is the `ANY /proxy/*` handler. It is safe for concurrent use.
type Gateway struct {
	checker   Checker
	limiter   Limiter
	rpm       int
	target    *upstream // PROXY_TARGET's; nil with services
	services  Services
	next      atomic.Uint64 // round robin over a service's endpoints
	maxHeader int
	log       *slog.Logger
	proxy     *httputil.ReverseProxy
}

// New checks cfg and builds a Gateway. Errors name the setting at fault.
func New(cfg Config) (*Gateway, error) {
	if cfg.Checker == nil {
		return nil, errors.New("gateway: a Checker is required")
	}
	switch {
	case cfg.Target != nil && cfg.Services != nil:
		return nil, errors.New("PROXY_TARGET and PROXY_SERVICES: set one: the gateway forwards to one upstream or to the catalogue's services")
	case cfg.Services == nil:
		if err := checkTarget(cfg.Target); err != nil {
			return nil, err
		}
	}
	switch {
	case cfg.RPM < 0:
		return nil, fmt.Errorf("RATE_LIMIT_RPM: %d: expected 0 (off) or a positive number of requests per minute", cfg.RPM)
	case cfg.RPM > 0 && cfg.Limiter == nil:
		return nil, errors.New("gateway: RATE_LIMIT_RPM is set but no Limiter was given")
	case cfg.MaxHeaderBytes < 0:
		return nil, fmt.Errorf("gateway: MaxHeaderBytes %d: expected a positive size or 0 (default)", cfg.MaxHeaderBytes)
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Transport == nil {
		cfg.Transport = newTransport()
	}
	g := &Gateway{
		checker: cfg.Checker, limiter: cfg.Limiter, rpm: cfg.RPM,
		services: cfg.Services, maxHeader: cfg.MaxHeaderBytes, log: cfg.Logger,
	}
	transport := cfg.Transport
	if cfg.Services == nil {
		target := *cfg.Target // ours: the caller may not change it under us
		g.target = &upstream{url: &target, host: target.Host, name: target.Redacted()}
	} else {
		transport = &failover{next: transport, log: func(name, endpoint string, err error) {
			g.log.Debug("gateway: a service endpoint refused the connection; trying the next", "service", name, "endpoint", endpoint, "err", err)
		}}
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      transport,
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.upstreamError,
		ErrorLog:       slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		BufferPool:     &bufferPool{},
	}
	return g, nil
}

// checkTarget validates PROXY_TARGET.
func checkTarget(u *url.URL) error {
	const want = "expected http(s)://host[:port][/base/path] without user info, query or fragment"
	switch {
	case u == nil:
		return errors.New("PROXY_TARGET: not set; " + want)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.Opaque != "":
		return fmt.Errorf("PROXY_TARGET %q: %s", u.Redacted(), want)
	case u.User != nil:
		return fmt.Errorf("PROXY_TARGET %q: user info is not allowed (credentials in the URL would be sent upstream); %s", u.Redacted(), want)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("PROXY_TARGET %q: %s", u.Redacted(), want)
	}
	return nil
}

// forward is what an allowed request carries, in its context, into the
// ReverseProxy's Rewrite, ModifyResponse and ErrorHandler.
type forward struct {
	decision engine.Decision
	path     string // the upstream path, /proxy stripped, escaped
	up       *upstream
	// xf: the X-Forwarded-* headers the upstream gets (xForwarded).
	xf http.Header
}

type forwardKey struct{}

func forwardOf(ctx context.Context) *forward {
	f, _ := ctx.Value(forwardKey{}).(*forward)
	return f
}

// ServeHTTP handles `ANY /proxy/*`.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	client, trusted := clientAddr(r)
	if g.rpm > 0 && !g.allowClient(w, r, client) {
		return
	}
	path, status, msg := g.checkShape(r)
	if status != 0 {
		if status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		}
		writeError(w, status, errorCode(status), msg)
		return
	}
	up := g.target
	var svc *catalog.Service
	if g.services != nil {
		if svc, path, status, msg = g.service(path); status != 0 {
			writeError(w, status, errorCode(status), msg)
			return
		}
		up = g.serviceUpstream(svc)
	}
	xf := xForwarded(r, trusted)
	req := g.engineRequest(r, path, up.host, client, xf)
	if svc != nil {
		// The route's action, protocol and minimum tier, as MeshGuard's
		// xDS gives them to an Envoy in front of the service.
		svc.Prepare(req)
	}
	if g.checker.WantsBody(req) {
		body, err := readBody(r)
		if err != nil {
			// The caller stopped sending: nothing to decide on, nobody
			// likely to read the answer, and nothing goes upstream.
			g.log.DebugContext(r.Context(), "gateway: request body not received in full", "err", err, "path", path)
			writeError(w, http.StatusBadRequest, "bad_request", errBodyUnread.Error())
			return
		}
		req.Body = body
	}
	d, err := g.checker.Check(r.Context(), req)
	if err != nil {
		g.log.ErrorContext(r.Context(), "gateway: the engine could not decide", "err", err, "path", path)
		writeError(w, http.StatusServiceUnavailable, "unavailable", engine.Unavailable(err))
		return
	}
	if !d.Allowed {
		deny(w, &d)
		return
	}
	if req.Body != nil {
		setBody(r, req.Body)
	}
	f := &forward{decision: d, path: path, xf: xf, up: up}
	g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardKey{}, f)))
}

// allowClient applies RATE_LIMIT_RPM to the client's address. It answers
// and returns false when the request may not proceed.
func (g *Gateway) allowClient(w http.ResponseWriter, r *http.Request, client netip.Addr) bool {
	res, err := g.limiter.Allow(r.Context(), limitKey(client), g.rpm, time.Minute)
	switch {
	case err != nil:
		g.log.ErrorContext(r.Context(), "gateway: the rate limiter failed", "err", err)
		unavailable(w)
		return false
	case !res.Allowed:
		// Debug, not Warn: a flood must not become a flood of log lines.
		g.log.DebugContext(r.Context(), "gateway: client rate limited", "client", client.String(), "rpm", g.rpm)
		secs := retrySeconds(res.RetryAfter)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeJSON(w, http.StatusTooManyRequests, errorBody{
			Error:      "rate_limited",
			Message:    fmt.Sprintf("more than %d requests per minute from this address", g.rpm),
			Reason:     engine.ReasonRateLimited,
			RetryAfter: secs,
		})
		return false
	}
	return true
}

// deny answers a denial with the decision's status, headers and body.
func deny(w http.ResponseWriter, d *engine.Decision) {
	setHeaders(w.Header(), d.ResponseHeaders())
	status := d.Status
	if status < 400 {
		status = http.StatusForbidden // a denial is never a success
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="meshguard"`)
	}
	writeJSONBytes(w, status, d.DenyBody())
}

// setHeaders sets the engine's headers, which it names in lower case.
func setHeaders(h http.Header, hs []engine.Header) {
	for _, x := range hs {
		k, ok := canonicalNames[x.Name]
		if !ok {
			k = http.CanonicalHeaderKey(x.Name)
		}
		h[k] = []string{x.Value}
	}
}

// canonicalNames holds the canonical keys of the engine's header names, so
// that setting them does not canonicalise (and allocate) per request.
var canonicalNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{
		engine.HeaderAgentID, engine.HeaderAgentName, engine.HeaderTier, engine.HeaderDecisionID,
		engine.HeaderChain, engine.HeaderDelegation, engine.HeaderDecision, engine.HeaderPolicy,
		engine.HeaderTraceID, engine.HeaderMode, "retry-after",
	} {
		m[n] = http.CanonicalHeaderKey(n)
	}
	return m
}()

func retrySeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// errorBody is the JSON body of the gateway's own answers (the engine's
// denials use engine.Decision.DenyBody).
type errorBody struct {
	Error      string `json:"error"`
	Message    string `json:"message"`
	Reason     string `json:"reason,omitempty"`
	RetryAfter int    `json:"retry_after,omitempty"`
}

func errorCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestHeaderFieldsTooLarge:
		return "headers_too_large"
	}
	return "bad_request"
}

// unavailable answers MeshGuard's own failures: fail closed, and say
// nothing of what failed (the log has it).
func unavailable(w http.ResponseWriter) {
	writeError(w, http.StatusServiceUnavailable, "unavailable", "MeshGuard could not decide this request; try again later")
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, body errorBody) {
	b, _ := json.Marshal(body) // strings and an int: cannot fail
	writeJSONBytes(w, status, b)
}

func writeJSONBytes(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body) // the client may be gone; nothing to do about it
}
