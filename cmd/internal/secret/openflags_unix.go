//go:build unix

package secret

import "syscall"

// openFlags open a secret file without waiting: a named pipe opens at once
// instead of when a writer comes, and a terminal does not become the
// controlling one.
const openFlags = syscall.O_NONBLOCK | syscall.O_NOCTTY
