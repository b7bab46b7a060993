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

// TestOlderSpelling: a directory that an older acmemail made under
// another spelling of an address (the local part in NFD) is that
// address's directory: listed under the normalized address, once, and
// used to read, lock and save, so that no second directory is made. A
// directory of the normalized name beside it wins, and the other is
// neither listed nor used.
func TestOlderSpelling(t *testing.T) {
	const nfd, nfc = "jo\u0308rg@example.org", "j\u00f6rg@example.org"
	ca := newTestCA(t)
	s := openTestStore(t)
	root := filepath.Join(s.Dir, "certificates")
	k, err := s.CertKey(nfc, KeyP256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveCertificate(nfc, ca.issue(t, k.Public(), "jorg@example.org"), CertMeta{}); err != nil {
		t.Fatal(err)
	}
	// As an older acmemail named it.
	if err := os.Rename(filepath.Join(root, nfc), filepath.Join(root, nfd)); err != nil {
		t.Fatal(err)
	}
	for _, list := range []func() ([]string, error){s.ListIdentities, s.ListCertificates} {
		if got, err := list(); err != nil || !slices.Equal(got, []string{nfc}) {
			t.Errorf("listed %+q, %v; want only %+q", got, err, nfc)
		}
	}
	for _, email := range []string{nfc, nfd} {
		_, _, _, paths, err := s.LoadCertificate(email)
		if err != nil || paths.Dir != filepath.Join(root, nfd) {
			t.Errorf("LoadCertificate(%+q): %s, %v; want the certificate in %s", email, paths.Dir, err, filepath.Join(root, nfd))
		}
	}
	unlock, err := s.LockIdentity(context.Background(), nfc, false)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	k2, err := s.CertKey(nfc, KeyP256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveCertificate(nfc, ca.issue(t, k2.Public(), "jorg@example.org"), CertMeta{}); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(root); err != nil || len(entries) != 1 || entries[0].Name() != nfd {
		t.Errorf("certificates/ holds %v, %v; want only the older directory %+q", entries, err, nfd)
	}
	if n := len(mustReadDir(t, filepath.Join(root, nfd, "archive"))); n != 1 {
		t.Errorf("%d certificates archived in the older directory, want the first one", n)
	}

	// A directory of the normalized name beside it wins.
	if _, err := s.CertKey("other@example.org", KeyP256); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, nfc), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, nfc, pendingKeyFile), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ListIdentities(); err != nil || !slices.Equal(got, []string{nfc, "other@example.org"}) {
		t.Errorf("ListIdentities = %+q, %v; want %+q once", got, err, nfc)
	}
	if p, err := s.CertificatePaths(nfd); err != nil || p.Dir != filepath.Join(root, nfc) {
		t.Errorf("CertificatePaths(%+q) = %s, %v; want the directory of the normalized name", nfd, p.Dir, err)
	}
}

func mustReadDir(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}
