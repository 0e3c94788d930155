package extauthz

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/trust"
)

// Server is the envoy.service.auth.v3.Authorization service. It holds no
// per-request state and is safe for concurrent use.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	c   Checker
	log *slog.Logger
	// vouches says whether the caller of Check is a proxy MeshGuard
	// authenticated; nil: none is.
	vouches func(context.Context) bool
	ignored sync.Once
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// answerer is a Checker that says what its answers carry
// (engine.Engine): a request refused here is rendered by the same rule.
type answerer interface{ Answer() engine.Answer }

// NewServer returns the gRPC ext_authz service deciding with c. A nil log
// discards. It panics if c is nil: that is a wiring mistake, and failing at
// start-up beats failing open at the first request.
func NewServer(c Checker, log *slog.Logger) *Server {
	if c == nil {
		panic("extauthz: NewServer with a nil Checker")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{c: c, log: log}
}

// TrustPrincipalsFrom makes the server believe the source principal a
// CheckRequest reports (attributes.source.principal, the SPIFFE ID of the
// client certificate Envoy verified) when vouches says the caller of Check
// is a proxy MeshGuard authenticated. Anyone who reaches the port can write
// a CheckRequest, and a principal is a credential: from any other caller
// it is ignored, as if the request had come without mTLS. Without this
// call no principal is believed.
func (s *Server) TrustPrincipalsFrom(vouches func(context.Context) bool) *Server {
	s.vouches = vouches
	return s
}

// Register adds the Authorization service to gs.
func (s *Server) Register(gs *grpc.Server) {
	authv3.RegisterAuthorizationServer(gs, s)
}

// Check answers one CheckRequest. Every decision about the request — allow,
// deny, malformed input — is a CheckResponse; the error return is only for
// MeshGuard's own failures (codes.Unavailable), which Envoy's
// failure_mode_allow: false turns into a denial.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	var r engine.Request
	rj := fromCheckRequest(req, &r)
	if r.Principal != "" && (s.vouches == nil || !s.vouches(ctx)) {
		r.Principal = ""
		s.ignored.Do(func() {
			s.log.Warn("ext_authz: ignoring attributes.source.principal from a caller that is no authenticated proxy; agents bound to SPIFFE IDs need their proxies listed in PROXIES_FILE (client certificate or bearer credential on the ext_authz call)")
		})
	}
	if r.TraceID == "" {
		// Envoy propagates the trace on the ext_authz call itself when
		// tracing is on; the request's own traceparent wins.
		if tp := metadata.ValueFromIncomingContext(ctx, "traceparent"); len(tp) == 1 {
			r.SetTraceparent(tp[0])
		}
	}
	if rj != nil {
		s.log.LogAttrs(ctx, slog.LevelInfo, "ext_authz: request refused before the engine",
			slog.String("source", string(r.Source)), slog.Int("status", rj.status), slog.String("message", rj.message),
			slog.String("peer", r.SourceAddress))
		d := rj.decision(&r)
		if a, ok := s.c.(answerer); ok {
			d.SetAnswer(a.Answer())
		}
		return checkResponse(&d), nil
	}
	d, err := s.c.Check(ctx, &r)
	if err != nil {
		// Never log r.Token or r.Delegation; the path without its query.
		s.log.LogAttrs(ctx, slog.LevelError, "ext_authz: check failed; denying (fail closed)",
			slog.String("source", string(r.Source)), slog.String("method", r.Method), slog.String("host", r.Host),
			slog.String("path", logPath(r.Path)), slog.String("trace_id", r.TraceID), slog.Any("error", err))
		return nil, status.Error(codes.Unavailable, engine.Unavailable(err))
	}
	resp := checkResponse(&d)
	if ok := resp.GetOkResponse(); ok != nil {
		removeOtherSpellings(ok, req.GetAttributes().GetRequest().GetHttp())
	}
	return resp, nil
}

// removeOtherSpellings adds to headers_to_remove the request's MeshGuard
// headers spelled with '_' (X_MeshGuard_Agent_Id). Envoy removes headers
// by exact name, and CGI-style upstreams (WSGI, Rack, PHP) read the two
// spellings as one: a forged identity would stand beside MeshGuard's.
func removeOtherSpellings(ok *authv3.OkHttpResponse, h *authv3.AttributeContext_HttpRequest) {
	add := func(k string) {
		if strings.IndexByte(k, '_') >= 0 && edge.IsMeshGuardHeader(k) && !slices.Contains(ok.HeadersToRemove, k) {
			ok.HeadersToRemove = append(ok.HeadersToRemove, k)
		}
	}
	for k := range h.GetHeaders() {
		add(k)
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		add(hv.GetKey())
	}
}

// fromCheckRequest fills r from a CheckRequest as Envoy builds it. It
// returns a rejection for input the adapter refuses; r is filled as far as
// it got (Source and TraceID always, when present). It never panics on any
// message, including nil.
func fromCheckRequest(req *authv3.CheckRequest, r *engine.Request) *rejection {
	r.Source = engine.SourceExtAuthzGRPC
	attrs := req.GetAttributes()
	r.SourceAddress = ipOnly(attrs.GetSource().GetAddress().GetSocketAddress().GetAddress())
	h := attrs.GetRequest().GetHttp()
	if h == nil {
		// Not an HTTP request (the network ext_authz filter, or not Envoy
		// at all): there is no credential to check.
		return &rejection{401, engine.ReasonUnauthorized, "missing bearer token: the CheckRequest has no attributes.request.http"}
	}

	var sc edge.HeaderScan
	if len(h.GetHeaders()) > 0 {
		if len(h.Headers) > MaxHeaders { // refuse 10k headers before touching them
			r.SetTraceparent(rawTraceparent(h))
			return badRequest("more than " + strconv.Itoa(MaxHeaders) + " request headers")
		}
		for k, v := range h.Headers {
			if !sc.Add(k, v) {
				break
			}
		}
		r.Headers = edge.MapHeaders(h.Headers)
	} else if hm := h.GetHeaderMap().GetHeaders(); len(hm) > 0 {
		// encode_raw_headers: a list, repeats not merged, raw bytes.
		if len(hm) > MaxHeaders {
			r.SetTraceparent(rawTraceparent(h))
			return badRequest("more than " + strconv.Itoa(MaxHeaders) + " request headers")
		}
		for _, hv := range hm {
			v := hv.GetValue()
			if raw := hv.GetRawValue(); v == "" && len(raw) > 0 {
				if len(raw) > MaxHeaderValueLen {
					v = string(raw[:MaxHeaderValueLen+1]) // long enough to fail the bound, no longer
				} else {
					v = string(raw)
				}
			}
			if !sc.Add(hv.GetKey(), v) {
				break
			}
		}
		r.Headers = rawHeaderMap(hm)
	}
	r.SetHeaders(&sc)
	if sc.Bad() != "" {
		if r.TraceID == "" { // the scan may have stopped before it
			r.SetTraceparent(rawTraceparent(h))
		}
		return badRequest(sc.Bad())
	}

	// The peer's identity as Envoy verified it: the URI SAN (Istio: the
	// SPIFFE ID) of the client certificate of the mTLS connection, empty
	// without mTLS. Never the x-forwarded-client-cert header, which is a
	// claim the caller may have written itself.
	if p := attrs.GetSource().GetPrincipal(); p != "" {
		if len(p) > engine.MaxPrincipalLen || !utf8.ValidString(p) {
			return badRequest("attributes.source.principal is not valid UTF-8 or is longer than the limit of " + strconv.Itoa(engine.MaxPrincipalLen) + " bytes")
		}
		r.Principal = p
	}

	r.Method, r.Host, r.Path = h.GetMethod(), h.GetHost(), h.GetPath()
	if r.Method == "" {
		r.Method = sc.Get(edge.HMethod)
	}
	if r.Host == "" {
		r.Host = sc.Get(edge.HAuthority)
		if r.Host == "" {
			r.Host = sc.Get(edge.HHost)
		}
	}
	if r.Path == "" {
		r.Path = sc.Get(edge.HPath)
	}

	ext := attrs.GetContextExtensions()
	if len(ext) > MaxContextExtensions {
		return badRequest("more than " + strconv.Itoa(MaxContextExtensions) + " context_extensions")
	}
	for k, v := range ext {
		if len(k)+len(v) > MaxHeaderValueLen {
			return badRequest("context_extensions entry " + edge.QuoteName(k) + " is longer than the limit of " + strconv.Itoa(MaxHeaderValueLen) + " bytes")
		}
	}
	r.RouteAction = ext[ContextExtensionAction]
	r.RouteProtocol, r.RouteService = agentproto.Protocol(ext[ContextExtensionProtocol]), ext[ContextExtensionService]
	if v, ok := ext[ContextExtensionMinTier]; ok {
		t, err := trust.Parse(v)
		if err != nil {
			// The proxy's configuration is wrong: fail closed.
			return badRequest("context_extensions " + ContextExtensionMinTier + " is not a trust tier")
		}
		r.MinTier = t
	}

	// The body, for a route that reads it (with_request_body): as bytes
	// (pack_as_bytes, what MeshGuard's xDS configures) or as a string,
	// never both. Whether it is used is the engine's to say.
	if raw := h.GetRawBody(); len(raw) > 0 && h.GetBody() != "" {
		r.BodyError = ErrTwoBodies
	} else if len(raw) > 0 {
		setBody(r, raw)
	} else {
		setBody(r, h.GetBody())
	}
	return nil
}

// rawHeaderMap is the header_map of a CheckRequest (encode_raw_headers): a
// list, repeats not merged, values in value or raw_value.
type rawHeaderMap []*corev3.HeaderValue

// Lookup implements engine.Headers.
func (hm rawHeaderMap) Lookup(name string) (value string, n int) {
	for _, hv := range hm {
		if edge.SameName(hv.GetKey(), name) {
			value, n = hv.GetValue(), n+1
			if value == "" {
				value = string(hv.GetRawValue())
			}
		}
	}
	return value, n
}

// rawTraceparent finds the traceparent of a request refused mid-scan, so
// its denial still joins the caller's trace.
func rawTraceparent(h *authv3.AttributeContext_HttpRequest) string {
	if tp, ok := h.GetHeaders()["traceparent"]; ok {
		return tp
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		if hv.GetKey() == "traceparent" {
			if hv.GetValue() != "" {
				return hv.GetValue()
			}
			if len(hv.GetRawValue()) <= 64 {
				return string(hv.GetRawValue())
			}
		}
	}
	return ""
}

// checkResponse renders a decision for Envoy.
func checkResponse(d *engine.Decision) *authv3.CheckResponse {
	if d.Allowed {
		// The answer's four messages and its metadata's Struct in one
		// block: an allow is most answers, and each allocation of the
		// answer costs the Check (docs/performance.md).
		b := &allowBlock{}
		b.resp.DynamicMetadata = dynamicMetadata(d, &b.meta)
		b.status.Code = int32(codes.OK)
		b.resp.Status = &b.status
		okResponse(d, &b.ok)
		b.wrap.OkResponse = &b.ok
		b.resp.HttpResponse = &b.wrap
		return &b.resp
	}
	resp := &authv3.CheckResponse{DynamicMetadata: dynamicMetadata(d, &structpb.Struct{})}
	code := codes.PermissionDenied
	if d.Status == 401 {
		code = codes.Unauthenticated
	}
	resp.Status = &rpcstatus.Status{Code: int32(code), Message: clean(d.Reason)}
	rh := d.ResponseHeaders()
	hs := newHeaderSlab(len(rh) + 1)
	headers := make([]*corev3.HeaderValueOption, 0, len(rh)+1)
	headers = append(headers, hs.set("content-type", "application/json"))
	for _, h := range rh {
		headers = append(headers, hs.set(h.Name, h.Value))
	}
	resp.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(denyStatus(d))},
		Headers: headers,
		Body:    string(d.DenyBody()),
	}}
	return resp
}

// allowBlock is an allow's answer, allocated at once (checkResponse).
type allowBlock struct {
	resp   authv3.CheckResponse
	status rpcstatus.Status
	wrap   authv3.CheckResponse_OkResponse
	ok     authv3.OkHttpResponse
	meta   structpb.Struct
}

// okResponse sets the upstream identity headers and removes every identity
// header the caller sent that MeshGuard does not set itself
// (engine.Decision.UpstreamEdit), in ok.
func okResponse(d *engine.Decision, ok *authv3.OkHttpResponse) {
	up, remove := d.UpstreamEdit()
	rh := d.ResponseHeaders()
	hs := newHeaderSlab(len(up) + len(rh))
	ok.Headers = make([]*corev3.HeaderValueOption, 0, len(up))
	ok.HeadersToRemove = remove
	if len(rh) > 0 {
		ok.ResponseHeadersToAdd = make([]*corev3.HeaderValueOption, 0, len(rh))
	}
	for _, h := range up {
		ok.Headers = append(ok.Headers, hs.set(h.Name, h.Value))
	}
	for _, h := range rh {
		ok.ResponseHeadersToAdd = append(ok.ResponseHeadersToAdd, hs.set(h.Name, h.Value))
	}
}

// headerSlab allocates a response's header messages in one block rather
// than two objects per header: allocation was the largest single cost of a
// Check after gRPC itself.
type headerSlab []headerPair

// headerPair is a header option and the value it points to.
type headerPair struct {
	opt corev3.HeaderValueOption
	val corev3.HeaderValue
}

func newHeaderSlab(n int) headerSlab { return make(headerSlab, n) }

// set is a header that replaces any of the same name (append=false
// semantics, spelled with the non-deprecated append_action).
func (s *headerSlab) set(name, value string) *corev3.HeaderValueOption {
	i := len(*s) - 1
	p := &(*s)[i]
	*s = (*s)[:i]
	p.val.Key, p.val.Value = name, clean(value)
	p.opt.Header, p.opt.AppendAction = &p.val, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	return &p.opt
}

// denyStatus is the HTTP status of a denial: the decision's, or 403 if it
// is not an error status (a denial must never look like success to Envoy).
func denyStatus(d *engine.Decision) int {
	if d.Status < 400 || d.Status > 599 {
		return 403
	}
	return d.Status
}

// dynamicMetadata is emitted by Envoy under envoy.filters.http.ext_authz, for
// access logs and later filters (%DYNAMIC_METADATA(envoy.filters.http.ext_authz:decision_id)%):
// the decision's Metadata, filled into st (nil without any).
func dynamicMetadata(d *engine.Decision, st *structpb.Struct) *structpb.Struct {
	fields := d.Metadata()
	if len(fields) == 0 {
		return nil
	}
	// One block for the values and their oneof wrappers, as for headers
	// (see headerSlab).
	vals := make([]metaValue, len(fields))
	f := make(map[string]*structpb.Value, len(fields))
	for i, kv := range fields {
		v := &vals[i]
		v.str.StringValue = clean(kv.Value)
		v.val.Kind = &v.str
		f[kv.Name] = &v.val
	}
	st.Fields = f
	return st
}

// metaValue is a metadata string value and its oneof wrapper.
type metaValue struct {
	val structpb.Value
	str structpb.Value_StringValue
}

// clean makes s safe for a proto3 string (valid UTF-8, or marshalling the
// whole response fails) and for a header value (no CR, LF or NUL).
func clean(s string) string {
	if utf8.ValidString(s) && !strings.ContainsAny(s, "\r\n\x00") {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.NewReplacer("\r", " ", "\n", " ", "\x00", " ").Replace(s)
}
