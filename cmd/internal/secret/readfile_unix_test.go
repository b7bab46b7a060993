//go:build unix

package secret

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readWithin runs ReadFile(path), failing the test if it does not return
// within a few seconds; unblock, if set, is called then to end it.
func readWithin(t *testing.T, path string, unblock func()) (string, error) {
	t.Helper()
	type result struct {
		v   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := ReadFile(path)
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(5 * time.Second):
		if unblock != nil {
			unblock()
		}
		t.Fatalf("ReadFile(%s) blocked", path)
		return "", nil
	}
}

// TestReadFileFIFO: a named pipe is refused at once, not waited on.
func TestReadFileFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	_, err := readWithin(t, fifo, func() {
		// A writer ends a blocked open.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
	})
	if err == nil || err.Error() != fifo+" is not a regular file (a named pipe)" {
		t.Errorf("ReadFile(fifo) = %v, want that it is not a regular file (a named pipe)", err)
	}
	if out := hints(err); !strings.Contains(out, "<(command)") {
		t.Errorf("hints = %q, want how to pass a command's output", out)
	}
}

// TestReadFileDevice: /dev/zero is refused, not read as 64 KiB of NULs.
func TestReadFileDevice(t *testing.T) {
	_, err := readWithin(t, "/dev/zero", nil)
	if err == nil || err.Error() != "/dev/zero is not a regular file (a device)" {
		t.Errorf("ReadFile(/dev/zero) = %v, want that it is not a regular file (a device)", err)
	}
}

// TestReadFileShellPipe: what bash's <(command) passes, a pipe named by a
// path under /dev/fd/ (or /proc/self/fd/), is read; an endless one is cut
// off with an error.
func TestReadFileShellPipe(t *testing.T) {
	dirs := []string{"/dev/fd/"}
	if _, err := os.Stat("/proc/self/fd"); err == nil {
		dirs = append(dirs, "/proc/self/fd/")
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			go func() {
				w.WriteString("from-pipe\r\nsecond\n")
				w.Close()
			}()
			path := fmt.Sprintf("%s%d", dir, r.Fd())
			if v, err := readWithin(t, path, nil); err != nil || v != "from-pipe" {
				t.Errorf("ReadFile(%s) = %q, %v; want from-pipe", path, v, err)
			}

			// Like <(cat /dev/zero): never a newline, never an end.
			r2, w2, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			done := make(chan struct{})
			go func() {
				defer w2.Close()
				zeros := make([]byte, 4096)
				for {
					select {
					case <-done:
						return
					default:
					}
					if _, err := w2.Write(zeros); err != nil {
						return
					}
				}
			}()
			defer close(done)
			path = fmt.Sprintf("%s%d", dir, r2.Fd())
			if _, err := readWithin(t, path, func() { r2.Close() }); err == nil || !strings.Contains(err.Error(), "longer than 64 KiB") {
				t.Errorf("ReadFile(%s) of endless zeros = %v, want that the first line is too long", path, err)
			}
		})
	}
}
