package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"github.com/meshguard/meshguard/api"
)

// ErrHeaderConflict is returned by the Transport for a request that already
// carries another Authorization or X-MeshGuard-Delegation than the
// agent's: the SDK never replaces a credential the caller set, nor sends
// the request under an identity the caller did not choose.
var ErrHeaderConflict = errors.New("meshguard agent: the request already carries another credential")

// Headers are the headers the agent adds to an outgoing request:
// Authorization with its token, traceparent, and X-MeshGuard-Delegation
// when it acts for a chain. The traceparent is that of the OpenTelemetry
// span in ctx (see WithTraceParent for a trace that arrived without
// OpenTelemetry), or a fresh one when ctx holds none.
func (a *Agent) Headers(ctx context.Context) http.Header {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+a.token)
	h.Set(api.HeaderTraceParent, TraceParent(ctx))
	if a.delegation != "" {
		h.Set(api.HeaderDelegation, a.delegation)
	}
	return h
}

// TraceParent is the W3C traceparent of the span in ctx, or a fresh trace
// (sampled) when ctx holds no valid span context.
func TraceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		var tid trace.TraceID
		var sid trace.SpanID
		// crypto/rand.Read never fails (Go 1.24+).
		_, _ = rand.Read(tid[:])
		_, _ = rand.Read(sid[:])
		sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	}
	return fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), hex.EncodeToString([]byte{byte(sc.TraceFlags())}))
}

// WithTraceParent returns ctx carrying the trace of a W3C traceparent (the
// header of the request the agent is serving), so the agent's checks,
// delegations and outgoing requests continue that trace. An agent that
// uses OpenTelemetry's propagators needs none of this.
//
// W3C's rule, the same in every SDK: lower-case hex only; version 00 is
// exactly 55 characters; a higher version is read by its first 55 (what
// follows must start with '-'); version ff and all-zero ids are invalid.
func WithTraceParent(ctx context.Context, traceparent string) (context.Context, error) {
	sc, err := parseTraceParent(strings.TrimSpace(traceparent))
	if err != nil {
		return ctx, fmt.Errorf("meshguard agent: traceparent %q: %w", truncate(traceparent, 64), err)
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc), nil
}

// errTraceParent is why a traceparent is refused.
var errTraceParent = errors.New("want <version>-<32 hex>-<16 hex>-<2 hex>, lower-case, version 00 exactly 55 characters, not version ff, no all-zero id")

func parseTraceParent(tp string) (trace.SpanContext, error) {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return trace.SpanContext{}, errTraceParent
	}
	ver, tid, sid, flags := tp[0:2], tp[3:35], tp[36:52], tp[53:55]
	if !lowerHex(ver) || !lowerHex(tid) || !lowerHex(sid) || !lowerHex(flags) || ver == "ff" ||
		(ver == "00" && len(tp) != 55) || (len(tp) > 55 && tp[55] != '-') {
		return trace.SpanContext{}, errTraceParent
	}
	var c trace.SpanContextConfig
	var f [1]byte
	// Lower-case hex checked above: the decodes cannot fail.
	_, _ = hex.Decode(c.TraceID[:], []byte(tid))
	_, _ = hex.Decode(c.SpanID[:], []byte(sid))
	_, _ = hex.Decode(f[:], []byte(flags))
	c.TraceFlags, c.Remote = trace.TraceFlags(f[0]), true
	sc := trace.NewSpanContext(c)
	if !sc.IsValid() {
		return trace.SpanContext{}, errTraceParent
	}
	return sc, nil
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Transport returns an http.RoundTripper that adds the agent's Headers to
// every request into the mesh it carries — to MeshGuard's host (its
// gateway) and the hosts of WithMeshHosts — then sends it through base
// (http.DefaultTransport if nil). A request to any other host goes as the
// caller made it, without the agent's token. A caller's own traceparent is
// kept; a caller's own Authorization or X-MeshGuard-Delegation is kept
// when it equals the agent's and refused with ErrHeaderConflict when it
// does not.
func (a *Agent) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{agent: a, base: base}
}

// HTTPClient is an http.Client whose requests carry the agent's headers
// (Transport over base) and which follows no redirect (the token would go
// where Location points). It has no timeout of its own, as a long-lived
// stream needs; bound calls with their context. One line governs an MCP
// client: &mcp.StreamableClientTransport{Endpoint: u, HTTPClient: a.HTTPClient(nil)}.
func (a *Agent) HTTPClient(base http.RoundTripper) *http.Client {
	return &http.Client{Transport: a.Transport(base), CheckRedirect: refuseRedirects}
}

type transport struct {
	agent *Agent
	base  http.RoundTripper
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL == nil || !t.agent.meshHosts[urlHostPort(r.URL)] {
		return t.base.RoundTrip(r) // not the mesh: the token is not for it
	}
	add := t.agent.Headers(r.Context())
	for _, name := range []string{"Authorization", api.HeaderDelegation} {
		if have := r.Header.Values(name); len(have) > 0 && (len(have) > 1 || have[0] != add.Get(name)) {
			if r.Body != nil {
				_ = r.Body.Close() // a RoundTripper closes the body, even on error
			}
			return nil, fmt.Errorf("%w: %s (%s %s)", ErrHeaderConflict, name, r.Method, r.URL.Redacted())
		}
	}
	if r.Header.Get(api.HeaderTraceParent) != "" {
		add.Del(api.HeaderTraceParent)
	}
	r = r.Clone(r.Context()) // a RoundTripper must not change the caller's request
	for k, vs := range add {
		r.Header[k] = vs
	}
	return t.base.RoundTrip(r)
}
