package keystore

import (
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/acmemail/acmemail/internal/tmpfstest"
)

// p12For is the PKCS #12 file of key and chainPEM (password "pw").
func p12For(t *testing.T, key crypto.Signer, chainPEM []byte) []byte {
	t.Helper()
	chain, err := ParseChain(chainPEM)
	if err != nil {
		t.Fatal(err)
	}
	data, err := EncodePKCS12(key, chain, "pw", P12Modern)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// p12Serial is the serial of the leaf in the PKCS #12 file at path, or ""
// when there is no such file.
func p12Serial(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	_, leaf, _, err := pkcs12.DecodeChain(data, "pw")
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return leaf.SerialNumber.Text(16)
}

// TestSaveCertificateWithPKCS12: the PKCS #12 file is installed with the
// certificate; the previous one goes to the archive.
func TestSaveCertificateWithPKCS12(t *testing.T) {
	ca := newTestCA(t)
	s := openTestStore(t)
	const email = "hana@example.org"
	k1, _ := s.CertKey(email, KeyP256)
	c1 := ca.issue(t, k1.Public(), email)
	p1, err := s.SaveCertificateWithPKCS12(email, c1, CertMeta{}, p12For(t, k1, c1))
	if err != nil {
		t.Fatal(err)
	}
	m1, _ := ParseChain(c1)
	if got := p12Serial(t, p1.PKCS12); got != m1[0].SerialNumber.Text(16) {
		t.Fatalf("cert.p12 holds serial %q, want %s", got, m1[0].SerialNumber.Text(16))
	}
	k2, _ := s.CertKey(email, KeyP256)
	c2 := ca.issue(t, k2.Public(), email)
	p2, err := s.SaveCertificateWithPKCS12(email, c2, CertMeta{}, p12For(t, k2, c2))
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := ParseChain(c2)
	if got := p12Serial(t, p2.PKCS12); got != m2[0].SerialNumber.Text(16) {
		t.Errorf("cert.p12 holds serial %q, want the new %s", got, m2[0].SerialNumber.Text(16))
	}
	if got := p12Serial(t, filepath.Join(p2.Archive, p12File)); got != m1[0].SerialNumber.Text(16) {
		t.Errorf("archived cert.p12 holds serial %q, want the first %s", got, m1[0].SerialNumber.Text(16))
	}
	if _, err := s.SaveCertificateWithPKCS12(email, c2, CertMeta{}, nil); err == nil {
		t.Error("an empty PKCS #12 file was accepted")
	}
	// What the install returns is what reading it back gives.
	key, chain, meta, paths, err := s.LoadCertificate(email)
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeysEqual(p2.Key.Public(), key.Public()) || len(p2.Chain) != len(chain) || !p2.Chain[0].Equal(chain[0]) {
		t.Error("the installed key or chain differs from what LoadCertificate reads")
	}
	if !reflect.DeepEqual(p2.Meta, meta) {
		t.Errorf("installed meta %+v, LoadCertificate reads %+v", p2.Meta, meta)
	}
	if paths.Dir != p2.Dir || paths.PKCS12 != p2.PKCS12 {
		t.Errorf("installed paths %+v, LoadCertificate's %+v", p2.CertPaths, paths)
	}
}

// TestInterruptedInstallPKCS12: a staged cert.p12.new is installed with
// its chain when the install was interrupted after the chain's rename,
// and discarded when staging was interrupted.
func TestInterruptedInstallPKCS12(t *testing.T) {
	ca := newTestCA(t)
	const email = "ines@example.org"
	type state struct {
		s                    *Store
		dir                  string
		oldSerial, newSerial string
	}
	// prepare installs a first certificate with its PKCS #12 file, then
	// stages a second install as SaveCertificateWithPKCS12 does before
	// its final finishInstall.
	prepare := func(t *testing.T) state {
		s := openTestStore(t)
		k1, _ := s.CertKey(email, KeyP256)
		c1 := ca.issue(t, k1.Public(), email)
		p, err := s.SaveCertificateWithPKCS12(email, c1, CertMeta{}, p12For(t, k1, c1))
		if err != nil {
			t.Fatal(err)
		}
		k2, _ := s.CertKey(email, KeyP256)
		c2 := ca.issue(t, k2.Public(), email)
		chain, _ := ParseChain(c2)
		m := CertMeta{Email: email, KeyType: KeyP256}
		fillFromLeaf(&m, chain[0])
		for _, f := range []stagedFile{
			{p12File + stagedSuffix, p12For(t, k2, c2)},
			{metaFile + stagedSuffix, mustJSON(t, m)},
			{leafFile + stagedSuffix, encodeChain(chain[:1])},
			{chainFile + stagedSuffix, encodeChain(chain)},
		} {
			if err := WriteFileAtomic(filepath.Join(p.Dir, f.name), f.data, filePerm); err != nil {
				t.Fatal(err)
			}
		}
		old, _ := ParseChain(c1)
		return state{s: s, dir: p.Dir, oldSerial: old[0].SerialNumber.Text(16), newSerial: chain[0].SerialNumber.Text(16)}
	}
	load := func(t *testing.T, st state) string {
		t.Helper()
		_, chain, _, _, err := st.s.LoadCertificate(email)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{chainFile, metaFile, leafFile, p12File} {
			if ok, _ := exists(filepath.Join(st.dir, n+stagedSuffix)); ok {
				t.Errorf("%s left behind", n+stagedSuffix)
			}
		}
		return chain[0].SerialNumber.Text(16)
	}
	rename := func(st state, names ...string) {
		for _, n := range names {
			from := filepath.Join(st.dir, n+stagedSuffix)
			if n == keyFile {
				from = filepath.Join(st.dir, pendingKeyFile)
			}
			os.Rename(from, filepath.Join(st.dir, n))
		}
	}
	t.Run("staged, nothing renamed", func(t *testing.T) {
		st := prepare(t)
		if got := load(t, st); got != st.newSerial {
			t.Fatalf("installed %s, want %s", got, st.newSerial)
		}
		if got := p12Serial(t, filepath.Join(st.dir, p12File)); got != st.newSerial {
			t.Errorf("cert.p12 holds %q, want %s", got, st.newSerial)
		}
	})
	t.Run("killed after the chain's rename", func(t *testing.T) {
		st := prepare(t)
		os.Remove(filepath.Join(st.dir, p12File))
		rename(st, keyFile, leafFile, chainFile)
		if got := load(t, st); got != st.newSerial {
			t.Fatalf("installed %s, want %s", got, st.newSerial)
		}
		if got := p12Serial(t, filepath.Join(st.dir, p12File)); got != st.newSerial {
			t.Errorf("cert.p12 holds %q, want %s", got, st.newSerial)
		}
	})
	t.Run("killed after the PKCS #12 file's rename", func(t *testing.T) {
		st := prepare(t)
		rename(st, keyFile, leafFile, chainFile, p12File)
		if got := load(t, st); got != st.newSerial {
			t.Fatalf("installed %s, want %s", got, st.newSerial)
		}
		if got := p12Serial(t, filepath.Join(st.dir, p12File)); got != st.newSerial {
			t.Errorf("cert.p12 holds %q, want %s", got, st.newSerial)
		}
	})
	t.Run("staging interrupted", func(t *testing.T) {
		st := prepare(t)
		os.Remove(filepath.Join(st.dir, chainFile+stagedSuffix))
		if got := load(t, st); got != st.oldSerial {
			t.Fatalf("installed %s, want the old %s", got, st.oldSerial)
		}
		if got := p12Serial(t, filepath.Join(st.dir, p12File)); got != st.oldSerial {
			t.Errorf("cert.p12 holds %q, want the old %s", got, st.oldSerial)
		}
	})
	t.Run("staging interrupted after the PKCS #12 file alone", func(t *testing.T) {
		st := prepare(t)
		for _, n := range []string{chainFile, metaFile, leafFile} {
			os.Remove(filepath.Join(st.dir, n+stagedSuffix))
		}
		if got := load(t, st); got != st.oldSerial {
			t.Fatalf("installed %s, want the old %s", got, st.oldSerial)
		}
		if got := p12Serial(t, filepath.Join(st.dir, p12File)); got != st.oldSerial {
			t.Errorf("cert.p12 holds %q, want the old %s", got, st.oldSerial)
		}
	})
}

// TestSaveCertificateDiskFull: on a full file system, a save fails
// without changing anything (no archive, no staged file, the pending key
// and order state kept), whatever the space left; once there is space,
// the same save succeeds.
func TestSaveCertificateDiskFull(t *testing.T) {
	t.Run("SaveCertificate", func(t *testing.T) {
		testSaveDiskFull(t, func(s *Store, email string, chain, _ []byte) (CertPaths, error) {
			return s.SaveCertificate(email, chain, CertMeta{})
		})
	})
	t.Run("SaveCertificateWithPKCS12", func(t *testing.T) {
		testSaveDiskFull(t, func(s *Store, email string, chain, p12 []byte) (CertPaths, error) {
			inst, err := s.SaveCertificateWithPKCS12(email, chain, CertMeta{}, p12)
			return inst.CertPaths, err
		})
	})
}

func testSaveDiskFull(t *testing.T, save func(s *Store, email string, chain, p12 []byte) (CertPaths, error)) {
	dir := tmpfstest.Mount(t, 1<<20)
	ca := newTestCA(t)
	s, err := Open(filepath.Join(dir, "home"))
	if err != nil {
		t.Fatal(err)
	}
	const email = "jo@example.org"
	k1, _ := s.CertKey(email, KeyP256)
	c1 := ca.issue(t, k1.Public(), email)
	if _, err := s.SaveCertificateWithPKCS12(email, c1, CertMeta{}, p12For(t, k1, c1)); err != nil {
		t.Fatal(err)
	}
	k2, _ := s.CertKey(email, KeyP256)
	if err := s.WriteOrderState(email, []byte(`{"order_url":"x"}`)); err != nil {
		t.Fatal(err)
	}
	c2 := ca.issue(t, k2.Public(), email)
	p12 := p12For(t, k2, c2)
	certDir := filepath.Join(s.Dir, "certificates", email)
	before := snapshot(t, certDir)
	const page = 4096
	saved := false
	for leave := int64(0); leave < 8*page && !saved; leave += page {
		unfill := tmpfstest.Fill(t, dir, leave)
		_, err := save(s, email, c2, p12)
		if err == nil { // enough space for this save
			saved = true
			unfill()
			break
		}
		if !errors.Is(err, syscall.ENOSPC) {
			unfill()
			t.Fatalf("%d bytes free: SaveCertificate = %v, want ENOSPC", leave, err)
		}
		after := snapshot(t, certDir)
		for p, c := range before {
			if after[p] != c {
				t.Errorf("%d bytes free: %s changed or went away after the failed save", leave, p)
			}
		}
		for p := range after {
			if _, ok := before[p]; !ok {
				t.Errorf("%d bytes free: the failed save left %s", leave, p)
			}
		}
		if arch, _ := filepath.Glob(filepath.Join(certDir, "archive", "*")); len(arch) != 0 {
			t.Errorf("%d bytes free: the failed save left archive directories %v", leave, arch)
		}
		unfill()
	}
	if !saved {
		if _, err := save(s, email, c2, p12); err != nil {
			t.Fatalf("save with space again: %v", err)
		}
	}
	key, chain, _, paths, err := s.LoadCertificate(email)
	if err != nil || !publicKeysEqual(key.Public(), k2.Public()) || !publicKeysEqual(chain[0].PublicKey, k2.Public()) {
		t.Fatalf("after the save with space: %v; want the new key and chain installed", err)
	}
	if ok, _ := exists(paths.PKCS12); ok {
		if got := p12Serial(t, paths.PKCS12); got != chain[0].SerialNumber.Text(16) {
			t.Errorf("cert.p12 holds %q after the save", got)
		}
	}
	if _, err := s.ReadOrderState(email); !errors.Is(err, ErrNotFound) {
		t.Errorf("the order state is still there after the install: %v", err)
	}
}

// TestStaleTempsRemoved: the temporary files a killed process left in a
// certificate directory (a copy of the pending key among them) are
// removed by the next certificate method; the keys themselves stay.
func TestStaleTempsRemoved(t *testing.T) {
	s := openTestStore(t)
	const email = "kim@example.org"
	key, err := s.CertKey(email, KeyP256)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.Dir, "certificates", email)
	pending := filepath.Join(dir, pendingKeyFile)
	// writeFileExclusive killed after its link: a second name of the key.
	if err := os.Link(pending, filepath.Join(dir, "."+pendingKeyFile+tempInfix+"123")); err != nil {
		t.Fatal(err)
	}
	// Killed before the rename of an atomic write, and of a staged file.
	for _, name := range []string{"." + orderFile + tempInfix + "456", "." + chainFile + stagedSuffix + tempInfix + "789"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	again, err := s.CertKey(email, KeyP256)
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeysEqual(again.Public(), key.Public()) {
		t.Fatal("the pending key changed")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*"+tempInfix+"*")); len(left) != 0 {
		t.Errorf("stale temporary files left: %v", left)
	}
	if ok, _ := exists(pending); !ok {
		t.Error("the pending key is gone")
	}
}
