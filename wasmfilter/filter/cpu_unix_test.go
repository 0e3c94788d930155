//go:build unix

package filter_test

import (
	"syscall"
	"testing"
)

// reportCPU reports the process's CPU time (user and system) per
// operation as cpu-ns/op, from here to b's end: on a machine shared with
// other work, wall time per operation counts the waits for a core too,
// and CPU time much less so. Call it just before the loop.
func reportCPU(b *testing.B) func() {
	start := cpuNanos()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuNanos()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
