//go:build !windows

package main

import (
	"context"
	"os/exec"
)

// shellCommand runs line through the system shell.
func shellCommand(ctx context.Context, line string) *exec.Cmd {
	return exec.CommandContext(ctx, "sh", "-c", line)
}
