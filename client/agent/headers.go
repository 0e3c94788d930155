package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

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
func WithTraceParent(ctx context.Context, traceparent string) (context.Context, error) {
	var ver, flags [1]byte
	var tid trace.TraceID
	var sid trace.SpanID
	if len(traceparent) != 55 || traceparent[2] != '-' || traceparent[35] != '-' || traceparent[52] != '-' {
		return ctx, fmt.Errorf("meshguard agent: traceparent %q: want 00-<32 hex>-<16 hex>-<2 hex>", truncate(traceparent, 64))
	}
	for _, part := range []struct {
		dst []byte
		src string
	}{{ver[:], traceparent[0:2]}, {tid[:], traceparent[3:35]}, {sid[:], traceparent[36:52]}, {flags[:], traceparent[53:55]}} {
		if _, err := hex.Decode(part.dst, []byte(part.src)); err != nil {
			return ctx, fmt.Errorf("meshguard agent: traceparent %q: %w", truncate(traceparent, 64), err)
		}
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags[0]), Remote: true})
	if ver[0] == 0xff || !sc.IsValid() {
		return ctx, fmt.Errorf("meshguard agent: traceparent %q: invalid version or all-zero ids", truncate(traceparent, 64))
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc), nil
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
