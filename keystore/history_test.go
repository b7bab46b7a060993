package keystore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHistory(t *testing.T) {
	ca := newTestCA(t)
	s := openTestStore(t)
	const email = "grace@example.org"
	if _, err := s.History(email); !errors.Is(err, ErrNotFound) {
		t.Fatalf("History before any certificate = %v, want ErrNotFound", err)
	}
	var keys []any
	for i, kt := range []KeyType{KeyP256, KeyRSA2048, KeyP384} {
		k, err := s.CertKey(email, kt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveCertificate(email, ca.issue(t, k.Public(), email), CertMeta{Usage: "both"}); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		keys = append(keys, k.Public())
	}
	// A pending key that never got a certificate, of another type: it is
	// archived by CertKey and has no chain, so it is not history.
	if _, err := s.CertKey(email, KeyP256); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CertKey(email, KeyP384); err != nil {
		t.Fatal(err)
	}

	gens, err := s.History(email)
	if err != nil {
		t.Fatal(err)
	}
	if len(gens) != 3 {
		t.Fatalf("History = %d generations, want 3", len(gens))
	}
	for i, g := range gens {
		if !publicKeysEqual(g.Key.Public(), keys[i]) || !publicKeysEqual(g.Chain[0].PublicKey, keys[i]) {
			t.Errorf("generation %d: not the %d. certificate's key and chain (oldest first)", i, i+1)
		}
		if g.Current != (i == 2) {
			t.Errorf("generation %d: Current = %v", i, g.Current)
		}
		if g.Meta.Serial != g.Chain[0].SerialNumber.Text(16) || g.Meta.Usage != "both" {
			t.Errorf("generation %d: meta %+v does not describe its leaf", i, g.Meta)
		}
	}
	if _, err := s.History("bad address"); err == nil {
		t.Error("History(bad address) = nil error")
	}
}

// TestHistoryDamagedArchive: History names an archived certificate that
// cannot be read (*ArchiveEntryError); Current does not read the archive.
func TestHistoryDamagedArchive(t *testing.T) {
	ca := newTestCA(t)
	s := openTestStore(t)
	const email = "heidi@example.org"
	var last []byte
	for range 2 {
		k, err := s.CertKey(email, KeyP256)
		if err != nil {
			t.Fatal(err)
		}
		last = ca.issue(t, k.Public(), email)
		if _, err := s.SaveCertificate(email, last, CertMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	keys, _ := filepath.Glob(filepath.Join(s.Dir, "certificates", email, "archive", "*", keyFile))
	if len(keys) != 1 {
		t.Fatalf("archived keys: %q", keys)
	}
	if err := os.WriteFile(keys[0], []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ae *ArchiveEntryError
	if _, err := s.History(email); !errors.As(err, &ae) || ae.Dir != filepath.Dir(keys[0]) || !strings.Contains(err.Error(), keys[0]) {
		t.Errorf("History with a damaged archive = %v, want the entry %s named", err, filepath.Dir(keys[0]))
	}
	want, err := ParseChain(last)
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := s.Current(email); err != nil || !cur.Current || !cur.Chain[0].Equal(want[0]) {
		t.Errorf("Current = %v, want the last certificate", err)
	}
	if _, err := s.Current("nobody@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Current without a certificate = %v, want ErrNotFound", err)
	}
}
