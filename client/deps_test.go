package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLightDependencies holds the point of packages api and client: a
// program that speaks MeshGuard's API links neither the control plane,
// gRPC, the JWT library nor the server's own heavy packages.
func TestLightDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	const module = "github.com/meshguard/meshguard/"
	// Module packages api and client may depend on: the leaves.
	allowed := map[string]bool{module + "api": true, module + "client": true, module + "trust": true, module + "audit": true}
	forbidden := []string{"github.com/envoyproxy/", "google.golang.org/grpc", "google.golang.org/protobuf", "github.com/lestrrat-go/"}
	for _, pkg := range []string{module + "api", module + "client"} {
		t.Run(strings.TrimPrefix(pkg, module), func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", pkg, err)
			}
			deps := strings.Fields(string(out))
			if len(deps) == 0 || deps[len(deps)-1] != pkg {
				t.Fatalf("go list -deps %s listed %d packages, not ending with it", pkg, len(deps))
			}
			for _, d := range deps {
				if strings.HasPrefix(d, module) && !allowed[d] {
					t.Errorf("%s depends on %s: only api, trust and audit are light enough", pkg, d)
				}
				for _, f := range forbidden {
					if strings.HasPrefix(d, f) {
						t.Errorf("%s depends on %s", pkg, d)
					}
				}
			}
		})
	}
}
