package keystore

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// nextAccountKeyFile holds the key an account key rollover is moving to,
// from before the keyChange request until the rollover is committed.
const nextAccountKeyFile = "account.key.next"

// NextAccountKey returns the key that an account key rollover for the
// ACME directory URL directory moves to. If an earlier rollover was
// interrupted, its key is returned and resumed is true; the caller must
// then find out from the CA whether that rollover took effect (if it did,
// [Store.CommitAccountKey]; if not, it can retry with the same key). Else
// a new key of type kt is generated and written (0600, exclusively and
// durably) before NextAccountKey returns, so that it is on disk before the
// CA ever hears of it.
func (s *Store) NextAccountKey(directory string, kt KeyType) (key crypto.Signer, resumed bool, err error) {
	dir, err := s.AccountDir(directory)
	if err != nil {
		return nil, false, fmt.Errorf("next account key for %s: %w", directory, err)
	}
	if ok, err := exists(filepath.Join(dir, accountKeyFile)); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("there is no account key to replace: %w", ErrNotFound)
		}
		return nil, false, fmt.Errorf("next account key for %s: %w", directory, err)
	}
	path := filepath.Join(dir, nextAccountKeyFile)
	if key, err := readKey(path); err == nil {
		return key, true, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("next account key for %s: %w", directory, err)
	}
	if !kt.valid() {
		return nil, false, fmt.Errorf("next account key for %s: unknown key type %q", directory, kt)
	}
	key, err = GenerateKey(kt)
	if err != nil {
		return nil, false, fmt.Errorf("next account key for %s: %w", directory, err)
	}
	data, err := MarshalPrivateKey(key)
	if err != nil {
		return nil, false, fmt.Errorf("next account key for %s: %w", directory, err)
	}
	if err := writeFileExclusive(path, data, filePerm); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, fmt.Errorf("next account key for %s: %w", directory, err)
		}
		// A concurrent rollover won the race: its key is the next one.
		if key, err = readKey(path); err != nil {
			return nil, false, fmt.Errorf("next account key for %s: %w", directory, err)
		}
		return key, true, nil
	}
	return key, false, nil
}

// PendingAccountKey returns the key of an interrupted rollover, or an
// error wrapping [ErrNotFound] if no rollover is pending.
func (s *Store) PendingAccountKey(directory string) (crypto.Signer, error) {
	dir, err := s.AccountDir(directory)
	if err != nil {
		return nil, fmt.Errorf("pending account key for %s: %w", directory, err)
	}
	key, err := readKey(filepath.Join(dir, nextAccountKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pending account key for %s: %w", directory, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pending account key for %s: %w", directory, err)
	}
	return key, nil
}

// CommitAccountKey finishes a rollover the CA accepted: the current
// account.key is archived (accounts/<CA>/archive/<time>/account.key, never
// deleted) and account.key.next becomes account.key, by an atomic rename.
// It returns the archived key's path.
func (s *Store) CommitAccountKey(directory string) (archived string, err error) {
	return s.retireAccountKey(directory, true)
}

// AbandonAccountKey gives up an interrupted rollover that the CA never
// accepted: account.key.next is moved to the archive (as
// account.key.next) and account.key stays. It returns the archived path.
func (s *Store) AbandonAccountKey(directory string) (archived string, err error) {
	return s.retireAccountKey(directory, false)
}

func (s *Store) retireAccountKey(directory string, commit bool) (string, error) {
	op := "abandon the account key rollover"
	if commit {
		op = "commit the account key rollover"
	}
	dir, err := s.AccountDir(directory)
	if err != nil {
		return "", fmt.Errorf("%s for %s: %w", op, directory, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return "", fmt.Errorf("%s for %s: %w", op, directory, err)
	}
	defer unlock()
	next := filepath.Join(dir, nextAccountKeyFile)
	if _, err := readKey(next); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("no rollover is pending: %w", ErrNotFound)
		}
		return "", fmt.Errorf("%s for %s: %w", op, directory, err)
	}
	arch, err := newArchiveDir(dir, time.Now())
	if err != nil {
		return "", fmt.Errorf("%s for %s: %w", op, directory, err)
	}
	if !commit {
		dst := filepath.Join(arch, nextAccountKeyFile)
		if err := preserve(next, dst); err != nil {
			return "", fmt.Errorf("%s for %s: %w", op, directory, err)
		}
		if err := os.Remove(next); err != nil {
			return "", fmt.Errorf("%s for %s: %w", op, directory, err)
		}
		return dst, syncDir(dir)
	}
	cur := filepath.Join(dir, accountKeyFile)
	dst := filepath.Join(arch, accountKeyFile)
	if err := preserve(cur, dst); err != nil {
		return "", fmt.Errorf("%s for %s: %w", op, directory, err)
	}
	if err := syncDir(arch); err != nil {
		return "", fmt.Errorf("%s for %s: %w", op, directory, err)
	}
	// The old key is safe in the archive; now the atomic switch.
	if err := os.Rename(next, cur); err != nil {
		return "", fmt.Errorf("%s for %s: %w", op, directory, err)
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("%s for %s: %w", op, directory, err)
	}
	return dst, nil
}

// RetireAccount moves the account for the ACME directory URL directory
// (account.key, account.json and any pending account.key.next) into
// accounts/<CA>/archive/<time>/, after the account was deactivated at the
// CA. The next [Store.AccountKey] makes a new key. Nothing is deleted. It
// returns the archive directory.
func (s *Store) RetireAccount(directory string) (string, error) {
	const op = "retire the account"
	dir, err := s.AccountDir(directory)
	if err != nil {
		return "", fmt.Errorf("%s for %s: %w", op, directory, err)
	}
	if ok, err := exists(filepath.Join(dir, accountKeyFile)); err != nil || !ok {
		if err == nil {
			err = ErrNotFound
		}
		return "", fmt.Errorf("%s for %s: %w", op, directory, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return "", fmt.Errorf("%s for %s: %w", op, directory, err)
	}
	defer unlock()
	arch, err := newArchiveDir(dir, time.Now())
	if err != nil {
		return "", fmt.Errorf("%s for %s: %w", op, directory, err)
	}
	// account.json first: without it the directory holds no registered
	// account, and a leftover key alone is "not registered".
	for _, name := range []string{accountJSONFile, nextAccountKeyFile, accountKeyFile} {
		src := filepath.Join(dir, name)
		if ok, err := exists(src); err != nil {
			return "", fmt.Errorf("%s for %s: %w", op, directory, err)
		} else if !ok {
			continue
		}
		if err := preserve(src, filepath.Join(arch, name)); err != nil {
			return "", fmt.Errorf("%s for %s: %w", op, directory, err)
		}
		if err := syncDir(arch); err != nil {
			return "", fmt.Errorf("%s for %s: %w", op, directory, err)
		}
		if err := os.Remove(src); err != nil {
			return "", fmt.Errorf("%s for %s: %w", op, directory, err)
		}
		if err := syncDir(dir); err != nil {
			return "", fmt.Errorf("%s for %s: %w", op, directory, err)
		}
	}
	return arch, nil
}
