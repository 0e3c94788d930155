// Package extauthz makes MeshGuard Envoy's external authorization server
// (docs/enforcement.md): the envoy.service.auth.v3.Authorization gRPC service, and the
// HTTP ext_authz handler Envoy's http_service mode calls under /envoy/authz.
//
// Both adapters do the same three things and nothing else:
//
//  1. turn what Envoy sends into an engine.Request, refusing input outside
//     the bounds below with a 400 denial before any work is done (the gRPC
//     adapter also takes the peer principal Envoy verified,
//     attributes.source.principal; the HTTP one has none to take, and never
//     reads x-forwarded-client-cert as an identity);
//  2. ask the one decision pipeline (engine.Engine.Check, behind Checker);
//  3. render the engine.Decision the way Envoy applies it: on allow, the
//     x-meshguard-* headers for the upstream (set, never appended, and any
//     identity header the caller forged removed) and for the caller; on
//     deny, the decision's HTTP status, headers and JSON body.
//
// MeshGuard's own failures (Check returns an error) become a gRPC
// Unavailable or an HTTP 503, never an allow: Envoy's failure_mode_allow
// decides, and MeshGuard's example configurations set it to false.
//
// The bounds (MaxHeaders, MaxHeaderBytes, MaxHeaderValueLen, MaxTokenLen,
// MaxContextExtensions) sit above Envoy's own defaults, so traffic that Envoy
// accepts is not refused here; they exist so that a hostile or misconfigured
// client cannot make MeshGuard scan or parse unbounded input. The engine
// bounds the fields it reads itself (path, host, action, resource, context).
// A request body (with_request_body) is taken whole or not at all: one
// over agentproto.MaxBody, marked partial by Envoy, or disagreeing with
// Content-Length is handed to the engine as engine.Request.BodyError, which
// a route declaring an agent protocol refuses (docs/mcp.md); other routes
// ignore the body. The gRPC adapter also reads the route's protocol and
// service from context_extensions. docs/enforcement.md documents all of it.
//
// Wiring, with eng an *engine.Engine:
//
//	gs := grpc.NewServer() // on GRPC_PORT
//	extauthz.NewServer(eng, log).Register(gs)
//	root := extauthz.Mount(mux, extauthz.NewHTTPHandler(eng, log)) // on PORT
package extauthz

import (
	"context"

	"github.com/meshguard/meshguard/engine"
)

// Checker decides requests; *engine.Engine is the implementation. It is an
// interface so tests can put a failing or counting decider behind the real
// adapters.
type Checker interface {
	Check(ctx context.Context, r *engine.Request) (engine.Decision, error)
}
