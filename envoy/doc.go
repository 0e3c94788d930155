// Package envoy holds MeshGuard's Envoy bootstrap files: envoy-static.yaml
// (ext_authz only, for those who keep their own configuration) and
// envoy-xds.yaml (everything from MeshGuard's xDS). Its test decodes each
// into Envoy's Bootstrap proto, every typed config resolved, and validates
// it.
package envoy
