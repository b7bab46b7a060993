//go:build unix

package issuer

import "syscall"

// nonBlock opens a FIFO without waiting for a writer, so that the regular
// file check can refuse it.
const nonBlock = syscall.O_NONBLOCK
