//go:build unix

package keystore

import (
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPermissionsUmask runs every writing method under umask 0 and checks
// that everything in the store is 0600 (files) or 0700 (directories).
// It changes the process umask, so it must not run in parallel.
func TestPermissionsUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	s, err := Open(filepath.Join(t.TempDir(), "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	const dirURL = "https://ca.example/dir"
	key, err := s.AccountKey(dirURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAccount(&Account{Directory: dirURL, URL: "https://ca.example/acct/1", Key: key}); err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t)
	const email = "alice@example.org"
	for range 2 { // the second round archives the first
		ck, err := s.CertKey(email, KeyP256)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveCertificate(email, ca.issue(t, ck.Public(), email), CertMeta{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WritePKCS12(email, "pw", P12Modern); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CertKey(email, KeyP384); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CertKey(email, KeyP256); err != nil { // archives the P-384 pending key
		t.Fatal(err)
	}
	if _, err := s.ClaimReply("k"); err != nil {
		t.Fatal(err)
	}

	var files int
	err = filepath.WalkDir(filepath.Dir(filepath.Dir(s.Dir)), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
			if p == filepath.Dir(filepath.Dir(s.Dir)) {
				return nil // t.TempDir itself
			}
		} else {
			files++
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
		if strings.Contains(d.Name(), ".tmp-") || strings.HasSuffix(d.Name(), stagedSuffix) {
			t.Errorf("%s: leftover temporary file", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 12 {
		t.Errorf("walked %d files, want at least 12", files)
	}
}
