package issuer

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/acmemail/acmemail/keystore"
)

// TestExportOf: the current certificate, every archived one with the
// history, and the encryption certificate of a split pair after the
// signing ones; an address that is only in another's certificate says
// whose.
func TestExportOf(t *testing.T) {
	store := testStore(t)
	const email = "alice@example.test"
	p := NewProfile(email)
	p.Also = []Also{{Email: "alias@example.test"}}
	old := saveTestCert(t, store, p, "sign")
	cur := saveTestCert(t, store, p, "sign")
	enc := saveTestCert(t, encSlot(t, store), p, "encrypt")

	e, err := ExportOf(store, email, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Serials(); len(got) != 2 || got[0] != cur.SerialNumber.Text(16) || got[1] != enc.SerialNumber.Text(16) ||
		e.Encryption == nil || !e.Current.Current {
		t.Errorf("current: serials %q", got)
	}
	e, err = ExportOf(store, email, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Serials(); len(got) != 3 || got[0] != old.SerialNumber.Text(16) || got[1] != cur.SerialNumber.Text(16) || got[2] != enc.SerialNumber.Text(16) {
		t.Errorf("history: serials %q", got)
	}
	if data, err := e.PKCS12("pw", keystore.P12Modern); err != nil || len(data) == 0 {
		t.Errorf("PKCS12: %d bytes, %v", len(data), err)
	}

	var ae *AlsoAddressError
	if _, err := ExportOf(store, "ALIAS@example.test", false); !errors.As(err, &ae) || ae.Primary != email || !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("an address of another's certificate: %v", err)
	}
	if _, err := ExportOf(store, "bob@example.test", false); !errors.Is(err, ErrNotManaged) {
		t.Errorf("an address without a certificate: %v", err)
	}
}

// TestExportWritePEM: key, certificate and chain of each certificate of a
// pair, the keys private; nothing is written when one file exists.
func TestExportWritePEM(t *testing.T) {
	store := testStore(t)
	const email = "alice@example.test"
	saveTestCert(t, store, NewProfile(email), "sign")
	saveTestCert(t, encSlot(t, store), NewProfile(email), "encrypt")
	e, err := ExportOf(store, email, false)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := e.WritePEM(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alice@example.test.key.pem", "alice@example.test.cert.pem", "alice@example.test.chain.pem",
		"alice@example.test.encrypt.key.pem", "alice@example.test.encrypt.cert.pem", "alice@example.test.encrypt.chain.pem"}
	if len(files) != len(want) {
		t.Fatalf("files %q", files)
	}
	for i, f := range files {
		if f != filepath.Join(dir, want[i]) {
			t.Errorf("file %d = %s, want %s", i, f, want[i])
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want a private file", f, fi.Mode())
		}
	}
	key, _ := os.ReadFile(files[0])
	if _, err := keystore.ParsePrivateKey(key); err != nil {
		t.Errorf("the key file: %v", err)
	}

	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, want[4]), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var ee *ExistsError
	if _, err := e.WritePEM(dir2); !errors.As(err, &ee) || ee.Path != filepath.Join(dir2, want[4]) || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("an existing file: %v", err)
	}
	if entries, _ := os.ReadDir(dir2); len(entries) != 1 {
		t.Errorf("files were written next to an existing one: %d", len(entries))
	}
}
