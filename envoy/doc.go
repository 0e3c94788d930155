// Package envoy holds MeshGuard's Envoy bootstrap files: envoy-static.yaml
// (ext_authz only, for those who keep their own configuration) and
// envoy-xds.yaml (everything from MeshGuard's xDS), and ParseBootstrap,
// which decodes a bootstrap as Envoy does and validates it (the tests of
// these files and of the Kubernetes examples use it). Package envoytest
// is the fail-closed check every Envoy configuration MeshGuard ships or
// generates is held to.
package envoy
