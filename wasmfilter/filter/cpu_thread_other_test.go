//go:build !linux

package filter_test

import "testing"

// reportThreadCPU reports nothing where a thread's own CPU time is not
// at hand (cpu_thread_linux_test.go).
func reportThreadCPU(*testing.B) func() { return func() {} }
