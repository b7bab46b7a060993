package keystore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNotFound is wrapped by the errors of [Store.LoadAccount],
// [Store.LoadCertificate] and friends when the requested state does not
// exist yet. Test for it with errors.Is.
var ErrNotFound = errors.New("not found")

// Store is a state directory (see the package documentation for its
// layout). Use [Open] to create one; a Store is safe for concurrent use by
// several goroutines and, on Unix, by several processes.
type Store struct {
	// Dir is the absolute path of the state directory.
	Dir string
	// Notice, if set, is told what a method did on its own to get past
	// damage that its caller should hear of, in one sentence: a pending
	// key that did not parse was moved aside (see [Store.CertKey]). It
	// may be called from several goroutines at once. Slots share it.
	Notice func(msg string)
	// slot, if set, puts the certificate methods' files in
	// certificates/<email>/<slot>/ (see [Store.Slot]).
	slot string
	// servers, if set, keys the certificate methods by host name and keeps
	// their files in servers/<host>/ (see [Store.Servers]).
	servers bool
}

func (s *Store) notice(msg string) {
	if s.Notice != nil {
		s.Notice(msg)
	}
}

// Names of the top-level subdirectories of a Store.
const (
	accountsDir     = "accounts"
	certificatesDir = "certificates"
	serversDir      = "servers"
	repliesDir      = "replies"
)

// DefaultDir returns the default state directory: $ACMEMAIL_HOME if set,
// else $XDG_DATA_HOME/acmemail if XDG_DATA_HOME is set to an absolute path
// (the XDG Base Directory specification says to ignore relative ones), else
// $HOME/.local/share/acmemail. Environment variables are read only through
// getenv (typically os.Getenv). It does not create the directory.
func DefaultDir(getenv func(string) string) (string, error) {
	if getenv == nil {
		return "", errors.New("default state directory: no getenv function")
	}
	if d := getenv("ACMEMAIL_HOME"); d != "" {
		return filepath.Clean(d), nil
	}
	if d := getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "acmemail"), nil
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "acmemail"), nil
	}
	return "", errors.New("default state directory: none of ACMEMAIL_HOME, XDG_DATA_HOME and HOME is set")
}

// Open opens the state directory dir, creating it (and its missing
// parents) with mode 0700 if needed. If dir already exists and is
// accessible to its group or to others, Open removes those permission
// bits (normally leaving 0700) rather than refusing: the directory holds
// private keys. Store.Dir is set to the absolute form of dir.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open state directory: empty path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open state directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("open state directory %s: %w", abs, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("open state directory %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open state directory %s: not a directory", abs)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(abs, perm&^0o077); err != nil {
			return nil, fmt.Errorf("open state directory %s: restrict permissions: %w", abs, err)
		}
	}
	return &Store{Dir: abs}, nil
}

// OpenExisting opens the state directory dir for a command that only
// reads it: unlike [Open] it creates nothing and changes nothing, not even
// permissions that are too open, so that a read-only state directory (or
// file system) can be read. A dir that does not exist is an error
// wrapping fs.ErrNotExist. The certificate methods that read
// ([Store.LoadCertificate], [Store.History], ...) write nothing either,
// unless an interrupted install needs completing.
func OpenExisting(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open state directory: empty path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open state directory %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("open state directory %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open state directory %s: not a directory", abs)
	}
	return &Store{Dir: abs}, nil
}

// subdir returns the path of elem below s.Dir, creating every missing
// directory on the way with mode 0700.
func (s *Store) subdir(elem ...string) (string, error) {
	// Nearly always the directory exists: one stat instead of a mkdir
	// (which takes the parent's lock for writing) and a stat per level.
	full := filepath.Join(append([]string{s.Dir}, elem...)...)
	if fi, err := os.Stat(full); err == nil && fi.IsDir() {
		return full, nil
	}
	p := s.Dir
	for _, e := range elem {
		p = filepath.Join(p, e)
		if err := mkdirPrivate(p); err != nil {
			return "", err
		}
	}
	return p, nil
}
