package keystore

import (
	"errors"
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
