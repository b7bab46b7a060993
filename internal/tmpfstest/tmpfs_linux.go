package tmpfstest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Mount mounts a tmpfs of size bytes (rounded up to pages) on a new
// directory, which it returns, and unmounts it when the test ends.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs (CI runs as root, so this must work): %v", err)
		}
		t.Skipf("cannot mount a tmpfs here (%v); run as root on Linux", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Free returns the bytes free on the file system of dir.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// Fill fills the file system of dir with a file in dir so that leave
// bytes stay free (rounded down to whole pages, which is what a tmpfs
// counts: each file takes at least one), and returns the function that
// removes the file again. The test fails if more than leave is free
// (leave more than is free: nothing is written).
func Fill(t testing.TB, dir string, leave int64) (unfill func()) {
	t.Helper()
	f, err := os.CreateTemp(dir, ".filler-*")
	if err != nil {
		t.Fatalf("fill %s: %v", dir, err)
	}
	name := f.Name()
	unfill = func() {
		if err := os.Remove(name); err != nil {
			t.Errorf("unfill %s: %v", dir, err)
		}
	}
	if n := Free(t, dir) - leave; n > 0 {
		if err := unix.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
			f.Close()
			unfill()
			t.Fatalf("fill %s with %d bytes: %v", dir, n, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := Free(t, dir); got > leave {
		unfill()
		t.Fatalf("fill %s: %d bytes free, want at most %d", dir, got, leave)
	}
	return unfill
}
