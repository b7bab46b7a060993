package keystore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestAccountKeyRolloverCommit(t *testing.T) {
	s := openTestStore(t)
	const dir = "https://ca.example/acme/directory"
	if _, _, err := s.NextAccountKey(dir, KeyP256); !errors.Is(err, ErrNotFound) {
		t.Fatalf("NextAccountKey without an account key = %v, want ErrNotFound", err)
	}
	old, err := s.AccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAccount(&Account{Directory: dir, URL: "https://ca.example/acct/1", Key: old}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PendingAccountKey(dir); !errors.Is(err, ErrNotFound) {
		t.Fatalf("PendingAccountKey before a rollover = %v, want ErrNotFound", err)
	}
	next, resumed, err := s.NextAccountKey(dir, KeyP384)
	if err != nil || resumed {
		t.Fatalf("NextAccountKey = %v, resumed %v; want a new key", err, resumed)
	}
	if kt, _ := KeyTypeOf(next.Public()); kt != KeyP384 {
		t.Errorf("next key type = %s, want p384", kt)
	}
	adir, _ := s.AccountDir(dir)
	fi, err := os.Stat(filepath.Join(adir, nextAccountKeyFile))
	if err != nil {
		t.Fatalf("the next key is not on disk before the request: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("next key mode = %v, want 0600", fi.Mode().Perm())
	}
	// An interrupted run finds the same key again.
	again, resumed, err := s.NextAccountKey(dir, KeyP256)
	if err != nil || !resumed || !publicKeysEqual(again.Public(), next.Public()) {
		t.Fatalf("second NextAccountKey = %v, resumed %v, same key %v; want the pending key", err, resumed, err == nil && publicKeysEqual(again.Public(), next.Public()))
	}
	pending, err := s.PendingAccountKey(dir)
	if err != nil || !publicKeysEqual(pending.Public(), next.Public()) {
		t.Fatalf("PendingAccountKey = %v", err)
	}
	// Until the commit, the old key is the account key.
	if k, _ := s.AccountKey(dir); !publicKeysEqual(k.Public(), old.Public()) {
		t.Fatal("AccountKey changed before the commit")
	}

	archived, err := s.CommitAccountKey(dir)
	if err != nil {
		t.Fatalf("CommitAccountKey = %v", err)
	}
	k, err := s.AccountKey(dir)
	if err != nil || !publicKeysEqual(k.Public(), next.Public()) {
		t.Fatalf("AccountKey after the commit = %v; want the new key", err)
	}
	a, err := s.LoadAccount(dir)
	if err != nil || !publicKeysEqual(a.Key.Public(), next.Public()) || a.URL != "https://ca.example/acct/1" {
		t.Fatalf("LoadAccount after the commit = %+v, %v", a, err)
	}
	ak, err := readKey(archived)
	if err != nil || !publicKeysEqual(ak.Public(), old.Public()) {
		t.Fatalf("archived key %s = %v; want the old key", archived, err)
	}
	if rel, _ := filepath.Rel(adir, archived); filepath.Dir(filepath.Dir(rel)) != "archive" {
		t.Errorf("archived at %s, want under %s/archive/<time>/", archived, adir)
	}
	if _, err := os.Stat(filepath.Join(adir, nextAccountKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("account.key.next still exists after the commit: %v", err)
	}
	if _, err := s.CommitAccountKey(dir); !errors.Is(err, ErrNotFound) {
		t.Errorf("second CommitAccountKey = %v, want ErrNotFound", err)
	}
	// A later rollover archives next to the first, never over it.
	if _, _, err := s.NextAccountKey(dir, KeyP256); err != nil {
		t.Fatal(err)
	}
	archived2, err := s.CommitAccountKey(dir)
	if err != nil || archived2 == archived {
		t.Fatalf("second rollover archived at %s (%v), first at %s", archived2, err, archived)
	}
	if ak, _ := readKey(archived); !publicKeysEqual(ak.Public(), old.Public()) {
		t.Error("the first archived key was replaced")
	}
}

func TestAccountKeyRolloverAbandon(t *testing.T) {
	s := openTestStore(t)
	const dir = "https://ca.example/acme/directory"
	old, err := s.AccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	next, _, err := s.NextAccountKey(dir, KeyP256)
	if err != nil {
		t.Fatal(err)
	}
	archived, err := s.AbandonAccountKey(dir)
	if err != nil {
		t.Fatalf("AbandonAccountKey = %v", err)
	}
	if k, _ := s.AccountKey(dir); !publicKeysEqual(k.Public(), old.Public()) {
		t.Error("AbandonAccountKey changed the account key")
	}
	if k, err := readKey(archived); err != nil || !publicKeysEqual(k.Public(), next.Public()) {
		t.Errorf("the abandoned key is not in the archive: %v", err)
	}
	if _, err := s.PendingAccountKey(dir); !errors.Is(err, ErrNotFound) {
		t.Errorf("PendingAccountKey after abandoning = %v, want ErrNotFound", err)
	}
}

func TestRetireAccount(t *testing.T) {
	s := openTestStore(t)
	const dir = "https://ca.example/acme/directory"
	if _, err := s.RetireAccount(dir); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RetireAccount without an account = %v, want ErrNotFound", err)
	}
	old, _ := s.AccountKey(dir)
	if err := s.SaveAccount(&Account{Directory: dir, URL: "https://ca.example/acct/1", Key: old}); err != nil {
		t.Fatal(err)
	}
	arch, err := s.RetireAccount(dir)
	if err != nil {
		t.Fatalf("RetireAccount = %v", err)
	}
	if _, err := s.LoadAccount(dir); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadAccount after RetireAccount = %v, want ErrNotFound", err)
	}
	if k, err := readKey(filepath.Join(arch, accountKeyFile)); err != nil || !publicKeysEqual(k.Public(), old.Public()) {
		t.Errorf("the retired key is not in %s: %v", arch, err)
	}
	if _, err := os.Stat(filepath.Join(arch, accountJSONFile)); err != nil {
		t.Errorf("account.json not archived: %v", err)
	}
	fresh, err := s.AccountKey(dir)
	if err != nil || publicKeysEqual(fresh.Public(), old.Public()) {
		t.Errorf("AccountKey after RetireAccount = %v; want a new key", err)
	}
}
