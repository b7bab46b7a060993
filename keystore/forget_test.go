package keystore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"
)

// TestForget: an address with a renewed certificate (one archived
// generation), the encryption certificate of a split pair, a pending key
// and a pending order is moved whole into forgotten/, keys and modes
// intact; it is no longer listed, and the next CertKey starts a new
// directory. Forgetting it again in the same second picks another name.
func TestForget(t *testing.T) {
	ca := newTestCA(t)
	s := openTestStore(t)
	const email = "alice@example.org"
	for range 2 { // the second save archives the first
		k, err := s.CertKey(email, KeyP256)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveCertificate(email, ca.issue(t, k.Public(), email), CertMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	enc := mustSlot(t, s, "encrypt")
	k, err := enc.CertKey(email, KeyP256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.SaveCertificate(email, ca.issue(t, k.Public(), email), CertMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CertKey(email, KeyP256); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteOrderState(email, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.LockIdentity(context.Background(), email, false)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 5, 4, 3, 0, time.UTC)
	f, err := s.Forget(email, now)
	unlock()
	if err != nil {
		t.Fatalf("Forget = %v", err)
	}
	if want := filepath.Join(s.Dir, "forgotten", email+"-20261206T050403Z"); f.Dir != want {
		t.Errorf("Forget moved it to %s, want %s", f.Dir, want)
	}
	if len(f.Keys) != 4 || !slices.Contains(f.Keys, "key.pem") || !slices.Contains(f.Keys, "pending-key.pem") || !slices.Contains(f.Keys, "encrypt/key.pem") {
		t.Errorf("kept keys %q, want key.pem, pending-key.pem, encrypt/key.pem and one in archive/", f.Keys)
	}
	for _, k := range f.Keys {
		fi, err := os.Stat(filepath.Join(f.Dir, k))
		if err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", k, fi.Mode().Perm())
		}
		if data, err := os.ReadFile(filepath.Join(f.Dir, k)); err != nil {
			t.Error(err)
		} else if _, err := ParsePrivateKey(data); err != nil {
			t.Errorf("kept key %s: %v", k, err)
		}
	}
	for _, d := range []string{filepath.Dir(f.Dir), f.Dir} {
		if fi, err := os.Stat(d); err != nil || runtime.GOOS != "windows" && fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want a directory 0700", d, fi.Mode(), err)
		}
	}
	if _, err := os.Stat(filepath.Join(f.Dir, "order.json")); err != nil {
		t.Errorf("the pending order's state was not kept: %v", err)
	}
	if list, err := s.ListIdentities(); err != nil || len(list) != 0 {
		t.Errorf("ListIdentities after Forget = %q, %v; want none", list, err)
	}
	if _, _, _, _, err := s.LoadCertificate(email); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadCertificate after Forget = %v, want ErrNotFound", err)
	}
	if _, err := s.ReadOrderState(email); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadOrderState after Forget = %v, want ErrNotFound", err)
	}

	// Started afresh, and forgotten again in the same second.
	if _, err := s.CertKey(email, KeyP256); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Contents(email); err != nil || c != PendingOnly {
		t.Errorf("Contents after a new CertKey = %v, %v; want PendingOnly", c, err)
	}
	f2, err := s.Forget(email, now)
	if err != nil {
		t.Fatalf("second Forget = %v", err)
	}
	if f2.Dir != f.Dir+"-2" || !slices.Equal(f2.Keys, []string{"pending-key.pem"}) {
		t.Errorf("second Forget = %+v, want %s-2 with pending-key.pem", f2, f.Dir)
	}
	if _, err := os.Stat(filepath.Join(f.Dir, "key.pem")); err != nil {
		t.Errorf("the first forgotten directory changed: %v", err)
	}
}

// TestForgetLockFilesOnly: lock files left by a run that stopped before
// it made a key hold nothing to keep: the directory is removed. A
// leftover run lock that nobody holds does not keep the address locked.
func TestForgetLockFilesOnly(t *testing.T) {
	s := openTestStore(t)
	const email = "bob@example.org"
	dir := filepath.Join(s.Dir, "certificates", email)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".run-lock", ".lock"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	unlock, err := s.LockIdentity(context.Background(), email, false)
	if err != nil {
		t.Fatalf("a leftover lock file that nobody holds: LockIdentity = %v", err)
	}
	f, err := s.Forget(email, time.Now())
	unlock()
	if err != nil || f.Dir != "" || len(f.Keys) != 0 {
		t.Fatalf("Forget = %+v, %v; want nothing kept", f, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the directory of lock files is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "forgotten")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("forgotten/ was made for nothing: %v", err)
	}
}

// TestForgetNothing: an address without a directory is ErrNotFound, and a
// slot cannot be forgotten on its own.
func TestForgetNothing(t *testing.T) {
	s := openTestStore(t)
	if _, err := s.Forget("nobody@example.org", time.Now()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Forget of an unknown address = %v, want ErrNotFound", err)
	}
	if _, err := mustSlot(t, s, "encrypt").Forget("nobody@example.org", time.Now()); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Forget in a slot = %v, want a refusal", err)
	}
}
