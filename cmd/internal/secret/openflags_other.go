//go:build !unix

package secret

// openFlags: opening a file does not wait on these systems.
const openFlags = 0
