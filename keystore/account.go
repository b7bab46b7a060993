package keystore

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// File names in an account directory.
const (
	accountKeyFile  = "account.key"
	accountJSONFile = "account.json"
)

// Account is an ACME account at one CA (one directory URL).
type Account struct {
	Directory string        // the ACME directory URL
	URL       string        // the account URL (the Location of newAccount)
	Contact   []string      // e.g. "mailto:alice@example.org"
	Key       crypto.Signer // the account key
	Created   time.Time     // when the account was registered
}

// accountJSON is the format of account.json. The key is kept in
// account.key, never here.
type accountJSON struct {
	Directory string    `json:"directory"`
	URL       string    `json:"url"`
	Contact   []string  `json:"contact"`
	Created   time.Time `json:"created"`
}

// canonicalDirectory checks an ACME directory URL and returns a canonical
// form (lowercase scheme and host, explicit port, no fragment) and the
// host and port.
func canonicalDirectory(directory string) (canon, host, port string, err error) {
	u, err := url.Parse(directory)
	if err != nil {
		return "", "", "", fmt.Errorf("invalid ACME directory URL: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", "", "", fmt.Errorf("invalid ACME directory URL %q: scheme must be https or http", directory)
	}
	host = strings.ToLower(u.Hostname())
	if host == "" {
		return "", "", "", fmt.Errorf("invalid ACME directory URL %q: no host", directory)
	}
	port = u.Port()
	if port == "" {
		port = "443"
		if scheme == "http" {
			port = "80"
		}
	}
	canon = scheme + "://" + host + ":" + port + u.EscapedPath()
	if u.RawQuery != "" {
		canon += "?" + u.RawQuery
	}
	return canon, host, port, nil
}

// accountDirName returns the directory name for an ACME directory URL:
// <host>_<port>_<hash>, where host is sanitized to [a-z0-9.-_] and hash is
// the first 8 bytes (hex) of the SHA-256 of the canonical URL, so that two
// CAs on one host and port (different paths) get different accounts.
func accountDirName(directory string) (string, error) {
	canon, host, port, err := canonicalDirectory(directory)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i, r := range host {
		if i >= 64 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		case r == '.' && i > 0:
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte(canon))
	return b.String() + "_" + port + "_" + hex.EncodeToString(sum[:8]), nil
}

// AccountDir returns the directory that holds the account for the ACME
// directory URL directory. It does not create it.
func (s *Store) AccountDir(directory string) (string, error) {
	name, err := accountDirName(directory)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.Dir, accountsDir, name), nil
}

// makeAccountDir returns the account directory, creating it if needed.
func (s *Store) makeAccountDir(directory string) (string, error) {
	name, err := accountDirName(directory)
	if err != nil {
		return "", err
	}
	return s.subdir(accountsDir, name)
}

// AccountKey returns the account key for the ACME directory URL directory.
// If there is none yet, it generates a P-256 (ES256) key and writes it to
// account.key (0600) before returning, so that the key is on disk before
// it is used to register an account. Concurrent callers get the same key.
func (s *Store) AccountKey(directory string) (crypto.Signer, error) {
	dir, err := s.makeAccountDir(directory)
	if err != nil {
		return nil, fmt.Errorf("account key for %s: %w", directory, err)
	}
	path := filepath.Join(dir, accountKeyFile)
	key, err := readKey(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("account key for %s: %w", directory, err)
	}
	key, err = GenerateKey(KeyP256)
	if err != nil {
		return nil, fmt.Errorf("account key for %s: %w", directory, err)
	}
	data, err := MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("account key for %s: %w", directory, err)
	}
	if err := writeFileExclusive(path, data, filePerm); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("account key for %s: %w", directory, err)
		}
		// Another process or goroutine won the race; use its key.
		if key, err = readKey(path); err != nil {
			return nil, fmt.Errorf("account key for %s: %w", directory, err)
		}
	}
	return key, nil
}

// SaveAccount records a registered account. If no account key is on disk
// yet, a.Key is written; if one is, it must be a.Key: SaveAccount never
// replaces an account key. A zero a.Created is set to the current time.
func (s *Store) SaveAccount(a *Account) error {
	if a == nil || a.Key == nil {
		return errors.New("save account: no account or no key")
	}
	dir, err := s.makeAccountDir(a.Directory)
	if err != nil {
		return fmt.Errorf("save account for %s: %w", a.Directory, err)
	}
	keyPath := filepath.Join(dir, accountKeyFile)
	onDisk, err := readKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		data, merr := MarshalPrivateKey(a.Key)
		if merr != nil {
			return fmt.Errorf("save account for %s: %w", a.Directory, merr)
		}
		err = writeFileExclusive(keyPath, data, filePerm)
		if errors.Is(err, fs.ErrExist) {
			onDisk, err = readKey(keyPath)
		} else {
			onDisk = a.Key
		}
	}
	if err != nil {
		return fmt.Errorf("save account for %s: %w", a.Directory, err)
	}
	if !publicKeysEqual(onDisk.Public(), a.Key.Public()) {
		return fmt.Errorf("save account for %s: %s holds a different key; refusing to replace an account key", a.Directory, keyPath)
	}
	if a.Created.IsZero() {
		a.Created = time.Now().UTC()
	}
	contact := a.Contact
	if contact == nil {
		contact = []string{}
	}
	data, err := json.MarshalIndent(accountJSON{
		Directory: a.Directory,
		URL:       a.URL,
		Contact:   contact,
		Created:   a.Created,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("save account for %s: %w", a.Directory, err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, accountJSONFile), append(data, '\n'), filePerm); err != nil {
		return fmt.Errorf("save account for %s: %w", a.Directory, err)
	}
	return nil
}

// LoadAccount returns the registered account for the ACME directory URL
// directory, or an error wrapping [ErrNotFound] if none was saved with
// [Store.SaveAccount] (even if [Store.AccountKey] already made a key).
func (s *Store) LoadAccount(directory string) (*Account, error) {
	dir, err := s.AccountDir(directory)
	if err != nil {
		return nil, fmt.Errorf("load account for %s: %w", directory, err)
	}
	a, err := loadAccountDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load account for %s: %w", directory, err)
	}
	want, _, _, _ := canonicalDirectory(directory)
	got, _, _, err := canonicalDirectory(a.Directory)
	if err != nil || got != want {
		return nil, fmt.Errorf("load account for %s: %s is for %q", directory, filepath.Join(dir, accountJSONFile), a.Directory)
	}
	return a, nil
}

func loadAccountDir(dir string) (*Account, error) {
	jsonPath := filepath.Join(dir, accountJSONFile)
	data, err := os.ReadFile(jsonPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", jsonPath, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var aj accountJSON
	if err := json.Unmarshal(data, &aj); err != nil {
		return nil, fmt.Errorf("parse %s: %w", jsonPath, err)
	}
	keyPath := filepath.Join(dir, accountKeyFile)
	key, err := readKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		// A missing key next to account.json is damage, not "not found".
		return nil, fmt.Errorf("account key %s is missing", keyPath)
	}
	if err != nil {
		return nil, err
	}
	return &Account{
		Directory: aj.Directory,
		URL:       aj.URL,
		Contact:   aj.Contact,
		Key:       key,
		Created:   aj.Created,
	}, nil
}

// ListAccounts returns every saved account, sorted by directory URL.
// Account directories that hold only a key (not registered) are skipped.
func (s *Store) ListAccounts() ([]*Account, error) {
	root := filepath.Join(s.Dir, accountsDir)
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	var out []*Account
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		a, err := loadAccountDir(filepath.Join(root, e.Name()))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Directory < out[j].Directory })
	return out, nil
}
