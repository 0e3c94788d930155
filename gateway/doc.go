// Package gateway is MeshGuard's own small gateway for agents without Envoy:
// `ANY /proxy/*` is decided by the engine and, when allowed, forwarded to
// one upstream, PROXY_TARGET, or — with PROXY_SERVICES (Config.Services) —
// `/proxy/<service>/…` to the service catalogue's service of that name,
// decided as an Envoy configured by MeshGuard's xDS decides it
// (catalog.Service.Prepare) (docs/gateway.md).
//
// For every request, in this order:
//
//  1. the per-client-IP limit (RATE_LIMIT_RPM), before any other work: it
//     protects the gateway itself, so it applies before authentication;
//  2. the request's shape: no CONNECT or absolute-form targets, request
//     headers within MaxHeaderBytes, a path under /proxy that the policy and
//     the upstream cannot read differently (no dot segments, empty segments,
//     encoded slashes or backslashes);
//  3. for a POST to a route declaring an agent protocol (MCP, A2A;
//     Checker.WantsBody), the body, read bounded (agentproto.MaxBody): the
//     engine decides on it, and an allowed request forwards exactly it;
//     then one engine.Request to the Checker (the engine), with the path
//     after the /proxy prefix (and the service's name), the upstream's host
//     (and the service's route), and, when the gateway is served over
//     mutual TLS, the SPIFFE ID of the client's verified certificate as the
//     peer principal (peerPrincipal);
//  4. a denial is answered with the decision's status, headers and JSON
//     body; a Checker error (engine.ErrInternal) with a 503; neither
//     reaches the upstream;
//  5. an allowed request — including one that audit mode lets through — is
//     forwarded by an httputil.ReverseProxy (Rewrite, never Director):
//     identity headers are MeshGuard's alone, the caller's bearer token
//     stays with MeshGuard, bodies stream both ways — except an agent-protocol
//     request's, and the answer to an allowed MCP list request, which is
//     filtered to what the caller may call (agentproto.FilterList).
//
// The gateway decides nothing itself: every policy answer comes from the
// Checker. What it owns is HTTP: framing, headers, streaming and the
// upstream's failures. docs/gateway.md describes it for users.
package gateway
