//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package keystore

import "sync"

var dirLocks sync.Map // dir -> *sync.Mutex

// lockDir serializes the goroutines of this process that work on dir. On
// this platform there is no lock between processes.
func lockDir(dir string) (unlock func(), err error) {
	m, _ := dirLocks.LoadOrStore(dir, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock, nil
}

var fileLocks sync.Map // path -> *sync.Mutex

// tryLockFile takes path's lock for this process without waiting. On this
// platform there is no lock between processes.
func tryLockFile(path string) (unlock func(), ok bool, err error) {
	m, _ := fileLocks.LoadOrStore(path, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	if !mu.TryLock() {
		return nil, false, nil
	}
	return mu.Unlock, true, nil
}

// lockDirRead is lockDir for a method that only reads: on this platform
// the lock is the process's own and needs no file.
func lockDirRead(dir string) (unlock func(), exclusive bool, err error) {
	unlock, err = lockDir(dir)
	return unlock, err == nil, err
}
