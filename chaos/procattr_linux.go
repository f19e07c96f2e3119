package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a child get SIGKILL when the chaos process dies, so
// an interrupted run leaves no coordinator holding ports.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
