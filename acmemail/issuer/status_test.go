package issuer

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail"
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
	if s.Serial != acmemail.FormatSerial(sign.SerialNumber) || s.Usage != "sign" || s.CA != testCA || s.Server != p.Server || s.State != "valid" ||
		s.RenewalBasis != "lifetime" || s.RenewalDue.IsZero() || s.Files.Certificate == "" || s.Files.PKCS12 != "" {
		t.Errorf("status = %+v", s)
	}
	if s.Renew == nil || !s.Renew.Recorded || !s.Renew.Split || s.Renew.Login == nil || s.Renew.Login.Source != "password-command" {
		t.Errorf("plan = %+v", s.Renew)
	}
	e := s.Encryption
	if e == nil || e.Serial != acmemail.FormatSerial(encLeaf.SerialNumber) || e.State != "revoked" || e.RevocationReason != "keyCompromise" || e.Renew != nil {
		t.Fatalf("encryption = %+v", e)
	}
	if _, err := StatusOf(store, "bob@example.test", time.Now()); !errors.Is(err, ErrNotManaged) {
		t.Errorf("an address without a certificate: %v", err)
	}
	if s, _ := StatusOf(store, email, sign.NotAfter.Add(time.Second)); s.State != "expired" {
		t.Errorf("after not-after: %s", s.State)
	}

	// A pending order is told; every address is listed.
	saveTestCert(t, store, NewProfile("bob@example.test"), "both")
	if err := store.WriteOrderState("bob@example.test", []byte(`{"order_url":"https://ca.example.test/order/7"}`)); err != nil {
		t.Fatal(err)
	}
	list, err := Statuses(store, time.Now())
	if err != nil || len(list) != 2 || list[0].Email != email || list[1].PendingOrder != "https://ca.example.test/order/7" {
		t.Errorf("Statuses = %+v, %v", list, err)
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

// TestStatusesBrokenAndPending: an address whose files cannot be read is
// listed as broken, with the file and what is wrong with it (it was left
// out, and without certificates the list was empty); one whose first
// obtain failed is pending (it was not listed at all); one with only
// lock files is not managed. A broken encryption certificate makes its
// pair broken.
func TestStatusesBrokenAndPending(t *testing.T) {
	store := testStore(t)
	certDir := func(email string) string { return filepath.Join(store.Dir, "certificates", email) }
	write := func(path, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const (
		alice, bob, carol, dave   = "alice@example.test", "bob@example.test", "carol@example.test", "dave@example.test"
		erin, frank, grace, heidi = "erin@example.test", "frank@example.test", "grace@example.test", "heidi@example.test"
		ivan                      = "ivan@example.test"
	)
	for _, e := range []string{alice, bob, carol, dave, ivan} {
		saveTestCert(t, store, NewProfile(e), "both")
	}
	write(filepath.Join(certDir(bob), "meta.json"), "{\x1b[31m")
	write(filepath.Join(certDir(carol), "key.pem"), "not a key")
	write(filepath.Join(certDir(dave), "chain.pem"), "")
	if _, err := store.CertKey(erin, keystore.KeyP256); err != nil {
		t.Fatal(err)
	}
	if err := store.WriteOrderState(frank, []byte(`{"directory":"https://ca.example.test/dir","order_url":"https://ca.example.test/order/9"}`)); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(certDir(grace), "key.pem"), "a key without its chain")
	if unlock, err := store.LockIdentity(context.Background(), heidi, false); err != nil {
		t.Fatal(err)
	} else {
		unlock()
	}
	p := NewProfile(ivan)
	p.Split = true
	saveTestCert(t, encSlot(t, store), p, "encrypt")
	write(filepath.Join(certDir(ivan), EncryptSlot, "chain.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")

	list, err := Statuses(store, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Status{}
	var order []string
	for _, s := range list {
		got[s.Email] = s
		order = append(order, s.Email)
	}
	if want := []string{alice, bob, carol, dave, erin, frank, grace, ivan}; !slices.Equal(order, want) {
		t.Fatalf("Statuses lists %q, want %q", order, want)
	}
	for email, want := range map[string]struct{ state, reason string }{
		alice: {StateValid, ""},
		bob:   {StateBroken, "parse " + filepath.Join(certDir(bob), "meta.json") + ": invalid character"},
		carol: {StateBroken, "read key " + filepath.Join(certDir(carol), "key.pem") + ": parse private key"},
		dave:  {StateBroken, filepath.Join(certDir(dave), "chain.pem") + ": parse certificate chain: no certificate found"},
		erin:  {StatePending, "no certificate yet"},
		frank: {StatePending, "no certificate yet"},
		grace: {StateBroken, filepath.Join(certDir(grace), "chain.pem") + " is missing"},
		ivan:  {StateValid, ""},
	} {
		s := got[email]
		if s.State != want.state || !strings.HasPrefix(s.Reason, want.reason) || (want.reason == "") != (s.Reason == "") {
			t.Errorf("%s: state %q, reason %q; want %q, %q...", email, s.State, s.Reason, want.state, want.reason)
		}
		if s.Broken() != (want.state == StateBroken || email == ivan) {
			t.Errorf("%s: Broken() = %v", email, s.Broken())
		}
		if s.Files.Dir != certDir(email) {
			t.Errorf("%s: files in %q, want %q", email, s.Files.Dir, certDir(email))
		}
	}
	if s := got[frank]; s.PendingOrder != "https://ca.example.test/order/9" || s.CA != "https://ca.example.test/dir" {
		t.Errorf("pending order: %q at %q", s.PendingOrder, s.CA)
	}
	if e := got[ivan].Encryption; e == nil || e.State != StateBroken || !strings.Contains(e.Reason, filepath.Join(certDir(ivan), EncryptSlot, "chain.pem")) {
		t.Errorf("the broken encryption certificate of a pair: %+v", e)
	}
	if s := got[bob]; s.Files.Meta != filepath.Join(certDir(bob), "meta.json") || s.Renew != nil || !s.NotAfter.IsZero() {
		t.Errorf("a broken status has its files' paths and nothing of a certificate: %+v", s)
	}

	// show's view: the same states, no error; nothing at all is not managed.
	if s, err := StatusOf(store, carol, time.Now()); err != nil || s.State != StateBroken {
		t.Errorf("StatusOf a broken address = %q, %v", s.State, err)
	}
	if s, err := StatusOf(store, erin, time.Now()); err != nil || s.State != StatePending {
		t.Errorf("StatusOf a pending address = %q, %v", s.State, err)
	}
	if _, err := StatusOf(store, heidi, time.Now()); !errors.Is(err, ErrNotManaged) {
		t.Errorf("StatusOf an address with only lock files = %v, want ErrNotManaged", err)
	}

	// A directory that cannot be read (root reads it anyway).
	if os.Geteuid() != 0 {
		if err := os.Chmod(certDir(alice), 0); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(certDir(alice), 0o700)
		if s, err := StatusOf(store, alice, time.Now()); err != nil || s.State != StateBroken || !strings.Contains(s.Reason, "permission denied") {
			t.Errorf("StatusOf an unreadable directory = %+v, %v", s, err)
		}
	}
}

// TestSimilar: an address that is not managed, but differs from a managed
// one only in the case of its local part, gets a "did you mean" hint
// naming the managed one; the managed one itself, in any spelling of its
// domain, is not similar to anything.
func TestSimilar(t *testing.T) {
	store := testStore(t)
	saveTestCert(t, store, NewProfile("Carol@example.test"), "both")
	saveTestCert(t, store, NewProfile("bob@example.test"), "both")
	for _, tc := range []struct{ email, want string }{
		{"carol@example.test", "Carol@example.test"},
		{"CAROL@example.test", "Carol@example.test"},
		{"Carol@example.test", ""},
		{"dave@example.test", ""},
	} {
		if got := Similar(store, tc.email); got != tc.want {
			t.Errorf("Similar(%s) = %q, want %q", tc.email, got, tc.want)
		}
		hints := NotManagedHints(store, tc.email, "more")
		want := []string{"more"}
		if tc.want != "" {
			want = []string{"did you mean " + tc.want + "?", "more"}
		}
		if len(hints) != len(want) || !strings.HasPrefix(hints[0], want[0]) || hints[len(hints)-1] != "more" {
			t.Errorf("NotManagedHints(%s) = %q, want %q", tc.email, hints, want)
		}
	}
	if Similar(nil, "carol@example.test") != "" {
		t.Error("Similar without a state directory names an address")
	}
}
