package keystore

import (
	"context"
	"crypto"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

func TestParseP12Profile(t *testing.T) {
	tests := []struct {
		in      string
		want    P12Profile
		wantErr bool
	}{
		{"modern", P12Modern, false},
		{"Legacy", P12Legacy, false},
		{"", "", true},
		{"rc2", "", true},
	}
	for _, tt := range tests {
		got, err := ParseP12Profile(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseP12Profile(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestEncodePKCS12(t *testing.T) {
	ca := newTestCA(t)
	for _, kt := range []KeyType{KeyP256, KeyP384, KeyRSA2048} {
		key := testKey(t, kt)
		chain, err := ParseChain(ca.issue(t, key.Public(), "alice@example.org"))
		if err != nil {
			t.Fatal(err)
		}
		for _, profile := range []P12Profile{P12Modern, P12Legacy} {
			t.Run(string(kt)+"/"+string(profile), func(t *testing.T) {
				data, err := EncodePKCS12(key, chain, "test", profile)
				if err != nil {
					t.Fatalf("EncodePKCS12 = %v", err)
				}
				gotKey, leaf, cas, err := pkcs12.DecodeChain(data, "test")
				if err != nil {
					t.Fatalf("DecodeChain = %v", err)
				}
				if !publicKeysEqual(key.Public(), gotKey.(crypto.Signer).Public()) {
					t.Error("decoded key differs")
				}
				if !leaf.Equal(chain[0]) || len(cas) != 1 || !cas[0].Equal(chain[1]) {
					t.Errorf("decoded chain: leaf ok %v, %d CA certificates; want the leaf and 1 CA", leaf.Equal(chain[0]), len(cas))
				}
				if _, _, _, err := pkcs12.DecodeChain(data, "wrong"); err == nil {
					t.Error("DecodeChain with a wrong password = nil error")
				}
			})
		}
	}

	key := testKey(t, KeyP256)
	chain, _ := ParseChain(ca.issue(t, key.Public(), "alice@example.org"))
	errTests := []struct {
		name    string
		pw      string
		profile P12Profile
		key     crypto.Signer
		chain   bool
	}{
		{"empty password", "", P12Modern, key, true},
		{"unknown profile", "pw", "rc2", key, true},
		{"no chain", "pw", P12Modern, key, false},
		{"wrong key", "pw", P12Modern, testKey(t, KeyP384), true},
	}
	for _, tt := range errTests {
		c := chain
		if !tt.chain {
			c = nil
		}
		if _, err := EncodePKCS12(tt.key, c, tt.pw, tt.profile); err == nil {
			t.Errorf("%s: EncodePKCS12 = nil error, want error", tt.name)
		}
	}
}

// TestPKCS12OpenSSL checks that openssl(1) reads both profiles, if it is
// installed. OpenSSL 3 reads the legacy profile (PBE-SHA1-3DES, as made by
// its own -descert) with its default provider; only RC2-encrypted files
// (pkcs12.LegacyRC2, which we do not use) need -legacy. In case a build
// lacks 3DES in the default provider, the test retries with -legacy and
// says so.
func TestPKCS12OpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not found on PATH")
	}
	ca := newTestCA(t)
	key := testKey(t, KeyP256)
	chainPEM := ca.issue(t, key.Public(), "alice@example.org")
	chain, _ := ParseChain(chainPEM)
	for _, profile := range []P12Profile{P12Modern, P12Legacy} {
		t.Run(string(profile), func(t *testing.T) {
			data, err := EncodePKCS12(key, chain, "test", profile)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "cert.p12")
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			run := func(extra ...string) (string, error) {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				args := append([]string{"pkcs12", "-info", "-nokeys", "-in", p, "-passin", "pass:test"}, extra...)
				cmd := exec.CommandContext(ctx, openssl, args...)
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			out, err := run()
			if err != nil && profile == P12Legacy {
				t.Logf("openssl pkcs12 without -legacy: %v\n%s", err, out)
				out, err = run("-legacy")
				if err == nil {
					t.Logf("this openssl needs -legacy to read the legacy profile")
				}
			}
			if err != nil {
				t.Fatalf("openssl pkcs12 -info: %v\n%s", err, out)
			}
			if n := strings.Count(out, "-----BEGIN CERTIFICATE-----"); n != len(chain) {
				t.Errorf("openssl printed %d certificates, want %d\n%s", n, len(chain), out)
			}
			for _, c := range chain {
				if !strings.Contains(out, strings.TrimSpace(string(encodeChain([]*x509.Certificate{c})))) {
					t.Errorf("openssl output lacks certificate %q", c.Subject)
				}
			}
		})
	}
}
