package keystore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAccountKeyCreatesOnceThenReuses(t *testing.T) {
	s := openTestStore(t)
	const dir = "https://ca.example/acme/directory"
	k1, err := s.AccountKey(dir)
	if err != nil {
		t.Fatalf("AccountKey = %v", err)
	}
	ec, ok := k1.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("AccountKey made a %T, want a P-256 ECDSA key", k1)
	}
	adir, _ := s.AccountDir(dir)
	onDisk, err := readKey(filepath.Join(adir, accountKeyFile))
	if err != nil {
		t.Fatalf("account key not on disk after AccountKey: %v", err)
	}
	if !publicKeysEqual(onDisk.Public(), k1.Public()) {
		t.Fatal("key on disk differs from the returned key")
	}
	k2, err := s.AccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeysEqual(k1.Public(), k2.Public()) {
		t.Error("second AccountKey returned a new key, want the first one")
	}
	k3, err := s.AccountKey("https://ca.example/other/directory")
	if err != nil {
		t.Fatal(err)
	}
	if publicKeysEqual(k1.Public(), k3.Public()) {
		t.Error("another directory URL got the same key")
	}
}

func TestAccountKeyConcurrent(t *testing.T) {
	s := openTestStore(t)
	const dir = "https://ca.example/dir"
	var wg sync.WaitGroup
	keys := make([]any, 8)
	for i := range keys {
		wg.Go(func() {
			k, err := s.AccountKey(dir)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k.Public()
		})
	}
	wg.Wait()
	for i := 1; i < len(keys); i++ {
		if keys[i] == nil || !publicKeysEqual(keys[0], keys[i]) {
			t.Fatalf("concurrent AccountKey calls returned different keys")
		}
	}
}

func TestAccountSaveLoad(t *testing.T) {
	s := openTestStore(t)
	const dir = "https://ca.example:14000/dir"
	if _, err := s.LoadAccount(dir); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadAccount before save = %v, want ErrNotFound", err)
	}
	key, err := s.AccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadAccount(dir); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadAccount with only a key = %v, want ErrNotFound", err)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := &Account{Directory: dir, URL: "https://ca.example:14000/acct/7", Contact: []string{"mailto:alice@example.org"}, Key: key, Created: created}
	if err := s.SaveAccount(a); err != nil {
		t.Fatalf("SaveAccount = %v", err)
	}
	// Same CA, spelled differently.
	for _, d := range []string{dir, "HTTPS://CA.example:14000/dir"} {
		got, err := s.LoadAccount(d)
		if err != nil {
			t.Fatalf("LoadAccount(%s) = %v", d, err)
		}
		if got.Directory != dir || got.URL != a.URL || !got.Created.Equal(created) ||
			len(got.Contact) != 1 || got.Contact[0] != a.Contact[0] || !publicKeysEqual(got.Key.Public(), key.Public()) {
			t.Errorf("LoadAccount(%s) = %+v, want %+v", d, got, a)
		}
	}
	list, err := s.ListAccounts()
	if err != nil || len(list) != 1 || list[0].URL != a.URL {
		t.Errorf("ListAccounts = %v, %v; want the one account", list, err)
	}

	// A different key is never written over the account key.
	other := &Account{Directory: dir, URL: a.URL, Key: testKey(t, KeyP384)}
	if err := s.SaveAccount(other); err == nil {
		t.Error("SaveAccount with another key = nil error, want error")
	}
	got, err := s.LoadAccount(dir)
	if err != nil || !publicKeysEqual(got.Key.Public(), key.Public()) {
		t.Errorf("account key changed after a refused SaveAccount")
	}

	// SaveAccount without AccountKey first writes the key; zero Created is set.
	const dir2 = "http://localhost/dir"
	ed := testKey(t, KeyEd25519)
	b := &Account{Directory: dir2, URL: "u", Key: ed}
	if err := s.SaveAccount(b); err != nil {
		t.Fatal(err)
	}
	if b.Created.IsZero() {
		t.Error("SaveAccount left Created zero")
	}
	got, err = s.LoadAccount(dir2)
	if err != nil || !publicKeysEqual(got.Key.Public(), ed.Public()) {
		t.Errorf("LoadAccount(%s) = %v, want the Ed25519 key", dir2, err)
	}
}

func TestLoadAccountMissingKey(t *testing.T) {
	s := openTestStore(t)
	const dir = "https://ca.example/dir"
	if err := s.SaveAccount(&Account{Directory: dir, URL: "u", Key: testKey(t, KeyP256)}); err != nil {
		t.Fatal(err)
	}
	adir, _ := s.AccountDir(dir)
	os.Remove(filepath.Join(adir, accountKeyFile))
	_, err := s.LoadAccount(dir)
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("LoadAccount without account.key = %v, want an error that is not ErrNotFound", err)
	}
}

func TestAccountDirName(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"https://ca.example/dir", "https://CA.example:443/dir", true},
		{"https://ca.example/dir", "https://ca.example/dir#frag", true},
		{"http://ca.example/dir", "http://ca.example:80/dir", true},
		{"https://ca.example/dir", "https://ca.example/other", false},
		{"https://ca.example/dir", "http://ca.example:443/dir", false},
		{"https://ca.example/dir", "https://ca.example:8443/dir", false},
	}
	for _, tt := range tests {
		na, err := accountDirName(tt.a)
		if err != nil {
			t.Fatal(err)
		}
		nb, err := accountDirName(tt.b)
		if err != nil {
			t.Fatal(err)
		}
		if (na == nb) != tt.same {
			t.Errorf("accountDirName(%s) = %s, accountDirName(%s) = %s; want same = %v", tt.a, na, tt.b, nb, tt.same)
		}
	}
	if got, _ := accountDirName("https://acme.example.org:14000/dir"); !strings.HasPrefix(got, "acme.example.org_14000_") {
		t.Errorf("accountDirName = %q, want prefix acme.example.org_14000_", got)
	}
	for _, bad := range []string{"", "ca.example/dir", "ftp://ca.example/", "https:///dir", "https://ca.example:x/"} {
		if got, err := accountDirName(bad); err == nil {
			t.Errorf("accountDirName(%q) = %q, want error", bad, got)
		}
	}
}

func FuzzAccountDirName(f *testing.F) {
	for _, s := range []string{"https://ca.example/dir", "http://[::1]:14000/dir?x=1", "https://../..", "https://%2e%2e/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dir string) {
		name, err := accountDirName(dir)
		if err != nil {
			return
		}
		if name == "" || name == "." || name == ".." || filepath.Base(name) != name ||
			strings.HasPrefix(name, ".") || strings.ContainsAny(name, "/\\\x00:") {
			t.Fatalf("accountDirName(%q) = %q, not a safe path component", dir, name)
		}
	})
}
