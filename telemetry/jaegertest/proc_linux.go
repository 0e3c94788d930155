package jaegertest

import (
	"os/exec"
	"syscall"
)

// killWithParent makes the kernel kill Jaeger when the test binary dies
// without running cleanups (a panic, or `go test -timeout`), so no orphan
// keeps running and holding its memory after a failed run.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
