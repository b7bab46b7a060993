package keystore

import (
	"fmt"
	"path/filepath"
)

// lockForRead takes the lock of the certificate directory dir for a
// method that only reads, and completes an interrupted install there
// (finishInstall). It writes nothing when there is nothing to complete,
// not even a lock file, so a read-only state directory (or file system)
// can be read; an install that needs completing where nothing can be
// written is an error that names it.
func lockForRead(dir string) (unlock func(), err error) {
	unlock, exclusive, err := lockDirRead(dir)
	if err != nil {
		return nil, err
	}
	if !exclusive {
		staged, err := stagedInstall(dir)
		if err != nil || staged == "" {
			if err != nil {
				unlock()
				return nil, err
			}
			return unlock, nil
		}
		unlock()
		// Completing it writes: that takes the lock, made if need be.
		if unlock, err = lockDir(dir); err != nil {
			return nil, fmt.Errorf("cannot complete the interrupted install of %s: %w", staged, err)
		}
	}
	if err := finishInstall(dir); err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// stagedInstall is the path of the first file of a staged install found
// in dir (see finishInstall), or "".
func stagedInstall(dir string) (string, error) {
	for _, name := range []string{chainFile, metaFile, leafFile} {
		p := filepath.Join(dir, name+stagedSuffix)
		ok, err := exists(p)
		if err != nil {
			return "", err
		}
		if ok {
			return p, nil
		}
	}
	return "", nil
}
