//go:build unix

package install

import "syscall"

// processAlive reports whether pid exists (signal 0; EPERM means it does).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
