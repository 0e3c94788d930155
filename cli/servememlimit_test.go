package cli

import (
	"bytes"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"
)

// TestServeSetsTheMemoryLimit: serve sets Go's soft memory limit to
// GC_MEMORY_LIMIT_PERCENT of its cgroup's memory limit, unless the
// percentage is 0, GOMEMLIMIT or a limit in the process is set, or there
// is no limit to read, and restores the limit before when it returns.
func TestServeSetsTheMemoryLimit(t *testing.T) {
	limited := fstest.MapFS{
		"proc/self/cgroup":         {Data: []byte("0::/\n")},
		"sys/fs/cgroup/memory.max": {Data: []byte("268435456\n")},
	}
	for _, tc := range []struct {
		name       string
		percent    int
		gomemlimit string
		root       fstest.MapFS
		want       int64 // the soft limit while serve runs; MaxInt64: none
		logLine    string
		set        int64 // a limit set in the process first, as an embedding program might (0: none)
	}{
		{"90% of a container's 256 MiB", 90, "", limited, 241591910, "soft memory limit set from the cgroup's memory limit", 0},
		{"all of it", 100, "", limited, 256 << 20, "soft_limit_bytes=268435456", 0},
		{"0: none", 0, "", limited, math.MaxInt64, "", 0},
		{"the operator's GOMEMLIMIT wins", 90, "1GiB", limited, math.MaxInt64, "GC_MEMORY_LIMIT_PERCENT not used: GOMEMLIMIT is set", 0},
		{"no cgroup limit", 90, "", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("0::/\n")}, "sys/fs/cgroup/memory.max": {Data: []byte("max\n")}}, math.MaxInt64, "", 0},
		{"not Linux", 90, "", fstest.MapFS{}, math.MaxInt64, "", 0},
		{"a limit already set in the process wins", 90, "", limited, 1 << 30, "GC_MEMORY_LIMIT_PERCENT not used: a memory limit is already set", 1 << 30},
		{"an unreadable limit is logged, none set", 90, "", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("0::/\n")}, "sys/fs/cgroup/memory.max": {Data: []byte("lots\n")}}, math.MaxInt64,
			"GC_MEMORY_LIMIT_PERCENT not used: the cgroup's memory limit cannot be read", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := debug.SetMemoryLimit(-1)
			if before != math.MaxInt64 {
				t.Skip("a memory limit is set in this process (GOMEMLIMIT?): serve leaves it alone")
			}
			if tc.set != 0 {
				debug.SetMemoryLimit(tc.set)
				t.Cleanup(func() { debug.SetMemoryLimit(math.MaxInt64) })
				before = tc.set
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			getenv := func(k string) string {
				if k == "GOMEMLIMIT" {
					return tc.gomemlimit
				}
				return ""
			}
			restore := limitMemory(tc.percent, getenv, tc.root, log)
			got := debug.SetMemoryLimit(-1)
			restore()
			if after := debug.SetMemoryLimit(-1); after != before {
				debug.SetMemoryLimit(before)
				t.Errorf("after serve: limit %d, want the one before, %d", after, before)
			}
			if got != tc.want {
				t.Errorf("limit while serving = %d, want %d", got, tc.want)
			}
			if !strings.Contains(logs.String(), tc.logLine) {
				t.Errorf("logs %q, want %q", logs.String(), tc.logLine)
			}
		})
	}
}
