//go:build !linux

package tmpfstest

import "testing"

// Mount skips the test: mounting a tmpfs needs Linux.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	t.Skip("a tmpfs of its own needs Linux")
	return ""
}

// Free is not reached: Mount skips the test.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	t.Skip("a tmpfs of its own needs Linux")
	return 0
}

// Fill is not reached: Mount skips the test.
func Fill(t testing.TB, dir string, leave int64) (unfill func()) {
	t.Helper()
	t.Skip("a tmpfs of its own needs Linux")
	return func() {}
}
