//go:build windows

package issuer

import (
	"context"
	"os"
	"os/exec"
	"syscall"
)

// ShellCommand runs line through cmd.exe, as a Windows user writes it:
// the command line is handed over as is (/s strips only the outer quotes),
// not quoted again by Go's argument escaping, which cmd.exe does not undo.
func ShellCommand(ctx context.Context, line string) *exec.Cmd {
	comspec := os.Getenv("ComSpec")
	if comspec == "" {
		comspec = `C:\Windows\System32\cmd.exe`
	}
	c := exec.CommandContext(ctx, comspec)
	c.SysProcAttr = &syscall.SysProcAttr{CmdLine: `/d /s /c "` + line + `"`}
	return c
}
