//go:build windows

package main

import (
	"context"
	"os"
	"os/exec"
	"syscall"
)

// shellCommand runs line through cmd.exe, as a Windows user writes it:
// the command line is handed over as is (/s strips only the outer quotes),
// not quoted again by Go's argument escaping, which cmd.exe does not undo.
func shellCommand(ctx context.Context, line string) *exec.Cmd {
	comspec := os.Getenv("ComSpec")
	if comspec == "" {
		comspec = `C:\Windows\System32\cmd.exe`
	}
	c := exec.CommandContext(ctx, comspec)
	c.SysProcAttr = &syscall.SysProcAttr{CmdLine: `/d /s /c "` + line + `"`}
	return c
}
