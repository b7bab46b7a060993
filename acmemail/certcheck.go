package acmemail

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// CheckCertificate checks what the CA returned before it is saved: the
// leaf's public key is pub, its email SANs are exactly emails, its EKU
// includes emailProtection, and its chain links up. A keyUsage that differs
// from what was asked is a warning, not an error.
func CheckCertificate(chain []*x509.Certificate, pub crypto.PublicKey, emails []string, usage Usage) (warnings []string, err error) {
	if len(chain) == 0 {
		return nil, errors.New("the chain is empty")
	}
	leaf := chain[0]
	want, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal our public key: %w", err)
	}
	got, err := x509.MarshalPKIXPublicKey(leaf.PublicKey)
	if err != nil || !bytes.Equal(got, want) {
		return nil, errors.New("the certificate is for a key that is not ours")
	}
	var gotSAN, wantSAN []string
	for _, e := range leaf.EmailAddresses {
		gotSAN = append(gotSAN, strings.ToLower(e))
	}
	for _, e := range emails {
		wantSAN = append(wantSAN, strings.ToLower(e))
	}
	slices.Sort(gotSAN)
	slices.Sort(wantSAN)
	if !slices.Equal(slices.Compact(gotSAN), slices.Compact(wantSAN)) {
		return nil, fmt.Errorf("the certificate's email addresses (%s) are not the requested ones (%s)", strings.Join(gotSAN, ", "), strings.Join(wantSAN, ", "))
	}
	if len(leaf.DNSNames) > 0 || len(leaf.IPAddresses) > 0 || len(leaf.URIs) > 0 {
		return nil, errors.New("the certificate names more than the requested email addresses (DNS, IP or URI names)")
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageEmailProtection) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return nil, errors.New("the certificate is not for email protection (no emailProtection extended key usage)")
	}
	if ku, ok := KeyUsageFor(pub, usage); ok && leaf.KeyUsage != 0 && leaf.KeyUsage != ku {
		warnings = append(warnings, fmt.Sprintf("the CA changed the key usage (asked %s, got %s)", keyUsageString(ku), keyUsageString(leaf.KeyUsage)))
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, fmt.Errorf("certificate %d of the chain is not signed by the next one: %w", i+1, err)
		}
	}
	return warnings, nil
}

func keyUsageString(ku x509.KeyUsage) string {
	names := []struct {
		bit  x509.KeyUsage
		name string
	}{
		{x509.KeyUsageDigitalSignature, "digitalSignature"},
		{x509.KeyUsageContentCommitment, "nonRepudiation"},
		{x509.KeyUsageKeyEncipherment, "keyEncipherment"},
		{x509.KeyUsageDataEncipherment, "dataEncipherment"},
		{x509.KeyUsageKeyAgreement, "keyAgreement"},
		{x509.KeyUsageCertSign, "keyCertSign"},
		{x509.KeyUsageCRLSign, "cRLSign"},
	}
	var out []string
	for _, n := range names {
		if ku&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}
