package jaegertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRequireSwitch: without a Jaeger binary, Start skips the test unless
// MESHGUARD_REQUIRE_JAEGER says it is required (or is mistyped), when it
// fails it. Run in a child process: a failure is the outcome.
func TestRequireSwitch(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-jaeger")
	for _, tc := range []struct {
		require string
		want    []string // in the child's output
	}{
		{"", []string{"--- SKIP: TestRequireChild", "run scripts/jaeger.sh or `make jaeger`"}},
		{"0", []string{"--- SKIP: TestRequireChild"}},
		{"false", []string{"--- SKIP: TestRequireChild"}},
		{"1", []string{"--- FAIL: TestRequireChild", "is set, so this is a failure"}},
		{"true", []string{"--- FAIL: TestRequireChild", "is set, so this is a failure"}},
		{"yes", []string{"--- FAIL: TestRequireChild", `MESHGUARD_REQUIRE_JAEGER="yes": expected 1 (required) or 0`}},
	} {
		t.Run("require="+tc.require, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", "^TestRequireChild$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "MESHGUARD_JAEGERTEST_CHILD=1", EnvBin+"="+missing, EnvRequire+"="+tc.require)
			out, _ := cmd.CombinedOutput()
			for _, want := range tc.want {
				if !strings.Contains(string(out), want) {
					t.Fatalf("%s=%q: want %q from the child, got:\n%s", EnvRequire, tc.require, want, out)
				}
			}
		})
	}
}

// TestRequireChild is TestRequireSwitch's child.
func TestRequireChild(t *testing.T) {
	if os.Getenv("MESHGUARD_JAEGERTEST_CHILD") != "1" {
		t.Skip("run by TestRequireSwitch in a child process")
	}
	Start(t)
}
