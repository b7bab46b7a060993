package issuer

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/acmemail/acmemail/acmemail"
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
	if got := e.Serials(); len(got) != 2 || got[0] != acmemail.FormatSerial(cur.SerialNumber) || got[1] != acmemail.FormatSerial(enc.SerialNumber) ||
		e.Encryption == nil || !e.Current.Current {
		t.Errorf("current: serials %q", got)
	}
	e, err = ExportOf(store, email, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Serials(); len(got) != 3 || got[0] != acmemail.FormatSerial(old.SerialNumber) || got[1] != acmemail.FormatSerial(cur.SerialNumber) || got[2] != acmemail.FormatSerial(enc.SerialNumber) {
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
	want := []string{"alice@example.test.key.pem", "alice@example.test.cert.pem", "alice@example.test.chain.pem", "alice@example.test.ca.pem",
		"alice@example.test.encrypt.key.pem", "alice@example.test.encrypt.cert.pem", "alice@example.test.encrypt.chain.pem", "alice@example.test.encrypt.ca.pem"}
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
		if i%PEMFilesPerCert == 0 && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want a private file", f, fi.Mode())
		}
	}
	key, _ := os.ReadFile(files[0])
	if _, err := keystore.ParsePrivateKey(key); err != nil {
		t.Errorf("the key file: %v", err)
	}

	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, want[5]), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var ee *ExistsError
	if _, err := e.WritePEM(dir2); !errors.As(err, &ee) || ee.Path != filepath.Join(dir2, want[5]) || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("an existing file: %v", err)
	}
	if entries, _ := os.ReadDir(dir2); len(entries) != 1 {
		t.Errorf("files were written next to an existing one: %d", len(entries))
	}
}

// TestExportOfDamagedArchive: an archived certificate that cannot be read
// kept the current one from being exported (the whole history was read
// for it). It is exported; with the history the damaged entry is an
// error naming it, and the signing and encryption certificates alike.
func TestExportOfDamagedArchive(t *testing.T) {
	store := testStore(t)
	const email = "alice@example.test"
	p := NewProfile(email)
	saveTestCert(t, store, p, "sign")
	cur := saveTestCert(t, store, p, "sign")
	enc := encSlot(t, store)
	saveTestCert(t, enc, p, "encrypt")
	encCur := saveTestCert(t, enc, p, "encrypt")
	// The encryption certificate's archive first: the history names the
	// first damaged entry it meets, the signing certificate's first.
	for _, dir := range []string{filepath.Join(store.Dir, "certificates", email, EncryptSlot), filepath.Join(store.Dir, "certificates", email)} {
		entries, _ := filepath.Glob(filepath.Join(dir, "archive", "*", "chain.pem"))
		if len(entries) != 1 {
			t.Fatalf("archived chains in %s: %q", dir, entries)
		}
		if err := os.WriteFile(entries[0], []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		e, err := ExportOf(store, email, false)
		if err != nil {
			t.Fatalf("export of the current certificate with a damaged archive: %v", err)
		}
		if got := e.Serials(); len(got) != 2 || got[0] != acmemail.FormatSerial(cur.SerialNumber) || got[1] != acmemail.FormatSerial(encCur.SerialNumber) {
			t.Errorf("current: serials %q", got)
		}
		var ae *keystore.ArchiveEntryError
		if _, err := ExportOf(store, email, true); !errors.As(err, &ae) || ae.Dir != filepath.Dir(entries[0]) {
			t.Errorf("history with a damaged archive entry: %v, want it named (%s)", err, filepath.Dir(entries[0]))
		}
	}
	// No current certificate: the archive is read to tell whether there
	// are archived ones, and its damage is the error.
	if err := os.Remove(filepath.Join(store.Dir, "certificates", email, "chain.pem")); err != nil {
		t.Fatal(err)
	}
	if _, err := ExportOf(store, email, false); !errors.As(err, new(*keystore.ArchiveEntryError)) {
		t.Errorf("no current certificate, a damaged archive: %v", err)
	}
}
