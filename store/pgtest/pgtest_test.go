package pgtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestRequireSwitch: without a database URL, NewDatabase skips the test
// unless MESHGUARD_REQUIRE_POSTGRES says it is required (or is mistyped),
// when it fails it. Run in a child process: a failure is the outcome.
func TestRequireSwitch(t *testing.T) {
	for _, tc := range []struct {
		require string
		want    []string // in the child's output
	}{
		{"", []string{"--- SKIP: TestRequireChild", "is not set (scripts/postgres.sh"}},
		{"0", []string{"--- SKIP: TestRequireChild"}},
		{"1", []string{"--- FAIL: TestRequireChild", "MESHGUARD_REQUIRE_POSTGRES is set, so this is a failure"}},
		{"true", []string{"--- FAIL: TestRequireChild", "MESHGUARD_REQUIRE_POSTGRES is set, so this is a failure"}},
		{"yes", []string{"--- FAIL: TestRequireChild", `MESHGUARD_REQUIRE_POSTGRES="yes": expected 1 (required) or 0`}},
	} {
		t.Run("require="+tc.require, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", "^TestRequireChild$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "MESHGUARD_PGTEST_CHILD=1", EnvURL+"=", EnvRequire+"="+tc.require)
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
	if os.Getenv("MESHGUARD_PGTEST_CHILD") != "1" {
		t.Skip("run by TestRequireSwitch in a child process")
	}
	NewDatabase(t)
}
