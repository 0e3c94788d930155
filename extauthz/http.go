package extauthz

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/internal/edge"
)

// PathPrefix is where the server mounts the HTTP handler, and the
// path_prefix Envoy's http_service is configured with: Envoy appends the
// original request's path to it.
const PathPrefix = "/envoy/authz"

type httpHandler struct {
	c   Checker
	log *slog.Logger
}

// NewHTTPHandler returns Envoy's HTTP ext_authz endpoint (http_service
// mode). It strips PathPrefix from the raw request target itself, so it works
// mounted at PathPrefix or behind http.StripPrefix; prefer Mount, which keeps
// http.ServeMux from rewriting the path first. The request body (Envoy's
// with_request_body) is read, bounded, for the routes of the config that
// declare an agent protocol (docs/mcp.md). A nil log discards; a nil c panics.
func NewHTTPHandler(c Checker, log *slog.Logger) http.Handler {
	if c == nil {
		panic("extauthz: NewHTTPHandler with a nil Checker")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &httpHandler{c: c, log: log}
}

// Mount sends every request under PathPrefix to authz and the rest to next
// (the server's mux). Register authz this way rather than on an
// http.ServeMux: a mux cleans paths and answers "/envoy/authz/a/../b" or
// "/envoy/authz//b" with a redirect, which Envoy would pass to the caller as
// a denial, while the engine must see the path exactly as the caller sent it.
func Mount(next, authz http.Handler) http.Handler { return edge.Mount(PathPrefix, authz, next) }

// ServeHTTP answers 200 with the upstream headers (Envoy copies those its
// allowed_upstream_headers match) when the decision allows, the decision's
// status, headers and JSON body when it denies, and 503 when MeshGuard
// cannot decide.
func (h *httpHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var r engine.Request
	if rj := fromHTTPRequest(req, &r); rj != nil {
		h.log.LogAttrs(req.Context(), slog.LevelInfo, "ext_authz: request refused before the engine",
			slog.String("source", string(r.Source)), slog.Int("status", rj.status), slog.String("message", rj.message),
			slog.String("peer", r.SourceAddress))
		d := rj.decision(&r)
		writeDecision(w, &d)
		return
	}
	d, err := h.c.Check(req.Context(), &r)
	if err != nil {
		// Never log r.Token or r.Delegation; the path without its query.
		h.log.LogAttrs(req.Context(), slog.LevelError, "ext_authz: check failed; denying (fail closed)",
			slog.String("source", string(r.Source)), slog.String("method", r.Method), slog.String("host", r.Host),
			slog.String("path", logPath(r.Path)), slog.String("trace_id", r.TraceID), slog.Any("error", err))
		body, _ := json.Marshal(unavailable{
			Error:   "unavailable",
			Message: engine.Unavailable(err),
			TraceID: r.TraceID,
		})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write(body)
		return
	}
	writeDecision(w, &d)
}

// unavailable is the 503 body: the shape of a deny body, no decision.
type unavailable struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	TraceID string `json:"trace_id,omitempty"`
}

// fromHTTPRequest fills r from the check request Envoy's http_service sends:
// the original method, Host and headers, and PathPrefix + the original path.
func fromHTTPRequest(req *http.Request, r *engine.Request) *rejection {
	r.Source = engine.SourceExtAuthzHTTP
	r.Method, r.Host = req.Method, req.Host
	r.Path = originalPath(req)

	var sc edge.HeaderScan
	// Host is not in req.Header; it counts against the total all the same.
	sc.Count(len("host") + len(req.Host))
	if len(req.Header) > MaxHeaders {
		r.SourceAddress = httpSourceAddress(req.RemoteAddr, "")
		r.SetTraceparent(req.Header.Get("traceparent"))
		return badRequest("more than " + strconv.Itoa(MaxHeaders) + " request headers")
	}
scanning:
	for name, values := range req.Header {
		for _, v := range values {
			if !sc.Add(name, v) {
				break scanning
			}
		}
	}
	r.SetHeaders(&sc)
	r.Headers = edge.MultiHeaders(req.Header)
	r.SourceAddress = httpSourceAddress(req.RemoteAddr, sc.Get(edge.HForwardedFor))
	if sc.Bad() != "" {
		if r.TraceID == "" { // the scan may have stopped before it
			r.SetTraceparent(req.Header.Get("traceparent"))
		}
		return badRequest(sc.Bad())
	}
	// The body Envoy sends (with_request_body) is the original request's,
	// read bounded; the engine reads it only for a route of the config's
	// routes: declaring a protocol (this API passes no context_extensions).
	if req.Body != nil && req.ContentLength != 0 {
		body, err := readBody(req.Body)
		if err != nil {
			r.BodyError = err
			return nil
		}
		setBody(r, body)
	}
	return nil
}

// originalPath is the request target as received, without PathPrefix. The
// raw RequestURI is used, not URL.Path, so the engine sees the path exactly
// as Envoy forwarded it (no decoding, the query string kept).
func originalPath(req *http.Request) string {
	p := req.RequestURI
	if p == "" || p[0] != '/' {
		p = req.URL.RequestURI()
	}
	if rest, ok := strings.CutPrefix(p, PathPrefix); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
		p = rest
	}
	if p == "" || p[0] == '?' {
		p = "/" + p
	}
	return p
}

// httpSourceAddress is the caller's IP: edge.ClientAddr's reading of
// X-Forwarded-For (every line of it, joined by the scan) from the peer,
// the sidecar Envoy next to MeshGuard. It is "" when the peer is no IP.
func httpSourceAddress(remoteAddr, xff string) string {
	a := edge.ClientAddr(edge.ParseAddr(remoteAddr), xff)
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// writeDecision renders a decision as the ext_authz HTTP service answers.
func writeDecision(w http.ResponseWriter, d *engine.Decision) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	for _, h := range d.ResponseHeaders() {
		hdr.Set(h.Name, clean(h.Value))
	}
	if d.Allowed {
		up, remove := d.UpstreamEdit()
		for _, h := range up {
			hdr.Set(h.Name, clean(h.Value))
		}
		hdr.Set(HeaderAuthHeadersToRemove, strings.Join(remove, ", "))
		w.WriteHeader(http.StatusOK)
		return
	}
	body := d.DenyBody()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(denyStatus(d))
	_, _ = w.Write(body)
}
