package main

// want is the server image as users are told it is (docs/install.md),
// written out here rather than read from spec.go: the archive the builder
// writes and the root Dockerfile are both held to it, so a change to
// either side fails until the other and this table agree.
var want = struct {
	user       string
	entrypoint []string
	cmd        []string
	ports      []string
	env        map[string]string
	labels     map[string]string // fixed labels; the stamped ones are checked per build
	binary     string
	dataDir    string
	policies   string
	caBundle   string
}{
	user:       "65532:65532",
	entrypoint: []string{"/usr/local/bin/meshguard"},
	cmd:        []string{"serve"},
	ports:      []string{"3100/tcp", "3101/tcp"},
	env: map[string]string{
		"HOST":         "0.0.0.0",
		"DATA_DIR":     "/var/lib/meshguard",
		"POLICIES_DIR": "/etc/meshguard/policies",
	},
	labels: map[string]string{
		"org.opencontainers.image.title":       "meshguard",
		"org.opencontainers.image.description": "MeshGuard: governance for AI-agent meshes (Envoy ext_authz, xDS, gateway, audit trail)",
		"org.opencontainers.image.source":      "https://github.com/meshguard/meshguard",
		"org.opencontainers.image.licenses":    "Apache-2.0",
	},
	binary:   "/usr/local/bin/meshguard",
	dataDir:  "/var/lib/meshguard",
	policies: "/etc/meshguard/policies",
	caBundle: "/etc/ssl/certs/ca-certificates.crt",
}

// stampedLabels are set from the build: version, commit and time.
var stampedLabels = []string{
	"org.opencontainers.image.version",
	"org.opencontainers.image.revision",
	"org.opencontainers.image.created",
}
