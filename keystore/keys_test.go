package keystore

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func TestParseKeyType(t *testing.T) {
	tests := []struct {
		in      string
		want    KeyType
		wantErr bool
	}{
		{"p256", KeyP256, false},
		{"P384", KeyP384, false},
		{" rsa2048 ", KeyRSA2048, false},
		{"rsa3072", KeyRSA3072, false},
		{"RSA4096", KeyRSA4096, false},
		{"ed25519", KeyEd25519, false},
		{"", "", true},
		{"rsa1024", "", true},
		{"ec256", "", true},
	}
	for _, tt := range tests {
		got, err := ParseKeyType(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseKeyType(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestKeyRoundTrip(t *testing.T) {
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			key := testKey(t, kt)
			if got, err := KeyTypeOf(key.Public()); err != nil || got != kt {
				t.Fatalf("KeyTypeOf(generated %s) = %q, %v; want %q", kt, got, err, kt)
			}
			data, err := MarshalPrivateKey(key)
			if err != nil {
				t.Fatalf("MarshalPrivateKey = %v", err)
			}
			if block, _ := pem.Decode(data); block == nil || block.Type != "PRIVATE KEY" {
				t.Fatalf("MarshalPrivateKey wrote %q, want a PRIVATE KEY block", data)
			}
			back, err := ParsePrivateKey(data)
			if err != nil {
				t.Fatalf("ParsePrivateKey = %v", err)
			}
			if !publicKeysEqual(back.Public(), key.Public()) {
				t.Errorf("ParsePrivateKey(MarshalPrivateKey(k)) is another key")
			}
			if got := kt.CertificateKey(); got != (kt != KeyEd25519) {
				t.Errorf("%s.CertificateKey() = %v", kt, got)
			}
		})
	}
}

func TestParsePrivateKeyLegacyFormats(t *testing.T) {
	ec := testKey(t, KeyP256).(*ecdsa.PrivateKey)
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	rk := testKey(t, KeyRSA2048).(*rsa.PrivateKey)
	tests := []struct {
		name  string
		block *pem.Block
		want  KeyType
	}{
		{"sec1", &pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}, KeyP256},
		{"pkcs1", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}, KeyRSA2048},
	}
	for _, tt := range tests {
		k, err := ParsePrivateKey(pem.EncodeToMemory(tt.block))
		if err != nil {
			t.Errorf("%s: ParsePrivateKey = %v", tt.name, err)
			continue
		}
		if got, _ := KeyTypeOf(k.Public()); got != tt.want {
			t.Errorf("%s: key type %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestParsePrivateKeyErrors(t *testing.T) {
	secret := "c2VjcmV0LWtleS1tYXRlcmlhbA=="
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"not pem", "hello"},
		{"certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
		{"encrypted", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"},
		{"garbage pkcs8", "-----BEGIN PRIVATE KEY-----\n" + secret + "\n-----END PRIVATE KEY-----\n"},
	}
	for _, tt := range tests {
		_, err := ParsePrivateKey([]byte(tt.in))
		if err == nil {
			t.Errorf("%s: ParsePrivateKey = nil error, want error", tt.name)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "c2Vj") {
			t.Errorf("%s: error %q contains key material", tt.name, err)
		}
	}
}

func TestGenerateKeyUnknown(t *testing.T) {
	if _, err := GenerateKey("dsa"); err == nil {
		t.Error(`GenerateKey("dsa") = nil error, want error`)
	}
}
