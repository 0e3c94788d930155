// Package agent is the Go SDK an agent's own code uses to be governed by
// MeshGuard (docs/sdk.md): it presents the agent's token, asks before
// acting (POST /v1/check), mints a delegation when it hands work on (POST
// /v1/delegations), and carries the token, the W3C trace context and the
// delegation on the agent's outgoing requests (Headers, Transport,
// HTTPClient — the last plugs into the MCP Go SDK's Streamable HTTP
// client transport in one line).
//
// It fails closed: when MeshGuard cannot be asked or its answer cannot be
// read, every call returns an *Error of kind unavailable, never an allow.
// It retries only what is safe to retry (a connection that was refused; for
// a check, a 503 and a 429 whose Retry-After fits the bound; a delegation
// never after an answer), as the Python and TypeScript SDKs do, and no token
// ever appears in an error or a log line.
//
// Like package client, it builds on package api alone (and OpenTelemetry's
// trace API, to read the span a context carries); internal/archtest holds
// it to that.
package agent
