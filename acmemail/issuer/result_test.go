package issuer

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// withP12 puts a cert.p12 next to the certificate of email in store (Keep
// looks only for the file).
func withP12(t *testing.T, store *keystore.Store, email string) {
	t.Helper()
	paths, err := store.CertificatePaths(email)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(paths.PKCS12, []byte("p12"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKeep: obtain keeps a certificate only while it is valid, from the
// CA asked for, not due, with its files, and (for a pair) only when both
// of the pair are; anything else is ordered as before.
func TestKeep(t *testing.T) {
	store := testStore(t)
	const email = "alice@example.test"
	p := NewProfile(email)
	p.Server = "https://ca.example.test/dir"
	leaf := saveTestCert(t, store, p, "both")
	is := &Issuer{Store: store}
	now := time.Now()
	if k := is.Keep(p, now); k != nil {
		t.Errorf("kept a certificate without its cert.p12: %+v", k)
	}
	withP12(t, store, email)
	k := is.Keep(p, now)
	if k == nil {
		t.Fatal("a valid certificate that is not due was not kept")
	}
	wantDue := UTCSeconds(acmemail.FallbackRenewalTime(leaf))
	if !k.RenewalDue.Equal(wantDue) || k.Basis != "a third of its lifetime before expiry" {
		t.Errorf("kept until %v (%s), want %v", k.RenewalDue, k.Basis, wantDue)
	}
	rs := k.Results()
	if len(rs) != 1 || rs[0].Action != ActionKept || rs[0].Serial != acmemail.FormatSerial(leaf.SerialNumber) || rs[0].RenewalDue == nil ||
		filepath.Base(rs[0].Certificate) != "cert.pem" || filepath.Base(rs[0].Chain) != "chain.pem" {
		t.Errorf("results %+v", rs)
	}
	for name, tc := range map[string]struct {
		p   func(Profile) Profile
		now time.Time
	}{
		"due":       {func(p Profile) Profile { return p }, wantDue},
		"expired":   {func(p Profile) Profile { return p }, leaf.NotAfter.Add(time.Hour)},
		"other CA":  {func(p Profile) Profile { p.Server = "https://other.example.test/dir"; return p }, now},
		"no pair":   {func(p Profile) Profile { p.Split = true; return p }, now},
		"unmanaged": {func(p Profile) Profile { p.Email = "bob@example.test"; return p }, now},
	} {
		if k := is.Keep(tc.p(p), tc.now); k != nil {
			t.Errorf("%s: kept %+v", name, k.Status)
		}
	}

	// A pair is kept whole, or not at all.
	enc := encSlot(t, store)
	encLeaf := saveTestCert(t, enc, p, "encrypt")
	withP12(t, enc, email)
	split := p
	split.Split = true
	if k := is.Keep(split, now); k == nil || len(k.Results()) != 2 || k.Results()[1].Usage != "encrypt" {
		t.Fatalf("a valid pair was not kept: %+v", k)
	}
	revoked := time.Now()
	if err := SaveRenewalState(enc, email, RenewalState{Serial: encLeaf.SerialNumber.Text(16), Revoked: &revoked, RevocationReason: "keyCompromise"}); err != nil {
		t.Fatal(err)
	}
	if k := is.Keep(split, now); k != nil {
		t.Errorf("kept a pair whose encryption certificate is revoked: %+v", k.Status)
	}

	// Broken: chain.pem does not parse.
	paths, _ := store.CertificatePaths(email)
	if err := os.WriteFile(paths.Chain, []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k := is.Keep(p, now); k != nil {
		t.Errorf("kept a broken certificate: %+v", k.Status)
	}
}
