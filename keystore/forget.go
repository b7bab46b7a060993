package keystore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// forgottenDir holds the certificate directories of forgotten addresses
// (see [Store.Forget]).
const forgottenDir = "forgotten"

// forgottenTimeFormat stamps a forgotten directory: UTC to the second,
// sortable, without ':' (which some file systems refuse).
const forgottenTimeFormat = "20060102T150405Z"

// Forgotten is what [Store.Forget] did with an address's files.
type Forgotten struct {
	// Dir is forgotten/<email>-<time>/, where the address's certificate
	// directory was moved, whole; "" when it held nothing but lock files
	// (then it was removed).
	Dir string
	// Keys are the private keys kept in Dir, relative to it, sorted:
	// key.pem, pending-key.pem, archive/<time>/key.pem, encrypt/..., and
	// keys moved aside as corrupt.
	Keys []string
}

// Forget stops managing email: its certificate directory
// (certificates/<email>/, with the archive of earlier keys, a split
// pair's encrypt/ slot, a pending key and order, lock files) is renamed,
// in one step, to forgotten/<email>-<YYYYMMDDTHHMMSSZ>/ (0700; "-2", "-3"
// ... are added when that exists). Nothing is deleted, as S/MIME keys are
// needed to read old mail; the files keep their modes (keys 0600).
// Afterwards the address is not listed ([Store.ListIdentities]), and the
// next [Store.CertKey] starts afresh. A directory that holds nothing but
// lock files is removed instead. The caller holds the address's run lock
// ([Store.LockIdentity]); an address without a directory is an error
// wrapping ErrNotFound. Reply records and accounts are shared and stay.
func (s *Store) Forget(email string, now time.Time) (Forgotten, error) {
	if s.slot != "" {
		return Forgotten{}, fmt.Errorf("forget %s: a slot is forgotten with its address", email)
	}
	norm, dir, err := s.certDir(email, false)
	if err != nil {
		return Forgotten{}, fmt.Errorf("forget: %w", err)
	}
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Forgotten{}, fmt.Errorf("forget %s: nothing is kept for it: %w", norm, ErrNotFound)
	}
	if err != nil {
		return Forgotten{}, fmt.Errorf("forget %s: %w", norm, err)
	}
	if !fi.IsDir() {
		return Forgotten{}, fmt.Errorf("forget %s: %s is not a directory", norm, dir)
	}
	// Wait for a certificate method that is working in the directory
	// (list, export reading it) to finish.
	unlock, err := lockDir(dir)
	if err != nil {
		return Forgotten{}, fmt.Errorf("forget %s: %w", norm, err)
	}
	defer unlock()
	if only, err := onlyLockFiles(dir); err != nil {
		return Forgotten{}, fmt.Errorf("forget %s: %w", norm, err)
	} else if only {
		return Forgotten{}, removeLockDir(norm, dir)
	}
	root := filepath.Join(s.Dir, forgottenDir)
	if err := mkdirPrivate(root); err != nil {
		return Forgotten{}, fmt.Errorf("forget %s: %w", norm, err)
	}
	base := norm + "-" + now.UTC().Format(forgottenTimeFormat)
	var dst string
	for i := 1; ; i++ {
		dst = filepath.Join(root, base)
		if i > 1 {
			dst = fmt.Sprintf("%s-%d", dst, i)
		}
		// A rename onto an existing empty directory would replace it:
		// look first (the run lock keeps out another forget of email).
		ok, err := exists(dst)
		if err != nil {
			return Forgotten{}, fmt.Errorf("forget %s: %w", norm, err)
		}
		if !ok {
			break
		}
		if i >= 1000 {
			return Forgotten{}, fmt.Errorf("forget %s: %s exists", norm, dst)
		}
	}
	if err := os.Rename(dir, dst); err != nil {
		return Forgotten{}, fmt.Errorf("forget %s: %w", norm, err)
	}
	if err := syncDir(root); err != nil {
		return Forgotten{}, fmt.Errorf("forget %s: %w", norm, err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return Forgotten{}, fmt.Errorf("forget %s: %w", norm, err)
	}
	keys, err := keyFiles(dst)
	if err != nil {
		return Forgotten{Dir: dst}, fmt.Errorf("forget %s: moved to %s, but %w", norm, dst, err)
	}
	return Forgotten{Dir: dst, Keys: keys}, nil
}

// onlyLockFiles reports whether dir holds nothing but lock files.
func onlyLockFiles(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() != lockFileName && e.Name() != runLockFile {
			return false, nil
		}
	}
	return true, nil
}

// removeLockDir removes a certificate directory that holds only lock
// files (a run that stopped before it made a key): there is nothing to
// keep. A file that appeared meanwhile makes the removal of dir fail.
func removeLockDir(norm, dir string) error {
	for _, name := range []string{runLockFile, lockFileName} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("forget %s: %w", norm, err)
		}
	}
	if err := os.Remove(dir); err != nil {
		return fmt.Errorf("forget %s: %w", norm, err)
	}
	return syncDir(filepath.Dir(dir))
}

// isKeyFile reports whether name is a private key file of a certificate
// directory (the installed key, a pending one, one moved aside).
func isKeyFile(name string) bool {
	return name == keyFile || name == pendingKeyFile || strings.HasPrefix(name, pendingKeyFile+corruptInfix)
}

// keyFiles lists the private key files below dir, relative to it, sorted.
func keyFiles(dir string) ([]string, error) {
	var keys []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && isKeyFile(d.Name()) {
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			keys = append(keys, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(keys)
	return keys, err
}
