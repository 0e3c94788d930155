package main

import "time"

// What the server image is: where its files go, who runs it and how. The
// Dockerfile at the repository's root describes the same image; the tests
// hold both to one table (dockerfile_test.go).
const (
	// binaryPath is the server binary in the image, on PATH.
	binaryPath = "/usr/local/bin/meshguard"
	// caBundlePath is where Go (and most TLS stacks) look on Linux.
	caBundlePath = "/etc/ssl/certs/ca-certificates.crt"
	// dataDir is DATA_DIR: the SQLite store, the generated admin token and
	// the audit checkpoint key. It is written at every start, so with a
	// read-only root filesystem a volume is mounted here.
	dataDir = "/var/lib/meshguard"
	// policiesDir is POLICIES_DIR, empty in the image (every request is
	// denied until policies are mounted here).
	policiesDir = "/etc/meshguard/policies"

	// The non-root user, as distroless images number it.
	uid      = 65532
	userName = "nonroot"
	homeDir  = "/home/nonroot"

	// pluginFile is the one file of the wasm filter's image: the name
	// Istio's image fetcher looks for in the last layer (the "compat"
	// variant of the Wasm image specification).
	pluginFile = "plugin.wasm"

	sourceURL   = "https://github.com/meshguard/meshguard"
	licenses    = "Apache-2.0"
	imageName   = "meshguard"
	filterName  = "meshguard-filter"
	description = "MeshGuard: governance for AI-agent meshes (Envoy ext_authz, xDS, gateway, audit trail)"
	filterDesc  = "MeshGuard's proxy-wasm filter (plugin.wasm) for Istio's WasmPlugin and Envoy"
)

// user is the image's USER: numeric, so Kubernetes' runAsNonRoot can check
// it without reading /etc/passwd.
const user = "65532:65532"

// entrypoint and cmd: `docker run IMAGE` serves; `docker run IMAGE policy
// validate …` runs any other command of the same binary.
func entrypoint() []string { return []string{binaryPath} }
func cmd() []string        { return []string{"serve"} }

// exposedPorts are the HTTP and gRPC ports (PORT, GRPC_PORT).
func exposedPorts() []string { return []string{"3100/tcp", "3101/tcp"} }

// env makes the defaults fit a container: listen on every interface, keep
// state in the data volume. Variables win over a --config file's keys; an
// empty variable counts as unset, so `HOST=` hands the key back to the file.
func env() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOST=0.0.0.0",
		"DATA_DIR=" + dataDir,
		"POLICIES_DIR=" + policiesDir,
	}
}

// stamp is what one build is: the values of its OCI labels.
type stamp struct {
	Version  string    // meshguard --version prints it; also the image tag
	Revision string    // the git commit
	Created  time.Time // the commit's time, so a rebuild is byte-identical
}

// labels are the OCI annotation keys, set as image labels (the config's
// Labels: what `docker inspect` shows and registries index).
func labels(s stamp, title, desc string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       title,
		"org.opencontainers.image.description": desc,
		"org.opencontainers.image.version":     s.Version,
		"org.opencontainers.image.revision":    s.Revision,
		"org.opencontainers.image.created":     s.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.source":      sourceURL,
		"org.opencontainers.image.licenses":    licenses,
	}
}
