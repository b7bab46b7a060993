package keystore

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestListIdentities: besides the addresses with a certificate, those
// whose first certificate is pending (a key, an order, a pending key that
// was moved aside) and those whose certificate files are incomplete are
// listed, each with what its directory holds; one with only lock files is
// not. A slot's view looks into the slot.
func TestListIdentities(t *testing.T) {
	ca := newTestCA(t)
	s := openTestStore(t)
	const full, pending, ordered, corrupt, broken, locks = "full@example.org", "pending@example.org", "ordered@example.org",
		"corrupt@example.org", "broken@example.org", "locks@example.org"
	k, err := s.CertKey(full, KeyP256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveCertificate(full, ca.issue(t, k.Public(), full), CertMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CertKey(pending, KeyP256); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteOrderState(ordered, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, "certificates", corrupt), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "certificates", corrupt, pendingKeyFile), []byte("torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CertKey(corrupt, KeyP256); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, "certificates", broken), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "certificates", broken, keyFile), []byte("a key, no chain"), 0o600); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.LockIdentity(context.Background(), locks, false)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	enc := mustSlot(t, s, "encrypt")
	if _, err := enc.CertKey(full, KeyP256); err != nil {
		t.Fatal(err)
	}

	list, err := s.ListIdentities()
	if want := []string{broken, corrupt, full, ordered, pending}; err != nil || !slices.Equal(list, want) {
		t.Errorf("ListIdentities = %q, %v; want %q", list, err, want)
	}
	if list, err := s.ListCertificates(); err != nil || !slices.Equal(list, []string{full}) {
		t.Errorf("ListCertificates = %q, %v; want only %s", list, err, full)
	}
	for email, want := range map[string]DirContents{
		full: CertificateFiles, pending: PendingOnly, ordered: PendingOnly, corrupt: PendingOnly,
		broken: CertificateFiles, locks: NoCertificateFiles, "none@example.org": NoCertificateFiles,
	} {
		if c, err := s.Contents(email); err != nil || c != want {
			t.Errorf("Contents(%s) = %v, %v; want %v", email, c, err, want)
		}
	}
	if c, err := enc.Contents(full); err != nil || c != PendingOnly {
		t.Errorf("Contents of the slot = %v, %v; want PendingOnly", c, err)
	}
	if list, err := enc.ListIdentities(); err != nil || !slices.Equal(list, []string{full}) {
		t.Errorf("ListIdentities of the slot = %q, %v; want %s", list, err, full)
	}
}
