// Package api is the JSON of MeshGuard's HTTP API (docs/api.md): the
// request and response bodies the server (package admin) decodes and
// encodes and the Go client (package client) sends and reads, so the two
// cannot drift apart.
//
// It imports only the standard library and the leaf packages trust and
// audit, so a program that speaks the API does not pull in the control
// plane, the policy engine or the JWT library (client/deps_test.go holds
// that). Field names are camelCase, except the deny body's fields
// (trace_id, retry_after), which Envoy-side consumers already know by
// those names.
package api
