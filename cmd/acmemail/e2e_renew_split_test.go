package main

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
)

// TestRenewSplitPair: renew renews both certificates of an obtain --split
// pair, each with a new key and its own usage, and --p12-profile changes
// the profile of the new PKCS#12 files.
func TestRenewSplitPair(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	if r := runCLI(t, env, obtainArgs(w, "--split")...); r.code != 0 {
		t.Fatalf("obtain --split: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	store := openHome(t, env)
	enc, err := store.Slot(encryptSlot)
	if err != nil {
		t.Fatal(err)
	}
	load := func(st *keystore.Store) *x509.Certificate {
		_, chain, _, _, err := st.LoadCertificate("alice@example.test")
		if err != nil {
			t.Fatal(err)
		}
		return chain[0]
	}
	sign1, enc1 := load(store), load(enc)
	if isLegacyP12(readFile(t, filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test", "cert.p12"))) {
		t.Fatal("obtain wrote a legacy PKCS#12 file by default")
	}

	r := runCLI(t, env, "renew", "--force", "--p12-profile", "legacy", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("renew: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	sign2, enc2 := load(store), load(enc)
	if sign2.Equal(sign1) || enc2.Equal(enc1) {
		t.Fatalf("renew left a certificate of the pair unchanged (signing renewed: %v, encryption renewed: %v)", !sign2.Equal(sign1), !enc2.Equal(enc1))
	}
	if sign2.KeyUsage != x509.KeyUsageDigitalSignature || enc2.KeyUsage != x509.KeyUsageKeyEncipherment {
		t.Errorf("renewed keyUsage: signing %v, encryption %v", sign2.KeyUsage, enc2.KeyUsage)
	}
	if samePub(sign2.PublicKey, enc2.PublicKey) || samePub(enc2.PublicKey, enc1.PublicKey) {
		t.Error("the renewed encryption certificate shares a key with the signing one or with its predecessor")
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "(encryption certificate)") {
		t.Errorf("stdout = %q, want one line per renewed certificate", r.stdout)
	}
	// The new files are in the legacy profile (3DES, SHA-1 MAC).
	for _, dir := range []string{"", "encrypt"} {
		p := filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test", dir, "cert.p12")
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !isLegacyP12(data) {
			t.Errorf("%s is not in the legacy profile", p)
		}
	}
	if gens, err := enc.History("alice@example.test"); err != nil || len(gens) != 2 {
		t.Errorf("encryption history = %d generations, %v; want 2 (the old one archived)", len(gens), err)
	}
	if r := runCLI(t, env, "renew", "--p12-profile", "rc2", "alice@example.test"); r.code != exitUsage {
		t.Errorf("renew --p12-profile rc2: exit %d, want %d", r.code, exitUsage)
	}
}

// isLegacyP12 reports whether a PKCS#12 file uses pbeWithSHAAnd3-KeyTripleDES-CBC
// (OID 1.2.840.113549.1.12.1.3) and no PBES2 (1.2.840.113549.1.5.13).
func isLegacyP12(data []byte) bool {
	tdes := []byte{0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03}
	pbes2 := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d}
	return strings.Contains(string(data), string(tdes)) && !strings.Contains(string(data), string(pbes2))
}

// TestRenewTwoMailboxes: a certificate for two addresses in two mailboxes
// renews: renew repeats the second mailbox (and --issuer-roots) that
// obtain was given.
func TestRenewTwoMailboxes(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	if err := w.AddUser("bob@example.org", "bob-secret-pw"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pwFile, roots := filepath.Join(dir, "bob.pw"), filepath.Join(dir, "issuer.pem")
	if err := os.WriteFile(pwFile, []byte("bob-secret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(roots, w.IssuerRootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, env, obtainArgs(w, "--also", "bob@example.org", "--also-imap", "bob@example.org="+w.IMAPURL,
		"--also-password-file", "bob@example.org="+pwFile, "--issuer-roots", roots)...)
	if r.code != 0 {
		t.Fatalf("obtain: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	_, leaf1 := installed(t, env)
	r = runCLI(t, env, "renew", "--force", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("renew: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	meta, leaf2 := installed(t, env)
	if leaf2.Equal(leaf1) {
		t.Fatal("renew did not replace the certificate")
	}
	if len(leaf2.EmailAddresses) != 2 || meta.Also != "bob@example.org" {
		t.Errorf("renewed certificate names %q (also %q), want both addresses", leaf2.EmailAddresses, meta.Also)
	}
	if p := profileOf(t, meta); len(p.Also) != 1 || !p.Also[0].Own() || p.IssuerRoots != roots {
		t.Errorf("recorded profile = %+v, want bob's mailbox and the issuer roots", p)
	}
	if st := w.Stats(); st.RepliesReceived != 4 || st.CertificatesIssued != 2 {
		t.Errorf("sandbox: %d replies, %d certificates; want 4 and 2", st.RepliesReceived, st.CertificatesIssued)
	}
}
