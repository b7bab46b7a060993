package issuer

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/acmemail/acmemail/keystore"
)

const testCA = "https://ca.example.test/dir"

func testStore(t *testing.T) *keystore.Store {
	t.Helper()
	store, err := keystore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// saveTestCert installs a self-signed certificate for the profile's
// address in store (a slot, for the encryption certificate of a pair),
// recorded with the profile as obtain records it.
func saveTestCert(t *testing.T, store *keystore.Store, p Profile, usage string) *x509.Certificate {
	t.Helper()
	p = p.WithDefaults()
	key, err := store.CertKey(p.Email, keystore.KeyP256)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: p.Email}, EmailAddresses: p.Emails(),
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	var also string
	for i, a := range p.Also {
		if i > 0 {
			also += ","
		}
		also += a.Email
	}
	meta := keystore.CertMeta{Also: also, Directory: testCA, Usage: usage, Profile: p.encode()}
	if _, err := store.SaveCertificate(p.Email, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), meta); err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return leaf
}

func encSlot(t *testing.T, store *keystore.Store) *keystore.Store {
	t.Helper()
	enc, err := store.Slot(EncryptSlot)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// TestStatusOf: the status of a split pair tells both certificates, the
// recorded CA and the plan; a revocation recorded in the renewal state of
// the encryption certificate shows in its status only.
func TestStatusOf(t *testing.T) {
	store := testStore(t)
	const email = "alice@example.test"
	p := NewProfile(email)
	p.Server, p.Split, p.Login.PasswordCommand = "https://ca.example.test/dir", true, "pass mail"
	sign := saveTestCert(t, store, p, "sign")
	enc := encSlot(t, store)
	encLeaf := saveTestCert(t, enc, p, "encrypt")
	now := time.Now().UTC().Truncate(time.Second)
	if err := SaveRenewalState(enc, email, RenewalState{Serial: encLeaf.SerialNumber.Text(16), Revoked: &now, RevocationReason: "keyCompromise"}); err != nil {
		t.Fatal(err)
	}

	s, err := StatusOf(store, email, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.Serial != sign.SerialNumber.Text(16) || s.Usage != "sign" || s.CA != testCA || s.Server != p.Server || s.State() != "valid" ||
		s.RenewalBasis != "lifetime" || s.RenewalDue.IsZero() || s.Files.Certificate == "" || s.Files.PKCS12 != "" {
		t.Errorf("status = %+v", s)
	}
	if s.Renew == nil || !s.Renew.Recorded || !s.Renew.Split || s.Renew.Login == nil || s.Renew.Login.Source != "password-command" {
		t.Errorf("plan = %+v", s.Renew)
	}
	e := s.Encryption
	if e == nil || e.Serial != encLeaf.SerialNumber.Text(16) || e.State() != "revoked" || e.RevocationReason != "keyCompromise" || e.Renew != nil {
		t.Fatalf("encryption = %+v", e)
	}
	if _, err := StatusOf(store, "bob@example.test", time.Now()); !errors.Is(err, ErrNotManaged) {
		t.Errorf("an address without a certificate: %v", err)
	}
	if s, _ := StatusOf(store, email, sign.NotAfter.Add(time.Second)); s.State() != "expired" {
		t.Errorf("after not-after: %s", s.State())
	}

	// A pending order is told; every address is listed.
	saveTestCert(t, store, NewProfile("bob@example.test"), "both")
	if err := store.WriteOrderState("bob@example.test", []byte(`{"order_url":"https://ca.example.test/order/7"}`)); err != nil {
		t.Fatal(err)
	}
	list, skipped, err := Statuses(store, time.Now())
	if err != nil || len(skipped) != 0 || len(list) != 2 || list[0].Email != email || list[1].PendingOrder != "https://ca.example.test/order/7" {
		t.Errorf("Statuses = %+v, %v, %v", list, skipped, err)
	}
}

// TestStatusOfSettings: a certificate recorded with the settings of an
// older acmemail tells its server too; one that records nothing has the
// plan that says so.
func TestStatusOfSettings(t *testing.T) {
	store := testStore(t)
	saveTestCert(t, store, NewProfile("alice@example.test"), "both")
	_, _, meta, paths, err := store.LoadCertificate("alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	meta.Profile, meta.Settings = nil, &keystore.Settings{Server: "castle-staging", Mailbox: "INBOX"}
	if recordedServer(meta) != "castle-staging" {
		t.Errorf("recorded server of settings: %q", recordedServer(meta))
	}
	meta.Settings = nil
	if recordedServer(meta) != "" {
		t.Errorf("recorded server of nothing: %q", recordedServer(meta))
	}
	if p := PlanOfMeta(meta, paths.PKCS12, false, nil); p.Recorded || len(p.Warnings) != 1 {
		t.Errorf("plan of nothing recorded: %+v", p)
	}
}
