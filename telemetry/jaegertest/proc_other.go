//go:build !linux

package jaegertest

import "os/exec"

// killWithParent has no portable equivalent of Linux's parent-death signal;
// elsewhere a Jaeger can outlive a test binary that crashed.
func killWithParent(*exec.Cmd) {}
