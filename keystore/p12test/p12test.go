// Package p12test checks PKCS #12 files with the importers users actually
// use: OpenSSL (`openssl pkcs12`) and NSS (`pk12util` into a fresh NSS
// database, as Thunderbird and Firefox keep them). It is for tests only.
//
// The tools are optional on a developer's machine: when one is missing the
// check is skipped with a note, except under CI=true, where a missing tool
// fails the test (.ci/run installs openssl and libnss3-tools).
package p12test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Want is what the PKCS #12 file must hold.
type Want struct {
	Chain     []*x509.Certificate // leaf first; every certificate must be in the file
	PublicKey crypto.PublicKey    // the leaf's key; the file's private key must match it
	// Profile is "modern" (PBES2/AES-256-CBC, SHA-256 MAC) or "legacy"
	// (PBE-SHA1-3DES, SHA-1 MAC); "" skips the algorithm check.
	Profile string
}

// tool returns the path of name, skipping or failing t when it is missing.
func tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (Debian package %s); under CI=true the PKCS#12 import check must run", name, pkg)
	}
	t.Skipf("%s not installed (Debian package %s); skipping the import check", name, pkg)
	return ""
}

// run runs a tool; password, if not empty, is in its environment as
// P12TEST_PASSWORD (never in argv).
func run(t testing.TB, password string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if password != "" {
		cmd.Env = append(os.Environ(), "P12TEST_PASSWORD="+password)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func certsIn(t testing.TB, text string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("parse a certificate the importer printed: %v", err)
		}
		out = append(out, c)
	}
}

func samePublicKey(a, b crypto.PublicKey) bool {
	da, err1 := x509.MarshalPKIXPublicKey(a)
	db, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(da, db)
}

// OpenSSL reads path with `openssl pkcs12`: the MAC and encryption
// algorithms must be the profile's, the leaf (-clcerts) must be
// want.Chain[0], the CA certificates (-cacerts) the rest of the chain, and
// the private key (-nocerts) must belong to want.PublicKey.
func OpenSSL(t testing.TB, path, password string, want Want) {
	t.Helper()
	OpenSSLBundle(t, path, password, []Want{want})
}

// NSS imports path with `pk12util` into a fresh NSS database (what
// Thunderbird uses) and checks with certutil that the certificate with a
// private key (trust u,u,u) is want.Chain[0] (`certutil -L -n NICK -a`),
// that the CA certificates were imported too, and that `certutil -K` lists
// the private key under the leaf's nickname.
func NSS(t testing.TB, path, password string, want Want) {
	t.Helper()
	NSSBundle(t, path, password, []Want{want})
}

func contains(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// leavesAndCAs returns the wanted leaves and the distinct CA certificates.
func leavesAndCAs(wants []Want) (leaves, cas []*x509.Certificate) {
	for _, w := range wants {
		leaves = append(leaves, w.Chain[0])
		for _, c := range w.Chain[1:] {
			if !contains(cas, c) {
				cas = append(cas, c)
			}
		}
	}
	return leaves, cas
}

// OpenSSLBundle is [OpenSSL] for a file holding several keys, each with
// its chain (wants): every key and leaf must be in it, and every CA
// certificate (once).
func OpenSSLBundle(t testing.TB, path, password string, wants []Want) {
	t.Helper()
	openssl := tool(t, "openssl", "openssl")
	pass := []string{"-in", path, "-passin", "env:P12TEST_PASSWORD"}
	leaves, cas := leavesAndCAs(wants)

	info, err := run(t, password, openssl, append([]string{"pkcs12", "-info", "-noout"}, pass...)...)
	if err != nil {
		t.Fatalf("openssl pkcs12 -info %s: %v\n%s", filepath.Base(path), err, info)
	}
	if wants[0].Profile != "" && !strings.Contains(info, "salt length: 8") {
		t.Errorf("openssl pkcs12 -info: the MAC salt is not 8 bytes long (as OpenSSL 3 writes it; macOS is reported to refuse 16):\n%s", info)
	}
	switch wants[0].Profile {
	case "modern":
		for _, s := range []string{"MAC: sha256", "PBES2, PBKDF2, AES-256-CBC"} {
			if !strings.Contains(info, s) {
				t.Errorf("openssl pkcs12 -info: the modern profile should show %q:\n%s", s, info)
			}
		}
	case "legacy":
		for _, s := range []string{"MAC: sha1", "pbeWithSHA1And3-KeyTripleDES-CBC"} {
			if !strings.Contains(info, s) {
				t.Errorf("openssl pkcs12 -info: the legacy profile should show %q:\n%s", s, info)
			}
		}
		if strings.Contains(info, "RC2") {
			t.Errorf("the legacy profile uses RC2, which OpenSSL 3 reads only with -legacy:\n%s", info)
		}
	}

	leafOut, err := run(t, password, openssl, append([]string{"pkcs12", "-nokeys", "-clcerts"}, pass...)...)
	if err != nil {
		t.Fatalf("openssl pkcs12 -clcerts: %v\n%s", err, leafOut)
	}
	got := certsIn(t, leafOut)
	if len(got) != len(leaves) {
		t.Errorf("openssl pkcs12 -clcerts: %d certificates, want %d (the leaves)", len(got), len(leaves))
	}
	for _, l := range leaves {
		if !contains(got, l) {
			t.Errorf("openssl pkcs12 -clcerts: the leaf %q (serial %s) is missing", l.Subject, l.SerialNumber)
		}
	}
	caOut, err := run(t, password, openssl, append([]string{"pkcs12", "-nokeys", "-cacerts"}, pass...)...)
	if err != nil {
		t.Fatalf("openssl pkcs12 -cacerts: %v\n%s", err, caOut)
	}
	gotCAs := certsIn(t, caOut)
	if len(gotCAs) != len(cas) {
		t.Errorf("openssl pkcs12 -cacerts: %d CA certificates, want %d (the full chain)", len(gotCAs), len(cas))
	}
	for _, c := range cas {
		if !contains(gotCAs, c) {
			t.Errorf("openssl pkcs12 -cacerts: %q is missing", c.Subject)
		}
	}
	keyOut, err := run(t, password, openssl, append([]string{"pkcs12", "-nocerts", "-nodes"}, pass...)...)
	if err != nil {
		t.Fatalf("openssl pkcs12 -nocerts: %v", err) // the output holds the keys: not printed
	}
	var keys []crypto.PublicKey
	rest := []byte(keyOut)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			t.Fatalf("parse a key openssl extracted: %v", err)
		}
		if s, ok := k.(crypto.Signer); ok {
			keys = append(keys, s.Public())
		}
	}
	if len(keys) != len(wants) {
		t.Errorf("openssl pkcs12 -nocerts: %d private keys, want %d", len(keys), len(wants))
	}
	for i, w := range wants {
		found := false
		for _, k := range keys {
			found = found || samePublicKey(k, w.PublicKey)
		}
		if !found {
			t.Errorf("openssl pkcs12 -nocerts: the key of entry %d is missing", i+1)
		}
	}
}

var trustRE = regexp.MustCompile(`^(.*\S)\s+([a-zA-Z]*,[a-zA-Z]*,[a-zA-Z]*)$`)

// NSSBundle is [NSS] for a file holding several keys, each with its
// chain (wants): every leaf must be imported with its key (trust u,u,u),
// and every CA certificate.
func NSSBundle(t testing.TB, path, password string, wants []Want) {
	t.Helper()
	pk12util := tool(t, "pk12util", "libnss3-tools")
	certutil := tool(t, "certutil", "libnss3-tools")
	leaves, cas := leavesAndCAs(wants)
	dir := t.TempDir()
	db := "sql:" + filepath.Join(dir, "nssdb")
	if err := os.Mkdir(filepath.Join(dir, "nssdb"), 0o700); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "p12-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "", certutil, "-N", "-d", db, "--empty-password"); err != nil {
		t.Fatalf("certutil -N: %v\n%s", err, out)
	}
	out, err := run(t, "", pk12util, "-i", path, "-d", db, "-w", pwFile, "-K", "")
	if err != nil || !strings.Contains(out, "PKCS12 IMPORT SUCCESSFUL") {
		t.Fatalf("pk12util -i %s: %v\n%s", filepath.Base(path), err, out)
	}
	list, err := run(t, "", certutil, "-L", "-d", db)
	if err != nil {
		t.Fatalf("certutil -L: %v\n%s", err, list)
	}
	var userNicks, caNicks []string
	for _, line := range strings.Split(list, "\n") {
		m := trustRE.FindStringSubmatch(strings.TrimRight(line, " \r"))
		if m == nil || strings.HasPrefix(m[1], "Certificate Nickname") {
			continue
		}
		if m[2] == "u,u,u" {
			if !slices.Contains(userNicks, m[1]) {
				userNicks = append(userNicks, m[1])
			}
		} else {
			caNicks = append(caNicks, m[1])
		}
	}
	if len(userNicks) == 0 {
		t.Fatalf("certutil -L: no certificate with a private key (trust u,u,u) after the import:\n%s", list)
	}
	if len(caNicks) != len(cas) {
		t.Errorf("certutil -L: %d CA certificates imported (%q), want %d", len(caNicks), caNicks, len(cas))
	}
	var imported []*x509.Certificate
	for _, nick := range userNicks {
		pemOut, err := run(t, "", certutil, "-L", "-d", db, "-n", nick, "-a")
		if err != nil {
			t.Fatalf("certutil -L -n %q -a: %v\n%s", nick, err, pemOut)
		}
		imported = append(imported, certsIn(t, pemOut)...)
	}
	for _, l := range leaves {
		if !contains(imported, l) {
			t.Errorf("certutil -L -n NICK -a: the leaf %q (serial %s) was not imported as a certificate with a key", l.Subject, l.SerialNumber)
		}
	}
	if len(imported) != len(leaves) {
		t.Errorf("certutil -L: %d certificates with a key, want %d", len(imported), len(leaves))
	}
	keys, err := run(t, "", certutil, "-K", "-d", db)
	if err != nil {
		t.Fatalf("certutil -K: %v\n%s", err, keys)
	}
	var keyLines []string
	for _, l := range strings.Split(keys, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "<") {
			keyLines = append(keyLines, strings.Join(strings.Fields(l), " "))
		}
	}
	if len(keyLines) != len(wants) {
		t.Errorf("certutil -K lists %d private keys, want %d:\n%s", len(keyLines), len(wants), keys)
	}
	for _, nick := range userNicks {
		if !strings.Contains(keys, nick) {
			t.Errorf("certutil -K lists no private key for %q:\n%s", nick, keys)
		}
	}
	t.Logf("NSS imported %s: %d certificates with keys %q, keys %q, CA certificates %q", filepath.Base(path), len(imported), userNicks, keyLines, caNicks)
}
