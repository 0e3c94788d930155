package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel send the agent SIGTERM when the driver
// dies without stopping it (killed, or its output pipe closed), so no
// agent outlives the run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
