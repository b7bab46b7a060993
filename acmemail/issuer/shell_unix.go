//go:build !windows

package issuer

import (
	"context"
	"os/exec"
)

// ShellCommand runs line through the system shell.
func ShellCommand(ctx context.Context, line string) *exec.Cmd {
	return exec.CommandContext(ctx, "sh", "-c", line)
}
