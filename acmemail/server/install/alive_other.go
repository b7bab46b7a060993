//go:build !unix

package install

// processAlive: Install refuses to run on systems without Postfix and
// Dovecot, so this is never asked there.
func processAlive(pid int) bool { return false }
