// Package istio holds MeshGuard's Istio manifests: its Deployment and
// Service, the mesh configuration that makes it an ext_authz provider, an
// AuthorizationPolicy with action CUSTOM (whose comment binds a workload's
// SPIFFE ID to an agent), and a WasmPlugin. Its test decodes
// each strictly into the Kubernetes and istio.io/api types.
package istio
