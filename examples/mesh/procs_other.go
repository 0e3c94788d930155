//go:build !linux

package main

import "os/exec"

// dieWithParent: only Linux offers a parent-death signal; elsewhere the
// driver's deferred stops are what end the agents.
func dieWithParent(*exec.Cmd) {}
