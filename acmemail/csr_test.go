package acmemail

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// csrTestKeys are generated once per test binary (RSA-2048 is slow under -race).
var csrTestKeys = sync.OnceValue(func() map[string]crypto.Signer {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return map[string]crypto.Signer{"rsa2048": rsaKey, "p256": p256, "p384": p384, "ed25519": ed}
})

// csrTestKeyUsageBits decodes a keyUsage extension value into the list of
// bit numbers set (RFC 5280 §4.2.1.3: 0 digitalSignature, 2 keyEncipherment,
// 4 keyAgreement), independently of x509.
func csrTestKeyUsageBits(t *testing.T, der []byte) []int {
	t.Helper()
	var bs asn1.BitString
	if rest, err := asn1.Unmarshal(der, &bs); err != nil || len(rest) != 0 {
		t.Fatalf("keyUsage does not decode as a BIT STRING: %v", err)
	}
	if bs.BitLength > 0 && bs.At(bs.BitLength-1) != 1 {
		t.Errorf("keyUsage BIT STRING has trailing zero bits (not DER)")
	}
	var set []int
	for i := 0; i < bs.BitLength; i++ {
		if bs.At(i) == 1 {
			set = append(set, i)
		}
	}
	return set
}

func TestNewCSR(t *testing.T) {
	keys := csrTestKeys()
	tests := []struct {
		key     string
		usage   Usage
		bits    []int  // expected keyUsage bits
		errText string // expected error instead
	}{
		{"rsa2048", UsageSign, []int{0}, ""},
		{"rsa2048", UsageEncrypt, []int{2}, ""},
		{"rsa2048", UsageBoth, []int{0, 2}, ""},
		{"p256", UsageSign, []int{0}, ""},
		{"p256", UsageEncrypt, []int{4}, ""},
		{"p256", UsageBoth, []int{0, 4}, ""},
		{"p384", UsageSign, []int{0}, ""},
		{"p384", UsageEncrypt, []int{4}, ""},
		{"p384", UsageBoth, []int{0, 4}, ""},
		{"ed25519", UsageSign, []int{0}, ""},
		{"ed25519", UsageEncrypt, nil, "Ed25519 key can only sign"},
		{"ed25519", UsageBoth, nil, "Ed25519 key can only sign"},
	}
	emails := []string{"alice@example.com", "Alice.Smith+smime@Mail.Example.ORG"}
	for _, tt := range tests {
		t.Run(tt.key+"/"+tt.usage.String(), func(t *testing.T) {
			der, err := NewCSR(keys[tt.key], emails, tt.usage)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("NewCSR error = %v, want one containing %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewCSR: %v", err)
			}
			csr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatalf("ParseCertificateRequest: %v", err)
			}
			if err := csr.CheckSignature(); err != nil {
				t.Errorf("CheckSignature: %v", err)
			}
			if !bytes.Equal(csr.RawSubject, []byte{0x30, 0x00}) {
				t.Errorf("subject = %x, want an empty SEQUENCE (3000)", csr.RawSubject)
			}
			if !reflect.DeepEqual(csr.EmailAddresses, emails) {
				t.Errorf("EmailAddresses = %q, want %q", csr.EmailAddresses, emails)
			}
			if len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.URIs) != 0 {
				t.Errorf("unexpected SANs: %v %v %v", csr.DNSNames, csr.IPAddresses, csr.URIs)
			}
			var oids []string
			for _, e := range csr.Extensions {
				oids = append(oids, e.Id.String())
				switch e.Id.String() {
				case "2.5.29.15":
					if !e.Critical {
						t.Error("keyUsage is not critical")
					}
					if got := csrTestKeyUsageBits(t, e.Value); !reflect.DeepEqual(got, tt.bits) {
						t.Errorf("keyUsage bits = %v, want %v", got, tt.bits)
					}
				case "2.5.29.17":
					if e.Critical {
						t.Error("subjectAltName is critical, want non-critical")
					}
					var names []asn1.RawValue
					if rest, err := asn1.Unmarshal(e.Value, &names); err != nil || len(rest) != 0 {
						t.Fatalf("subjectAltName does not decode: %v", err)
					}
					for i, n := range names {
						if n.Class != asn1.ClassContextSpecific || n.Tag != 1 || string(n.Bytes) != emails[i] {
							t.Errorf("GeneralName %d = class %d tag %d %q, want rfc822Name [1] %q", i, n.Class, n.Tag, n.Bytes, emails[i])
						}
					}
				}
			}
			if want := []string{"2.5.29.17", "2.5.29.15"}; !reflect.DeepEqual(oids, want) {
				t.Errorf("extensions = %v, want exactly %v (subjectAltName, keyUsage)", oids, want)
			}
		})
	}
}

func TestNewCSRErrors(t *testing.T) {
	key := csrTestKeys()["p256"]
	tests := []struct {
		name    string
		key     crypto.Signer
		emails  []string
		usage   Usage
		errText string
	}{
		{"nil key", nil, []string{"a@example.com"}, UsageBoth, "no key"},
		{"no emails", key, nil, UsageBoth, "no email address"},
		{"invalid IDN", key, []string{"juergen@bü_cher.example"}, UsageBoth, "not a valid internationalized domain name"},
		{"space in local part", key, []string{"jür gen@example.com"}, UsageBoth, "dot-atom"},
		{"invalid UTF-8", key, []string{"j\xffrgen@example.com"}, UsageBoth, "not valid UTF-8"},
		{"IDN duplicate", key, []string{"a@bücher.example", "a@xn--bcher-kva.example"}, UsageBoth, "listed twice"},
		{"duplicate", key, []string{"a@example.com", "a@EXAMPLE.com"}, UsageBoth, "listed twice"},
		{"no @", key, []string{"example.com"}, UsageBoth, "has no @"},
		{"display name", key, []string{"A <a@example.com>"}, UsageBoth, "dot-atom"},
		{"wildcard domain", key, []string{"a@*.example.com"}, UsageBoth, "not a host name"},
		{"unknown usage", key, []string{"a@example.com"}, Usage(9), "no key usage"},
	}
	for _, tt := range tests {
		der, err := NewCSR(tt.key, tt.emails, tt.usage)
		if err == nil {
			t.Errorf("%s: NewCSR = %d bytes, want an error", tt.name, len(der))
			continue
		}
		if !strings.Contains(err.Error(), tt.errText) {
			t.Errorf("%s: error = %q, want it to contain %q", tt.name, err, tt.errText)
		}
	}
}
