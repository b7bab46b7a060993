//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package keystore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive advisory lock (flock) on dir/.lock, waiting
// for it if another goroutine or process holds it. flock locks belong to
// open file descriptions, so two goroutines of one process exclude each
// other as well.
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, filePerm)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := chmodIfNeeded(f, filePerm); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	fd := int(f.Fd())
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(fd, syscall.LOCK_UN)
		f.Close()
	}, nil
}

// tryLockFile takes an exclusive flock on path without waiting; ok is false
// if another open file description holds it.
func tryLockFile(path string) (unlock func(), ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, filePerm)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := chmodIfNeeded(f, filePerm); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	fd := int(f.Fd())
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, false, nil
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	// The holder before us may have moved or removed the file (acmemail
	// forget moves the whole directory) while we opened it: a lock on a
	// file path no longer names excludes nobody. Not ours then: the
	// caller tries again, on the file path names now.
	fi, ferr := f.Stat()
	pi, perr := os.Lstat(path)
	if ferr != nil || perr != nil || !os.SameFile(fi, pi) {
		syscall.Flock(fd, syscall.LOCK_UN)
		f.Close()
		return nil, false, nil
	}
	return func() {
		syscall.Flock(fd, syscall.LOCK_UN)
		f.Close()
	}, true, nil
}

// lockDirRead takes dir's lock for a method that only reads, without ever
// creating the lock file: an existing one that can be opened for writing
// is locked exclusively (exclusive is true: the caller may complete an
// interrupted install); one that cannot (a read-only state directory or
// file system, a lock file of another user) is opened read-only and
// locked shared, which keeps writers out while it reads. Without a lock
// file there is nothing to lock: unlock does nothing.
func lockDirRead(dir string) (unlock func(), exclusive bool, err error) {
	path := filepath.Join(dir, lockFileName)
	how := syscall.LOCK_EX
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		how = syscall.LOCK_SH
		f, err = os.Open(path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	fd := int(f.Fd())
	for {
		err = syscall.Flock(fd, how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(fd, syscall.LOCK_UN)
		f.Close()
	}, how == syscall.LOCK_EX, nil
}
