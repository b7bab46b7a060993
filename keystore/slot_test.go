package keystore

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSlot(t *testing.T) {
	ca := newTestCA(t)
	s := openTestStore(t)
	enc, err := s.Slot("encrypt")
	if err != nil {
		t.Fatal(err)
	}
	const email = "heidi@example.org"
	k1, _ := s.CertKey(email, KeyP256)
	if _, err := s.SaveCertificate(email, ca.issue(t, k1.Public(), email), CertMeta{Usage: "sign"}); err != nil {
		t.Fatal(err)
	}
	k2, _ := enc.CertKey(email, KeyP256)
	if publicKeysEqual(k1.Public(), k2.Public()) {
		t.Fatal("the slot reused the main key")
	}
	p2, err := enc.SaveCertificate(email, ca.issue(t, k2.Public(), email), CertMeta{Usage: "encrypt"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(s.Dir, "certificates", email, "encrypt"); p2.Dir != want {
		t.Errorf("slot directory = %s, want %s", p2.Dir, want)
	}
	if fi, err := os.Stat(p2.Dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("slot directory mode: %v, %v", fi.Mode().Perm(), err)
	}
	// Each view sees its own certificate; a new main certificate archives
	// only the main files.
	if key, _, m, _, err := s.LoadCertificate(email); err != nil || !publicKeysEqual(key.Public(), k1.Public()) || m.Usage != "sign" {
		t.Errorf("main LoadCertificate: %v", err)
	}
	if key, _, m, _, err := enc.LoadCertificate(email); err != nil || !publicKeysEqual(key.Public(), k2.Public()) || m.Usage != "encrypt" {
		t.Errorf("slot LoadCertificate: %v", err)
	}
	k3, _ := s.CertKey(email, KeyP256)
	if _, err := s.SaveCertificate(email, ca.issue(t, k3.Public(), email), CertMeta{Usage: "sign"}); err != nil {
		t.Fatal(err)
	}
	if key, _, _, _, err := enc.LoadCertificate(email); err != nil || !publicKeysEqual(key.Public(), k2.Public()) {
		t.Errorf("the slot's certificate changed with the main one: %v", err)
	}
	if gens, err := s.History(email); err != nil || len(gens) != 2 {
		t.Errorf("main History = %d, %v; want 2", len(gens), err)
	}
	if gens, err := enc.History(email); err != nil || len(gens) != 1 {
		t.Errorf("slot History = %d, %v; want 1", len(gens), err)
	}
	if list, _ := s.ListCertificates(); len(list) != 1 || list[0] != email {
		t.Errorf("ListCertificates = %q", list)
	}
	for _, bad := range []string{"", "archive", "Encrypt", "a/b", "..", "abcdefghijklmnopq"} {
		if _, err := s.Slot(bad); err == nil {
			t.Errorf("Slot(%q) = nil error", bad)
		}
	}
	if _, err := enc.Slot("x"); err == nil {
		t.Error("Slot of a slot = nil error")
	}
}
