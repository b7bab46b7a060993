package keystore

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/asn1"
	"hash"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/acmemail/acmemail/keystore/p12test"
)

// TestP12MACMatchesGoPKCS12 recomputes the MAC of single-key files made by
// go-pkcs12 with our RFC 7292 key derivation: the bundle's MAC is made the
// same way.
func TestP12MACMatchesGoPKCS12(t *testing.T) {
	ca := newTestCA(t)
	key := testKey(t, KeyP256)
	chain, _ := ParseChain(ca.issue(t, key.Public(), "alice@example.org"))
	for _, tc := range []struct {
		profile P12Profile
		h       func() hash.Hash
	}{{P12Modern, sha256.New}, {P12Legacy, sha1.New}} {
		for _, pw := range []string{"test", "pässwörd €"} {
			enc, err := tc.profile.encoder()
			if err != nil {
				t.Fatal(err)
			}
			data, err := enc.Encode(key, chain[0], chain[1:], pw) // go-pkcs12's own MAC
			if err != nil {
				t.Fatal(err)
			}
			pfx, _, err := p12Split(data)
			if err != nil {
				t.Fatal(err)
			}
			var authSafe []byte
			if _, err := asn1.Unmarshal(pfx.AuthSafe.Content.Bytes, &authSafe); err != nil {
				t.Fatal(err)
			}
			got, err := p12MAC(tc.h, pw, pfx.MacData.MacSalt, pfx.MacData.Iterations, authSafe)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, pfx.MacData.Mac.Digest) {
				t.Errorf("%s, password %q: our MAC %x, go-pkcs12's %x", tc.profile, pw, got, pfx.MacData.Mac.Digest)
			}
		}
	}
}

// TestPKCS12BundleImporters: three generations (RSA and EC keys, one CA)
// in one file, read by openssl and imported by NSS pk12util, every key
// with its certificate.
func TestPKCS12BundleImporters(t *testing.T) {
	ca := newTestCA(t)
	var entries []P12Entry
	var wants []p12test.Want
	for _, kt := range []KeyType{KeyRSA2048, KeyP256, KeyP384} {
		key := testKey(t, kt)
		chain, err := ParseChain(ca.issue(t, key.Public(), "alice@example.org"))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, P12Entry{Key: key, Chain: chain})
		wants = append(wants, p12test.Want{Chain: chain, PublicKey: key.Public()})
	}
	for _, profile := range []P12Profile{P12Modern, P12Legacy} {
		t.Run(string(profile), func(t *testing.T) {
			data, err := EncodePKCS12Bundle(entries, "correct horse", profile)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "history.p12")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			for i := range wants {
				wants[i].Profile = string(profile)
			}
			t.Run("openssl", func(t *testing.T) { p12test.OpenSSLBundle(t, path, "correct horse", wants) })
			t.Run("nss", func(t *testing.T) { p12test.NSSBundle(t, path, "correct horse", wants) })
			if _, err := EncodePKCS12Bundle(entries, "", profile); err == nil {
				t.Error("EncodePKCS12Bundle with an empty password = nil error")
			}
		})
	}
	if _, err := EncodePKCS12Bundle([]P12Entry{entries[0], {Key: entries[1].Key, Chain: entries[0].Chain}}, "pw", P12Modern); err == nil {
		t.Error("EncodePKCS12Bundle with a key that is not its certificate's = nil error")
	}
}

// TestPKCS12BundleSameKey: a key certified twice (a renewal that kept the
// key) is stored once; both certificates are in the file, and NSS links
// both to the key.
func TestPKCS12BundleSameKey(t *testing.T) {
	ca := newTestCA(t)
	key := testKey(t, KeyP256)
	c1, _ := ParseChain(ca.issue(t, key.Public(), "alice@example.org"))
	c2, _ := ParseChain(ca.issue(t, key.Public(), "alice@example.org"))
	data, err := EncodePKCS12Bundle([]P12Entry{{Key: key, Chain: c1}, {Key: key, Chain: c2}}, "pw", P12Modern)
	if err != nil {
		t.Fatal(err)
	}
	k, leaf, cas, err := pkcs12.DecodeChain(data, "pw")
	if err != nil {
		t.Fatalf("DecodeChain (one key) = %v", err)
	}
	if !publicKeysEqual(k.(crypto.Signer).Public(), key.Public()) || !leaf.Equal(c1[0]) {
		t.Error("the key bag is not the key with its first certificate")
	}
	found := map[string]bool{}
	for _, c := range cas {
		found[string(c.Raw)] = true
	}
	if len(cas) != 2 || !found[string(c2[0].Raw)] || !found[string(c1[1].Raw)] {
		t.Errorf("other certificates = %d, want the second leaf and the CA", len(cas))
	}
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("certutil is not installed (libnss3-tools)")
		}
		t.Skip("certutil not installed")
	}
	pk12util, _ := exec.LookPath("pk12util")
	dir := t.TempDir()
	db := "sql:" + dir
	pw := filepath.Join(dir, "pw")
	p12 := filepath.Join(dir, "same.p12")
	os.WriteFile(pw, []byte("pw\n"), 0o600)
	os.WriteFile(p12, data, 0o600)
	for _, args := range [][]string{{certutil, "-N", "-d", db, "--empty-password"}, {pk12util, "-i", p12, "-d", db, "-w", pw, "-K", ""}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", filepath.Base(args[0]), err, out)
		}
	}
	keys, _ := exec.Command(certutil, "-K", "-d", db).CombinedOutput()
	if n := strings.Count(string(keys), "\n<"); n != 1 {
		t.Errorf("certutil -K lists %d keys, want 1:\n%s", n, keys)
	}
	pemOut, _ := exec.Command(certutil, "-L", "-d", db, "-n", "alice@example.org", "-a").CombinedOutput()
	if n := strings.Count(string(pemOut), "BEGIN CERTIFICATE"); n != 2 {
		t.Errorf("NSS holds %d certificates for the key's nickname, want both leaves:\n%s", n, pemOut)
	}
}

// BenchmarkEncodePKCS12 is the PKCS #12 file every issuance and renewal
// writes (P-256 key, leaf and CA, modern profile): its three 2048-iteration
// key derivations are most of an identity's CPU outside TLS and fsync.
func BenchmarkEncodePKCS12(b *testing.B) {
	ca := newTestCA(b)
	key := testKey(b, KeyP256)
	chain, err := ParseChain(ca.issue(b, key.Public(), "alice@example.org"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodePKCS12(key, chain, "bench", P12Modern); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkP12MAC is the MAC keystore computes over a file's contents (the
// RFC 7292 key derivation, 2048 iterations of SHA-256, and one HMAC).
func BenchmarkP12MAC(b *testing.B) {
	salt := []byte("8 bytes!")
	data := bytes.Repeat([]byte{0x30}, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p12MAC(sha256.New, "bench", salt, 2048, data); err != nil {
			b.Fatal(err)
		}
	}
}
