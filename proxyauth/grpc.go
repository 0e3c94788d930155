package proxyauth

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshguard/meshguard/xds"
)

// guarded says whether a gRPC method is one of the discovery services
// (ADS and the per-type ones, streams and fetches). ext_authz's Check,
// health and reflection are not: they reveal no configuration (Check is
// protected by mTLS when TLS_CLIENT_CA_FILE is set).
func guarded(method string) bool {
	return strings.HasPrefix(method, "/envoy.service.") && strings.Contains(method, "DiscoveryService/")
}

// unauthenticated is what a refused client is told: what would let it in,
// never what it sent.
var unauthenticated = status.Error(codes.Unauthenticated,
	"xDS requires a client certificate or a bearer credential (authorization metadata) of a proxy listed in MeshGuard's PROXIES_FILE")

// authenticate finds the proxy a call comes from: by its verified client
// certificate, else by the bearer credential in its metadata. An empty
// name with a nil error is an unauthenticated client let in by
// InsecureAllowUnauthenticated.
func (a *Authenticator) authenticate(ctx context.Context) (string, error) {
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			if name, err := a.Certificate(ti.State.VerifiedChains[0][0]); err == nil {
				return name, nil
			}
		}
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for _, v := range md.Get("authorization") {
			if tok, ok := cutBearer(v); ok {
				if name, err := a.Token(tok); err == nil {
					return name, nil
				}
			}
		}
	}
	if a.cfg.InsecureAllowUnauthenticated {
		return "", nil
	}
	return "", ErrUnauthenticated
}

// Vouches reports whether a call comes from a listed proxy, by its
// verified client certificate or the bearer credential in its metadata:
// whether what it reports about the requests it forwards (ext_authz's
// source principal) is believed. XDS_INSECURE_ALLOW_UNAUTHENTICATED does
// not make an unlisted caller one: a principal is a credential.
func (a *Authenticator) Vouches(ctx context.Context) bool {
	name, err := a.authenticate(ctx)
	return err == nil && name != ""
}

func cutBearer(v string) (string, bool) {
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:]), true
	}
	return "", false
}

func (a *Authenticator) refuse(ctx context.Context, method string) error {
	remote := ""
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	a.log.Warn("xds: refused a client that is no listed proxy", "method", method, "remote", remote)
	return unauthenticated
}

// UnaryInterceptor refuses discovery fetches from unauthenticated clients.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if guarded(info.FullMethod) {
			if _, err := a.authenticate(ctx); err != nil {
				return nil, a.refuse(ctx, info.FullMethod)
			}
		}
		return h(ctx, req)
	}
}

// StreamInterceptor refuses discovery streams from unauthenticated clients
// and binds each stream to its proxy: the wasm filter's configuration it
// is sent carries that proxy's own filter credential.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if !guarded(info.FullMethod) {
			return h(srv, ss)
		}
		name, err := a.authenticate(ss.Context())
		if err != nil {
			return a.refuse(ss.Context(), info.FullMethod)
		}
		bs := &boundStream{ServerStream: ss, a: a, name: name, authenticated: name, revoked: make(chan struct{})}
		a.streams.add(bs)
		defer a.streams.remove(bs)
		err = h(srv, bs)
		select {
		case <-bs.revoked:
			a.log.Warn("xds: ended the stream of a proxy no longer listed", "proxy", name, "method", info.FullMethod)
			return unauthenticated
		default:
			return err
		}
	}
}

// openStreams are the discovery streams open now, so that a reload of the
// proxies file ends those of a proxy it no longer lists.
type openStreams struct {
	mu sync.Mutex
	m  map[*boundStream]struct{}
}

func (o *openStreams) add(s *boundStream) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[*boundStream]struct{}{}
	}
	o.m[s] = struct{}{}
}

func (o *openStreams) remove(s *boundStream) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, s)
}

// revokeUnlisted ends every open stream whose credentials no longer
// authenticate it as the proxy it opened as (its entry was removed, its
// digest or identity unlisted, or they now name another proxy).
func (a *Authenticator) revokeUnlisted() {
	a.streams.mu.Lock()
	defer a.streams.mu.Unlock()
	for s := range a.streams.m {
		if name, err := a.authenticate(s.ServerStream.Context()); err != nil || name != s.authenticated {
			s.revoke()
		}
	}
}

// boundStream is a discovery stream of one proxy.
type boundStream struct {
	grpc.ServerStream
	a *Authenticator
	// authenticated is the proxy the stream's credentials named when it
	// opened ("" for an insecure client).
	authenticated string
	// revoked is closed when that proxy leaves the proxies file.
	revoked    chan struct{}
	revokeOnce sync.Once

	mu   sync.Mutex
	name string // "" until the node is known, for an insecure client
}

func (s *boundStream) revoke() { s.revokeOnce.Do(func() { close(s.revoked) }) }

// errRevoked ends a stream whose proxy left the proxies file.
var errRevoked = status.Error(codes.Unauthenticated, "the proxy is no longer listed in MeshGuard's PROXIES_FILE")

// RecvMsg learns an unauthenticated client's node id from its first
// request: its filter credential is minted for that (unverified) name.
// It returns errRevoked as soon as the stream's proxy is revoked: the
// discovery server waits on RecvMsg, and only its failing ends the
// stream. The receive left waiting ends with the stream.
func (s *boundStream) RecvMsg(m any) error {
	select {
	case <-s.revoked:
		return errRevoked
	default:
	}
	// Discovery requests are few (one per push and type), so a goroutine
	// per receive costs little.
	done := make(chan error, 1)
	go func() { done <- s.ServerStream.RecvMsg(m) }()
	var err error
	select {
	case err = <-done:
	case <-s.revoked:
		return errRevoked
	}
	if err == nil {
		if r, ok := m.(interface{ GetNode() *corev3.Node }); ok && r.GetNode().GetId() != "" {
			s.mu.Lock()
			if s.name == "" {
				s.name = InsecureName(r.GetNode().GetId())
			}
			s.mu.Unlock()
		}
	}
	return err
}

// SendMsg puts the stream's proxy's filter credential in the wasm
// filter's configuration. It never sends a configuration it could not
// bind: the stream ends instead.
func (s *boundStream) SendMsg(m any) error {
	select {
	case <-s.revoked:
		return errRevoked
	default:
	}
	s.mu.Lock()
	name := s.name
	s.mu.Unlock()
	if name == "" {
		name = InsecureName("")
	}
	cred := s.a.FilterCredential(name)
	switch r := m.(type) {
	case *discoveryv3.DiscoveryResponse:
		if r.GetTypeUrl() == resourcev3.ExtensionConfigType {
			r = proto.Clone(r).(*discoveryv3.DiscoveryResponse)
			for i, res := range r.Resources {
				bound, err := bindFilterCredential(res, cred)
				if err != nil {
					s.a.log.Error("xds: binding the wasm filter's configuration to its proxy failed; the stream ends", "proxy", name, "error", err)
					return status.Error(codes.Internal, "the wasm filter's configuration could not be prepared")
				}
				r.Resources[i] = bound
			}
			m = r
		}
	case *discoveryv3.DeltaDiscoveryResponse:
		if r.GetTypeUrl() == resourcev3.ExtensionConfigType {
			r = proto.Clone(r).(*discoveryv3.DeltaDiscoveryResponse)
			for _, res := range r.Resources {
				bound, err := bindFilterCredential(res.GetResource(), cred)
				if err != nil {
					s.a.log.Error("xds: binding the wasm filter's configuration to its proxy failed; the stream ends", "proxy", name, "error", err)
					return status.Error(codes.Internal, "the wasm filter's configuration could not be prepared")
				}
				res.Resource = bound
			}
			m = r
		}
	}
	return s.ServerStream.SendMsg(m)
}

// bindFilterCredential returns res with the wasm filter configuration's
// meshguard.token set to cred (res itself if it is another extension).
func bindFilterCredential(res *anypb.Any, cred string) (*anypb.Any, error) {
	var ext corev3.TypedExtensionConfig
	if err := res.UnmarshalTo(&ext); err != nil {
		return nil, fmt.Errorf("extension config: %w", err)
	}
	if ext.GetName() != xds.WasmFilter {
		return res, nil
	}
	var w wasmfilterv3.Wasm
	if err := ext.GetTypedConfig().UnmarshalTo(&w); err != nil {
		return nil, fmt.Errorf("wasm filter: %w", err)
	}
	var doc wrapperspb.StringValue
	if err := w.GetConfig().GetConfiguration().UnmarshalTo(&doc); err != nil {
		return nil, fmt.Errorf("wasm filter configuration: %w", err)
	}
	out, err := setToken([]byte(doc.GetValue()), cred)
	if err != nil {
		return nil, err
	}
	if w.Config.Configuration, err = anypb.New(wrapperspb.String(string(out))); err != nil {
		return nil, err
	}
	if ext.TypedConfig, err = anypb.New(&w); err != nil {
		return nil, err
	}
	return anypb.New(&ext)
}

// setToken sets meshguard.token in a filter configuration document,
// leaving every other member's bytes as they are.
func setToken(doc []byte, cred string) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, fmt.Errorf("wasm filter configuration: %w", err)
	}
	var up map[string]json.RawMessage
	if err := json.Unmarshal(top["meshguard"], &up); err != nil {
		return nil, fmt.Errorf("wasm filter configuration: meshguard: %w", err)
	}
	var placeholder string
	if err := json.Unmarshal(up["token"], &placeholder); err != nil || !strings.HasPrefix(placeholder, PlaceholderPrefix) {
		// Only a configuration made for binding is bound: anything else
		// (a credential already in it) is a generation bug.
		return nil, fmt.Errorf("wasm filter configuration: meshguard.token is not a placeholder")
	}
	tok, _ := json.Marshal(cred)
	up["token"] = tok
	var err error
	if top["meshguard"], err = json.Marshal(up); err != nil {
		return nil, err
	}
	return json.Marshal(top)
}
