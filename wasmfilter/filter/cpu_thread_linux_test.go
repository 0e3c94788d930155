package filter_test

import (
	"runtime"
	"syscall"
	"testing"
	"unsafe"
)

// clockThreadCPUTime is Linux's CLOCK_THREAD_CPUTIME_ID (the syscall
// package has no name for it): the calling thread's CPU time, to the
// nanosecond (getrusage's thread figures move in scheduler ticks).
const clockThreadCPUTime = 3

// reportThreadCPU reports the CPU time (user and system) of the thread
// running the benchmark, per operation, as thread-cpu-ns/op, from here to
// b's end. It locks the goroutine to its thread meanwhile. Under a host
// the compiled filter runs on the thread that calls it, with its own Go
// runtime's collections, as on an Envoy worker thread; the test process's
// other work (its own collector, the MeshGuard server filtertest starts)
// is on other threads and is left out, where cpu-ns/op counts it.
func reportThreadCPU(b *testing.B) func() {
	runtime.LockOSThread()
	start, ok := threadCPUNanos()
	return func() {
		end, ok2 := threadCPUNanos()
		runtime.UnlockOSThread()
		if ok && ok2 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "thread-cpu-ns/op")
		}
	}
}

func threadCPUNanos() (int64, bool) {
	var ts syscall.Timespec
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, false
	}
	return ts.Nano(), true
}
