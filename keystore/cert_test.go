package keystore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestCertKeyPendingReuse(t *testing.T) {
	s := openTestStore(t)
	const email = "alice@Example.org"
	k1, err := s.CertKey(email, KeyP256)
	if err != nil {
		t.Fatalf("CertKey = %v", err)
	}
	pending := filepath.Join(s.Dir, "certificates", "alice@example.org", pendingKeyFile)
	onDisk, err := readKey(pending)
	if err != nil || !publicKeysEqual(onDisk.Public(), k1.Public()) {
		t.Fatalf("pending key not on disk after CertKey: %v", err)
	}
	k2, err := s.CertKey("alice@example.org", KeyP256)
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeysEqual(k1.Public(), k2.Public()) {
		t.Error("CertKey with the same type made a new key, want the pending one")
	}
	// Another type replaces the pending key, archiving the old one.
	k3, err := s.CertKey(email, KeyP384)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := KeyTypeOf(k3.Public()); got != KeyP384 {
		t.Errorf("CertKey(p384) made a %s key", got)
	}
	archived, _ := filepath.Glob(filepath.Join(filepath.Dir(pending), "archive", "*", pendingKeyFile))
	if len(archived) != 1 {
		t.Fatalf("archived pending keys = %q, want 1", archived)
	}
	if k, err := readKey(archived[0]); err != nil || !publicKeysEqual(k.Public(), k1.Public()) {
		t.Errorf("archived pending key is not the replaced one (%v)", err)
	}
	if _, err := s.CertKey(email, KeyEd25519); err == nil {
		t.Error("CertKey(ed25519) = nil error, want error")
	}
	if _, err := s.CertKey(email, "rsa1024"); err == nil {
		t.Error("CertKey(rsa1024) = nil error, want error")
	}
}

func TestCertKeyConcurrent(t *testing.T) {
	s := openTestStore(t)
	var wg sync.WaitGroup
	pubs := make([]any, 8)
	for i := range pubs {
		wg.Go(func() {
			k, err := s.CertKey("bob@example.org", KeyP256)
			if err != nil {
				t.Error(err)
				return
			}
			pubs[i] = k.Public()
		})
	}
	wg.Wait()
	for i := range pubs {
		if pubs[i] == nil || !publicKeysEqual(pubs[0], pubs[i]) {
			t.Fatal("concurrent CertKey calls returned different keys")
		}
	}
}

func TestSaveLoadCertificate(t *testing.T) {
	ca := newTestCA(t)
	for _, kt := range []KeyType{KeyP256, KeyP384, KeyRSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			s := openTestStore(t)
			const email = "Carol@EXAMPLE.org"
			key, err := s.CertKey(email, kt)
			if err != nil {
				t.Fatal(err)
			}
			chainPEM := ca.issue(t, key.Public(), email)
			meta := CertMeta{Directory: "https://ca.example/dir", Usage: "sign", OrderURL: "o", CertURL: "c", Serial: "bogus"}
			paths, err := s.SaveCertificate(email, append([]byte("junk before\n"), chainPEM...), meta)
			if err != nil {
				t.Fatalf("SaveCertificate = %v", err)
			}
			if paths.Archive != "" {
				t.Errorf("first SaveCertificate archived to %s, want nothing", paths.Archive)
			}
			if ok, _ := exists(filepath.Join(paths.Dir, pendingKeyFile)); ok {
				t.Error("pending key still exists after SaveCertificate")
			}
			gotKey, chain, gotMeta, gotPaths, err := s.LoadCertificate(email)
			if err != nil {
				t.Fatalf("LoadCertificate = %v", err)
			}
			if !publicKeysEqual(gotKey.Public(), key.Public()) {
				t.Error("LoadCertificate key differs from the pending key")
			}
			if len(chain) != 2 || !chain[1].Equal(ca.cert) {
				t.Errorf("LoadCertificate chain has %d certificates, want leaf + CA", len(chain))
			}
			want := meta
			want.Email = "Carol@example.org"
			want.KeyType = kt
			want.Serial = chain[0].SerialNumber.Text(16)
			want.NotBefore, want.NotAfter = chain[0].NotBefore, chain[0].NotAfter
			if !reflect.DeepEqual(gotMeta, want) {
				t.Errorf("meta = %+v, want %+v", gotMeta, want)
			}
			if gotPaths != paths || filepath.Base(paths.Dir) != "Carol@example.org" {
				t.Errorf("paths = %+v, want %+v in certificates/Carol@example.org", gotPaths, paths)
			}
			if data, _ := os.ReadFile(paths.Chain); bytes.Contains(data, []byte("junk")) {
				t.Error("chain.pem keeps text from outside the PEM blocks")
			}
			list, err := s.ListCertificates()
			if err != nil || len(list) != 1 || list[0] != "Carol@example.org" {
				t.Errorf("ListCertificates = %q, %v", list, err)
			}
		})
	}
}

func TestLoadCertificateNotFound(t *testing.T) {
	s := openTestStore(t)
	if _, _, _, _, err := s.LoadCertificate("nobody@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadCertificate(unknown) = %v, want ErrNotFound", err)
	}
	// A pending key alone is not a certificate.
	if _, err := s.CertKey("dave@example.org", KeyP256); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := s.LoadCertificate("dave@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadCertificate(pending only) = %v, want ErrNotFound", err)
	}
	if _, err := s.WritePKCS12("dave@example.org", "pw", P12Modern); !errors.Is(err, ErrNotFound) {
		t.Errorf("WritePKCS12(pending only) = %v, want ErrNotFound", err)
	}
}

// snapshot returns the content of every file below dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && fi.Name() != lockFileName {
			b, _ := os.ReadFile(p)
			m[strings.TrimPrefix(p, dir)] = string(b)
		}
		return nil
	})
	return m
}

func TestSaveCertificateRefusesForeignKey(t *testing.T) {
	ca := newTestCA(t)
	s := openTestStore(t)
	const email = "erin@example.org"
	key, _ := s.CertKey(email, KeyP256)
	if _, err := s.SaveCertificate(email, ca.issue(t, key.Public(), email), CertMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CertKey(email, KeyP256); err != nil { // a new pending key
		t.Fatal(err)
	}
	dir := filepath.Join(s.Dir, "certificates", email)
	before := snapshot(t, dir)

	tests := []struct {
		name  string
		chain []byte
	}{
		{"foreign key", ca.issue(t, testKey(t, KeyP384).Public(), email)},
		{"empty", nil},
		{"garbage", []byte("not a certificate")},
		{"key block", append(ca.issue(t, key.Public(), email), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"...)},
	}
	for _, tt := range tests {
		if _, err := s.SaveCertificate(email, tt.chain, CertMeta{}); err == nil {
			t.Errorf("%s: SaveCertificate = nil error, want error", tt.name)
		}
	}
	after := snapshot(t, dir)
	if len(after) != len(before) {
		t.Errorf("files changed: before %d, after %d", len(before), len(after))
	}
	for p, c := range before {
		if after[p] != c {
			t.Errorf("%s changed after a refused SaveCertificate", p)
		}
	}
}

func TestSaveCertificateArchives(t *testing.T) {
	ca := newTestCA(t)
	s := openTestStore(t)
	const email = "frank@example.org"
	k1, _ := s.CertKey(email, KeyP256)
	p1, err := s.SaveCertificate(email, ca.issue(t, k1.Public(), email), CertMeta{Usage: "both"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WritePKCS12(email, "pw", P12Modern); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteRenewalState(email, []byte(`{"serial":"01"}`+"\n")); err != nil {
		t.Fatal(err)
	}
	first := snapshot(t, p1.Dir)
	// Every file of the first generation, by identity: the install links
	// them into the archive rather than freeing any of them.
	generation := []string{keyFile, chainFile, leafFile, metaFile, p12File, renewalFile}
	firstFiles := map[string]os.FileInfo{}
	for _, name := range generation {
		fi, err := os.Stat(filepath.Join(p1.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		firstFiles[name] = fi
	}

	k2, _ := s.CertKey(email, KeyP256)
	if publicKeysEqual(k1.Public(), k2.Public()) {
		t.Fatal("CertKey after an install reused the installed key")
	}
	p2, err := s.SaveCertificate(email, ca.issue(t, k2.Public(), email), CertMeta{Usage: "both"})
	if err != nil {
		t.Fatal(err)
	}
	if p2.Archive == "" || filepath.Dir(p2.Archive) != filepath.Join(p2.Dir, "archive") {
		t.Fatalf("second SaveCertificate Archive = %q, want certificates/%s/archive/<timestamp>", p2.Archive, email)
	}
	for _, name := range generation {
		got, err := os.ReadFile(filepath.Join(p2.Archive, name))
		if err != nil {
			t.Errorf("archive: %v", err)
			continue
		}
		if string(got) != first["/"+name] {
			t.Errorf("archived %s differs from the first generation's", name)
		}
		if fi, err := os.Stat(filepath.Join(p2.Archive, name)); err != nil || !os.SameFile(fi, firstFiles[name]) {
			t.Errorf("archived %s is not the first generation's file (a copy, or %v)", name, err)
		}
	}
	if ok, _ := exists(filepath.Join(p2.Dir, renewalFile)); ok {
		t.Error("the first certificate's renewal window is still current after SaveCertificate")
	}
	if ok, _ := exists(p2.PKCS12); ok {
		t.Error("the old cert.p12 is still current after SaveCertificate")
	}
	key, chain, _, _, err := s.LoadCertificate(email)
	if err != nil || !publicKeysEqual(key.Public(), k2.Public()) || !publicKeysEqual(chain[0].PublicKey, k2.Public()) {
		t.Errorf("LoadCertificate after the second save: %v; want the second key and chain", err)
	}

	// Saving a chain for the installed key (no pending key) is accepted:
	// a second certificate for the same key.
	p3, err := s.SaveCertificate(email, ca.issue(t, k2.Public(), email), CertMeta{})
	if err != nil {
		t.Fatalf("SaveCertificate for the installed key = %v", err)
	}
	if p3.Archive == "" || p3.Archive == p2.Archive {
		t.Errorf("third save archived to %q, want a new archive directory", p3.Archive)
	}
	if k, _, _, _, err := s.LoadCertificate(email); err != nil || !publicKeysEqual(k.Public(), k2.Public()) {
		t.Errorf("key changed by a save for the installed key (%v)", err)
	}
}

// TestInterruptedInstall simulates a crash at each step of
// SaveCertificate's commit and checks that the next call completes it.
func TestInterruptedInstall(t *testing.T) {
	ca := newTestCA(t)
	const email = "gina@example.org"
	type state struct {
		s             *Store
		dir           string
		newKey        []byte
		newChain      []byte
		oldChainBytes []byte
	}
	// prepare installs a first certificate, then leaves a complete second
	// install staged but not committed (as SaveCertificate does before
	// its final finishInstall).
	prepare := func(t *testing.T) state {
		s := openTestStore(t)
		k1, _ := s.CertKey(email, KeyP256)
		p, err := s.SaveCertificate(email, ca.issue(t, k1.Public(), email), CertMeta{})
		if err != nil {
			t.Fatal(err)
		}
		old, _ := os.ReadFile(p.Chain)
		k2, _ := s.CertKey(email, KeyP256)
		chain, err := ParseChain(ca.issue(t, k2.Public(), email))
		if err != nil {
			t.Fatal(err)
		}
		m := CertMeta{Email: email, KeyType: KeyP256}
		fillFromLeaf(&m, chain[0])
		mj := mustJSON(t, m)
		if err := WriteFileAtomic(filepath.Join(p.Dir, metaFile+stagedSuffix), mj, filePerm); err != nil {
			t.Fatal(err)
		}
		if err := WriteFileAtomic(filepath.Join(p.Dir, chainFile+stagedSuffix), encodeChain(chain), filePerm); err != nil {
			t.Fatal(err)
		}
		nk, _ := MarshalPrivateKey(k2)
		return state{s: s, dir: p.Dir, newKey: nk, newChain: encodeChain(chain), oldChainBytes: old}
	}
	committed := func(t *testing.T, st state) {
		t.Helper()
		key, chain, meta, _, err := st.s.LoadCertificate(email)
		if err != nil {
			t.Fatalf("LoadCertificate = %v", err)
		}
		if got, _ := os.ReadFile(filepath.Join(st.dir, chainFile)); !bytes.Equal(got, st.newChain) {
			t.Error("chain.pem is not the staged chain")
		}
		if got, _ := MarshalPrivateKey(key); !bytes.Equal(got, st.newKey) {
			t.Error("key.pem is not the pending key")
		}
		if meta.Serial != chain[0].SerialNumber.Text(16) {
			t.Errorf("meta serial %s, want %s", meta.Serial, chain[0].SerialNumber.Text(16))
		}
		for _, n := range []string{chainFile + stagedSuffix, metaFile + stagedSuffix, pendingKeyFile} {
			if ok, _ := exists(filepath.Join(st.dir, n)); ok {
				t.Errorf("%s left behind", n)
			}
		}
	}

	// prepareLeaf stages like SaveCertificate does now: cert.pem.new too.
	prepareLeaf := func(t *testing.T) state {
		st := prepare(t)
		chain, _ := ParseChain(st.newChain)
		if err := WriteFileAtomic(filepath.Join(st.dir, leafFile+stagedSuffix), encodeChain(chain[:1]), filePerm); err != nil {
			t.Fatal(err)
		}
		return st
	}
	leafCommitted := func(t *testing.T, st state) {
		t.Helper()
		committed(t, st)
		chain, _ := ParseChain(st.newChain)
		if got, _ := os.ReadFile(filepath.Join(st.dir, leafFile)); !bytes.Equal(got, encodeChain(chain[:1])) {
			t.Error("cert.pem is not the staged leaf")
		}
		if ok, _ := exists(filepath.Join(st.dir, leafFile+stagedSuffix)); ok {
			t.Error("cert.pem.new left behind")
		}
	}
	t.Run("staged, nothing renamed", func(t *testing.T) {
		st := prepare(t)
		committed(t, st)
	})
	t.Run("key renamed", func(t *testing.T) {
		st := prepare(t)
		os.Rename(filepath.Join(st.dir, pendingKeyFile), filepath.Join(st.dir, keyFile))
		committed(t, st)
	})
	t.Run("key and chain renamed", func(t *testing.T) {
		st := prepare(t)
		os.Rename(filepath.Join(st.dir, pendingKeyFile), filepath.Join(st.dir, keyFile))
		os.Rename(filepath.Join(st.dir, chainFile+stagedSuffix), filepath.Join(st.dir, chainFile))
		committed(t, st)
	})
	t.Run("staged with the leaf, nothing renamed", func(t *testing.T) {
		st := prepareLeaf(t)
		leafCommitted(t, st)
	})
	t.Run("staged without the leaf (older version)", func(t *testing.T) {
		st := prepare(t)
		leafCommitted(t, st)
	})
	t.Run("key and leaf renamed", func(t *testing.T) {
		st := prepareLeaf(t)
		os.Rename(filepath.Join(st.dir, pendingKeyFile), filepath.Join(st.dir, keyFile))
		os.Rename(filepath.Join(st.dir, leafFile+stagedSuffix), filepath.Join(st.dir, leafFile))
		leafCommitted(t, st)
	})
	// A system crash before the commit's directory fsync may keep the
	// chain's rename and lose the leaf's (or the meta's).
	t.Run("chain renamed, leaf and meta not", func(t *testing.T) {
		st := prepareLeaf(t)
		os.Rename(filepath.Join(st.dir, pendingKeyFile), filepath.Join(st.dir, keyFile))
		os.Rename(filepath.Join(st.dir, chainFile+stagedSuffix), filepath.Join(st.dir, chainFile))
		leafCommitted(t, st)
	})
	t.Run("chain and meta renamed, leaf not", func(t *testing.T) {
		st := prepareLeaf(t)
		os.Rename(filepath.Join(st.dir, pendingKeyFile), filepath.Join(st.dir, keyFile))
		os.Rename(filepath.Join(st.dir, chainFile+stagedSuffix), filepath.Join(st.dir, chainFile))
		os.Rename(filepath.Join(st.dir, metaFile+stagedSuffix), filepath.Join(st.dir, metaFile))
		leafCommitted(t, st)
	})
	t.Run("staging with the leaf interrupted", func(t *testing.T) {
		st := prepareLeaf(t)
		os.Remove(filepath.Join(st.dir, chainFile+stagedSuffix))
		oldLeaf, _ := os.ReadFile(filepath.Join(st.dir, leafFile))
		if _, _, _, _, err := st.s.LoadCertificate(email); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(st.dir, leafFile)); !bytes.Equal(got, oldLeaf) {
			t.Error("cert.pem changed although staging never completed")
		}
		for _, n := range []string{leafFile + stagedSuffix, metaFile + stagedSuffix} {
			if ok, _ := exists(filepath.Join(st.dir, n)); ok {
				t.Errorf("stale %s left behind", n)
			}
		}
	})
	t.Run("staging interrupted", func(t *testing.T) {
		st := prepare(t)
		os.Remove(filepath.Join(st.dir, chainFile+stagedSuffix))
		if _, _, _, _, err := st.s.LoadCertificate(email); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(st.dir, chainFile)); !bytes.Equal(got, st.oldChainBytes) {
			t.Error("chain.pem changed although staging never completed")
		}
		if ok, _ := exists(filepath.Join(st.dir, metaFile+stagedSuffix)); ok {
			t.Error("stale meta.json.new left behind")
		}
		if ok, _ := exists(filepath.Join(st.dir, pendingKeyFile)); !ok {
			t.Error("pending key lost")
		}
	})
}

func FuzzParseChain(f *testing.F) {
	ca := newTestCA(f)
	f.Add(ca.issue(f, testKey(f, KeyP256).Public(), "a@example.org"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		chain, err := ParseChain(data)
		if err == nil && len(chain) == 0 {
			t.Fatal("ParseChain = empty chain, nil error")
		}
		if err == nil {
			if _, err := ParseChain(encodeChain(chain)); err != nil {
				t.Fatalf("ParseChain(encodeChain(chain)) = %v", err)
			}
		}
	})
}

// TestCertKeyCorruptPending: a pending-key.pem that does not hold a key
// used to fail every CertKey, so every obtain and renew of the address,
// for good. It is moved aside, byte for byte, a new key is made, and the
// Notice is told where it went; a slot tells the same Notice.
func TestCertKeyCorruptPending(t *testing.T) {
	s := openTestStore(t)
	var notices []string
	s.Notice = func(msg string) { notices = append(notices, msg) }
	const email = "corrupt@example.org"
	dir := filepath.Join(s.Dir, "certificates", email)
	for i, st := range []*Store{s, mustSlot(t, s, "encrypt")} {
		if i == 1 {
			dir = filepath.Join(dir, "encrypt")
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		garbage := []byte("-----BEGIN PRIVATE KEY-----\nnot a key\n")
		pending := filepath.Join(dir, pendingKeyFile)
		if err := os.WriteFile(pending, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := st.CertKey(email, KeyP256)
		if err != nil {
			t.Fatalf("CertKey with a corrupt pending key = %v, want a new key", err)
		}
		if onDisk, err := readKey(pending); err != nil || !publicKeysEqual(onDisk.Public(), k.Public()) {
			t.Errorf("the new key is not pending-key.pem: %v", err)
		}
		aside, _ := filepath.Glob(pending + ".corrupt-*")
		if len(aside) != 1 {
			t.Fatalf("moved aside: %q, want one file", aside)
		}
		if data, _ := os.ReadFile(aside[0]); !bytes.Equal(data, garbage) {
			t.Errorf("%s = %q, want the corrupt file as it was", aside[0], data)
		}
		if len(notices) != i+1 || !strings.Contains(notices[i], pending) || !strings.Contains(notices[i], aside[0]) {
			t.Errorf("notices = %q, want one naming %s and %s", notices, pending, aside[0])
		}
	}
	// One that cannot be read is not moved: the error names it and what
	// to do. (Root reads it anyway.)
	if os.Geteuid() != 0 {
		pending := filepath.Join(dir, pendingKeyFile)
		if err := os.Chmod(pending, 0); err != nil {
			t.Fatal(err)
		}
		_, err := mustSlot(t, s, "encrypt").CertKey(email, KeyP256)
		if err == nil || !strings.Contains(err.Error(), "read "+pending) || !strings.Contains(err.Error(), "move it aside") {
			t.Errorf("CertKey with an unreadable pending key = %v, want it named with a hint", err)
		}
	}
}

func mustSlot(t *testing.T, s *Store, name string) *Store {
	t.Helper()
	slot, err := s.Slot(name)
	if err != nil {
		t.Fatal(err)
	}
	return slot
}
