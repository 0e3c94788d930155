// Package kubernetes holds a Kubernetes example without Istio: an agent
// behind a plain Envoy sidecar that asks MeshGuard's ext_authz. Its test
// decodes the manifests strictly into the Kubernetes types and the
// sidecar's configuration into Envoy's Bootstrap, held to the fail-closed
// check of package envoy/envoytest.
package kubernetes
