package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/internal/edge"
)

// rewrite builds the upstream request of an allowed one. ReverseProxy has
// already removed the hop-by-hop headers, including those the caller listed
// in Connection; what is set here cannot be removed by the caller that way.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	f := forwardOf(pr.In.Context())
	// The decided path, spelled as decided and joined to the target's.
	decoded, _ := url.PathUnescape(f.path) // upstreamPath's: valid escapes only
	pr.Out.URL.Path, pr.Out.URL.RawPath = decoded, f.path
	// The query as decided: ReverseProxy re-encodes one it cannot parse
	// (a malformed escape, a ';', over 10,000 parameters: all dropped)
	// before Rewrite, so the upstream would get another query than the
	// engine read. The engine refuses those in any parameter a policy
	// reads; the rest goes as sent, as Envoy forwards it.
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	pr.SetURL(f.up.url)
	pr.Out.Host = f.up.host // the host decided on: a service's, not the endpoint dialled

	// Only a WebSocket upgrade goes upstream. After a 101 the gateway
	// copies bytes both ways undecided, so an upgrade to a protocol that
	// carries requests of its own — h2c, TLS/1.0 (RFC 2817) — would let
	// every request after the first through without a decision. Any other
	// Upgrade is dropped and the request goes on as plain HTTP/1.1, as a
	// server that does not take an upgrade answers it (RFC 9110, 7.8);
	// an upstream that switches anyway gets a 502 (ReverseProxy refuses a
	// protocol that was not asked for).
	if up := pr.Out.Header["Upgrade"]; len(up) > 0 && (len(up) != 1 || !strings.EqualFold(up[0], "websocket")) {
		delete(pr.Out.Header, "Upgrade")
		delete(pr.Out.Header, "Connection")
	}

	// No trailer of the caller's goes upstream: it arrives after the
	// decision, unseen by it, and could pose as a header an upstream
	// trusts (x-meshguard-agent-id) if that upstream merges trailers into
	// headers. (ReverseProxy copies the trailer map before the body is
	// read, so only the names would go, with empty values.)
	pr.Out.Trailer = nil

	if c := f.decision.Call; c != nil && c.Lists() {
		// The answer is filtered (filterList), so it must come back
		// readable: no compression.
		pr.Out.Header.Del("Accept-Encoding")
	}

	h := pr.Out.Header
	// The caller's bearer token is a credential for MeshGuard, not for the
	// upstream; the upstream learns who called from x-meshguard-agent-id.
	delete(h, hAuthorization)
	// Only MeshGuard speaks x-meshguard-* to the upstream, and only the
	// gateway says where the request came from (forwardingHeaders). Names
	// with "_" for "-" go too: some frameworks read X_MeshGuard_Agent_Id
	// as X-MeshGuard-Agent-Id.
	for k := range h {
		if edge.IsMeshGuardHeader(k) || isForwarding(k) {
			delete(h, k)
		}
	}
	maps.Copy(h, f.xf)
	up, remove := f.decision.UpstreamEdit()
	for _, name := range remove {
		h.Del(name)
	}
	setHeaders(h, up)
}

// responseHeaders are MeshGuard's on the caller's response; an upstream
// cannot set them.
var responseHeaders = []string{"X-Meshguard-Decision", "X-Meshguard-Policy", "X-Meshguard-Trace-Id", "X-Meshguard-Mode"}

// modifyResponse puts the decision's headers on the upstream's response.
// They are set here rather than on the ResponseWriter beforehand because
// ReverseProxy clears the writer's headers after forwarding a 1xx response.
func (g *Gateway) modifyResponse(res *http.Response) error {
	f := forwardOf(res.Request.Context())
	for _, k := range responseHeaders {
		delete(res.Header, k)
	}
	setHeaders(res.Header, f.decision.ResponseHeaders())
	if c := f.decision.Call; c != nil && c.Lists() {
		return filterList(res, &f.decision)
	}
	return nil
}

// upstreamError answers 502 when the upstream cannot be reached or fails
// before its response headers. The caller learns what kind of failure it
// was; the details (addresses, certificates) go to the log only.
func (g *Gateway) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	if f := forwardOf(ctx); f != nil {
		// MeshGuard answers, not the upstream: the caller gets the trace
		// id to report the failure with, whatever ANSWER_EXTRAS says.
		setHeaders(w.Header(), f.decision.DecisionHeaders())
	}
	if errors.Is(err, errListUnfiltered) {
		// The list was read and refused: the upstream answered, so the
		// caller hears so in JSON-RPC, as its MCP client expects.
		g.log.WarnContext(ctx, "gateway: an upstream list answer could not be filtered; not passed on", "path", r.URL.Path, "err", err)
		writeRPCError(w, http.StatusBadGateway, forwardOf(ctx).decision.Call, agentproto.CodeUnfilteredList, "MeshGuard could not filter the upstream's list, so it is not passed on")
		return
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		// The caller went away; nobody reads this answer.
		g.log.DebugContext(ctx, "gateway: caller cancelled before the upstream answered", "err", err)
	} else {
		name := ""
		if f := forwardOf(ctx); f != nil {
			name = f.up.name
		}
		g.log.WarnContext(ctx, "gateway: upstream request failed", "target", name, "path", r.URL.Path, "err", err)
	}
	writeError(w, http.StatusBadGateway, "bad_gateway", upstreamMessage(err))
}

// upstreamMessage says what went wrong with the upstream, without
// addresses or certificate details.
func upstreamMessage(err error) string {
	var (
		certErr   *tls.CertificateVerificationError
		recordErr tls.RecordHeaderError
		alertErr  tls.AlertError
		netErr    net.Error
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &recordErr), errors.As(err, &alertErr):
		return "the TLS handshake with the upstream failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the upstream refused the connection"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "the upstream did not answer in time"
	}
	return "the upstream could not be reached or closed the connection"
}

// newTransport is the default upstream transport: http.DefaultTransport's
// settings, with idle connections kept for one busy upstream, a shorter
// dial timeout, and no transparent compression (the caller's
// Accept-Encoding goes upstream as sent, and the body comes back as the
// upstream encoded it). There is no response header timeout: an agent's
// upstream may be a model that thinks for minutes before it answers; the
// caller's cancellation ends the wait.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// bufferPool recycles ReverseProxy's copy buffers, which it would
// otherwise allocate (32 KiB) for every response.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == copyBufferSize {
		b.p.Put(&buf)
	}
}
