package acmemail

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrCertificateRefused is matched (errors.Is) by every error of
// [CertificateCheck.Check] that is about the certificate itself: the CA
// issued something other than what was asked for.
var ErrCertificateRefused = errors.New("the CA's certificate was refused")

// ErrKeyUsageRefused is matched (errors.Is) by the refusal of a
// certificate whose keyUsage does not allow what it was requested for: a
// signing certificate without digitalSignature, an encryption certificate
// without keyEncipherment (RSA) or keyAgreement (EC), or one for both
// that allows neither.
var ErrKeyUsageRefused = errors.New("the certificate's key usage does not allow what it was requested for")

type keyUsageError struct{ err error }

func (e keyUsageError) Error() string        { return e.err.Error() }
func (e keyUsageError) Unwrap() error        { return e.err }
func (e keyUsageError) Is(target error) bool { return target == ErrKeyUsageRefused }

type refusedError struct{ err error }

func (e refusedError) Error() string        { return e.err.Error() }
func (e refusedError) Unwrap() error        { return e.err }
func (e refusedError) Is(target error) bool { return target == ErrCertificateRefused }

// CertificateCheck describes what a certificate returned by the CA must
// be; see [CertificateCheck.Check].
type CertificateCheck struct {
	// PublicKey is the key the CSR was made for.
	PublicKey crypto.PublicKey
	// Emails are the requested addresses (the order's identifiers).
	Emails []string
	// Usage is what was asked for; a different keyUsage is a warning.
	Usage Usage
	// Roots, if set, are the CA's roots: the chain must verify to one of
	// them for emailProtection. Without them the chain is only checked
	// to link up (each certificate signed by the next).
	Roots *x509.CertPool
	// Now is the time the chain is verified at. Zero: the current time.
	Now time.Time
}

// CheckCertificate checks what the CA returned before it is saved, with
// [CertificateCheck.Check] and no known roots.
func CheckCertificate(chain []*x509.Certificate, pub crypto.PublicKey, emails []string, usage Usage) (warnings []string, err error) {
	return CertificateCheck{PublicKey: pub, Emails: emails, Usage: usage}.Check(chain)
}

// Check checks a chain (leaf first) the CA returned before it is saved:
// the leaf's public key is ours; its subjectAltName holds exactly the
// requested addresses (rfc822Name or SmtpUTF8Mailbox, compared with
// domains in A-labels) and nothing else; its EKU includes emailProtection;
// and the chain links up, or verifies to Roots when they are set. A
// keyUsage that differs from what Usage asks for is returned as a warning,
// not an error: RFC 8823 lets the CA decide.
func (cc CertificateCheck) Check(chain []*x509.Certificate) (warnings []string, err error) {
	warnings, err = cc.check(chain)
	if err != nil {
		return nil, refusedError{err}
	}
	return warnings, nil
}

func (cc CertificateCheck) check(chain []*x509.Certificate) (warnings []string, err error) {
	if len(chain) == 0 {
		return nil, errors.New("the chain is empty")
	}
	leaf := chain[0]
	if cc.PublicKey == nil {
		return nil, errors.New("no public key to compare the certificate with")
	}
	want, err := x509.MarshalPKIXPublicKey(cc.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("marshal our public key: %w", err)
	}
	got, err := x509.MarshalPKIXPublicKey(leaf.PublicKey)
	if err != nil || !bytes.Equal(got, want) {
		return nil, errors.New("the certificate is for a public key that is not ours (not the key of the CSR)")
	}
	sans, err := CertificateEmails(leaf)
	if err != nil {
		return nil, fmt.Errorf("the certificate's subjectAltName cannot be read: %w", err)
	}
	var gotSAN, wantSAN []string
	for _, e := range sans.Emails {
		gotSAN = append(gotSAN, sanCompareKey(e))
	}
	for _, e := range cc.Emails {
		wantSAN = append(wantSAN, sanCompareKey(addrKey(e)))
	}
	slices.Sort(gotSAN)
	slices.Sort(wantSAN)
	if !slices.Equal(slices.Compact(gotSAN), slices.Compact(wantSAN)) {
		got := strings.Join(sans.Emails, ", ")
		if got == "" {
			got = "none"
		}
		return nil, fmt.Errorf("the certificate's email addresses (%s) are not the requested ones (%s)", got, strings.Join(cc.Emails, ", "))
	}
	if len(sans.Others) > 0 {
		return nil, fmt.Errorf("the certificate names more than the requested email addresses (%s)", strings.Join(sans.Others, ", "))
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageEmailProtection) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return nil, errors.New("the certificate is not for email protection (its extended key usage lacks emailProtection)")
	}
	if ku, ok := KeyUsageFor(cc.PublicKey, cc.Usage); ok && leaf.KeyUsage != ku {
		// A certificate that cannot do its job is refused; one that can,
		// with other bits than asked, is accepted with a warning (RFC 8823
		// lets the CA decide). No keyUsage at all allows every use.
		if missing := ku &^ leaf.KeyUsage; leaf.KeyUsage != 0 && missing != 0 && (cc.Usage != UsageBoth || missing == ku) {
			return nil, keyUsageError{fmt.Errorf("the certificate cannot be used for %s: the CA issued it with keyUsage %s, without %s (asked %s)",
				usageJob(cc.Usage), keyUsageString(leaf.KeyUsage), keyUsageString(missing), keyUsageString(ku))}
		}
		if leaf.KeyUsage == 0 {
			warnings = append(warnings, fmt.Sprintf("the CA issued the certificate without a key usage (asked %s); mail clients will use it for signing and encryption", keyUsageString(ku)))
		} else {
			warnings = append(warnings, fmt.Sprintf("the CA changed the key usage (asked %s, got %s)", keyUsageString(ku), keyUsageString(leaf.KeyUsage)))
		}
	}
	if cc.Roots != nil {
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		now := cc.Now
		if now.IsZero() {
			now = time.Now()
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: cc.Roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
			return nil, fmt.Errorf("the certificate chain does not verify to the CA's root: %w", err)
		}
		return warnings, nil
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, fmt.Errorf("certificate %d of the chain is not signed by the next one: %w", i+1, err)
		}
	}
	return warnings, nil
}

// usageJob is what a certificate requested for u is used for.
func usageJob(u Usage) string {
	switch u {
	case UsageSign:
		return "signing"
	case UsageEncrypt:
		return "encryption"
	}
	return "signing or encryption"
}

// sanCompareKey is how a normalized address from the certificate is
// compared with a requested one: without regard to case (CAs differ in
// whether they keep the case of the local part).
func sanCompareKey(addr string) string { return strings.ToLower(addr) }

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
