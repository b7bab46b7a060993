package acmemail

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
)

// smimeTestPKI is a root CA and an intermediate CA made for one test.
type smimeTestPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
	roots             *x509.CertPool
}

func smimeTestCert(t testing.TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func smimeTestKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func newSMIMETestPKI(t testing.TB, name string) *smimeTestPKI {
	t.Helper()
	p := &smimeTestPKI{rootKey: smimeTestKey(t), interKey: smimeTestKey(t)}
	now := time.Now()
	p.root = smimeTestCert(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: name + " Root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}, nil, &p.rootKey.PublicKey, p.rootKey)
	p.inter = smimeTestCert(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: name + " Intermediate"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}, p.root, &p.interKey.PublicKey, p.rootKey)
	p.roots = x509.NewCertPool()
	p.roots.AddCert(p.root)
	return p
}

// leaf issues a signing certificate for emails from the intermediate.
func (p *smimeTestPKI) leaf(t testing.TB, eku x509.ExtKeyUsage, emails ...string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := smimeTestKey(t)
	now := time.Now()
	cert := smimeTestCert(t, &x509.Certificate{
		Subject:        pkix.Name{CommonName: "ca.test challenge signer"},
		NotBefore:      now.Add(-time.Hour),
		NotAfter:       now.Add(12 * time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{eku},
		EmailAddresses: emails,
	}, p.inter, &key.PublicKey, p.interKey)
	return cert, key
}

// sign makes PKCS#7 signed-data over content (detached or not), carrying
// the leaf and the intermediate.
func (p *smimeTestPKI) sign(t testing.TB, content []byte, leaf *x509.Certificate, key *ecdsa.PrivateKey, detached bool) []byte {
	t.Helper()
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		t.Fatal(err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(leaf, key, []*x509.Certificate{p.inter}, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	if detached {
		sd.Detach()
	}
	der, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// smimeTestBase64 encodes b in 76-character CRLF lines.
func smimeTestBase64(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return out.String() + s + "\r\n"
}

// smimeTestOuter is the unprotected outer header of a signed challenge.
func smimeTestOuter(from string) []string {
	return []string{
		"Auto-Submitted: auto-generated; type=acme",
		"Date: Sat, 05 Dec 2020 10:08:55 +0100",
		"Message-ID: <smime.1@ca.test>",
		"From: " + from,
		"To: " + authTestUser,
		"Subject: ACME: " + authTestToken,
		"MIME-Version: 1.0",
	}
}

// smimeTestInjected is a signed part carrying the protected header fields
// in its own header block.
func smimeTestInjected(from string) []byte {
	return []byte("Content-Type: text/plain; charset=us-ascii\r\n" +
		"From: " + from + "\r\n" +
		"To: " + authTestUser + "\r\n" +
		"Subject: ACME: " + authTestToken + "\r\n" +
		"Message-ID: <smime.1@ca.test>\r\n" +
		"\r\n" + authTestBody)
}

// smimeTestWrapped is a signed message/rfc822 part wrapping the message.
func smimeTestWrapped(from string) []byte {
	return []byte("Content-Type: message/rfc822\r\n\r\n" + string(authTestMessage(authTestFields(from), authTestBody)))
}

// smimeTestMultipart builds a multipart/signed challenge.
func smimeTestMultipart(from string, content, der []byte) []byte {
	fields := append(smimeTestOuter(from),
		`Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;`,
		"\tboundary=\"----=_sig_42\"")
	body := "This is an S/MIME signed message.\r\n" +
		"\r\n------=_sig_42\r\n" + string(content) +
		"\r\n------=_sig_42\r\n" +
		"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=smime.p7s\r\n\r\n" +
		smimeTestBase64(der) +
		"\r\n------=_sig_42--\r\n"
	return authTestMessage(fields, body)
}

// smimeTestOpaque builds an application/pkcs7-mime signed-data challenge.
func smimeTestOpaque(from string, der []byte) []byte {
	fields := append(smimeTestOuter(from),
		`Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m`,
		"Content-Transfer-Encoding: base64",
		"Content-Disposition: attachment; filename=smime.p7m")
	return authTestMessage(fields, smimeTestBase64(der))
}

func TestVerifySMIME(t *testing.T) {
	pki := newSMIMETestPKI(t, "Test")
	other := newSMIMETestPKI(t, "Other")
	leaf, key := pki.leaf(t, x509.ExtKeyUsageEmailProtection, authTestFrom)
	injected := smimeTestInjected(authTestFrom)
	wrapped := smimeTestWrapped(authTestFrom)
	detached := pki.sign(t, injected, leaf, key, true)
	valid := smimeTestMultipart(authTestFrom, injected, detached)

	wrongSAN, wrongSANKey := pki.leaf(t, x509.ExtKeyUsageEmailProtection, "other@ca.test")
	noSAN, noSANKey := pki.leaf(t, x509.ExtKeyUsageEmailProtection)
	serverAuth, serverAuthKey := pki.leaf(t, x509.ExtKeyUsageServerAuth, authTestFrom)
	untrusted, untrustedKey := other.leaf(t, x509.ExtKeyUsageEmailProtection, authTestFrom)
	plain := []byte("Content-Type: text/plain\r\n\r\n" + authTestBody)
	partial := []byte("Content-Type: text/plain\r\nFrom: " + authTestFrom + "\r\nSubject: ACME: " + authTestToken + "\r\n\r\n" + authTestBody)
	innerFrom := smimeTestInjected("acme@ca.test")

	k := newAuthTestKeys(t, "ca.test")
	tests := []struct {
		name        string
		raw         []byte
		noRoots     bool
		now         time.Time
		wantErr     string
		wantMethod  string
		wantWarn    string
		wantHeaders []byte
		wantIs      error // errors.Is target, if set
		untrusted   bool  // the error wraps an *UntrustedSignerError
	}{
		{name: "multipart/signed with injected headers", raw: valid, wantMethod: "smime", wantHeaders: injected},
		{name: "multipart/signed with LF line endings", raw: bytes.ReplaceAll(valid, []byte("\r\n"), []byte("\n")), wantMethod: "smime", wantHeaders: injected},
		{
			name:        "multipart/signed wrapping message/rfc822",
			raw:         smimeTestMultipart(authTestFrom, wrapped, pki.sign(t, wrapped, leaf, key, true)),
			wantMethod:  "smime",
			wantHeaders: authTestMessage(authTestFields(authTestFrom), authTestBody),
		},
		{
			name:        "pkcs7-mime wrapping message/rfc822",
			raw:         smimeTestOpaque(authTestFrom, pki.sign(t, wrapped, leaf, key, false)),
			wantMethod:  "smime",
			wantHeaders: authTestMessage(authTestFields(authTestFrom), authTestBody),
		},
		{name: "pkcs7-mime with injected headers", raw: smimeTestOpaque(authTestFrom, pki.sign(t, injected, leaf, key, false)), wantMethod: "smime", wantHeaders: injected},
		{name: "no trust anchors", raw: valid, noRoots: true, wantErr: "no S/MIME trust anchors are configured (MailVerifier.SMIMERoots), so its signature cannot be checked; no DKIM signature", wantIs: ErrNoSMIMERoots},
		{name: "signer SAN is not From", raw: smimeTestMultipart(authTestFrom, injected, pki.sign(t, injected, wrongSAN, wrongSANKey, true)), wantErr: "the S/MIME signer's certificate is for other@ca.test, not for the From address " + authTestFrom},
		{name: "signer without SAN", raw: smimeTestMultipart(authTestFrom, injected, pki.sign(t, injected, noSAN, noSANKey, true)), wantErr: "has no email address (rfc822Name)"},
		{name: "untrusted root", raw: smimeTestMultipart(authTestFrom, injected, other.sign(t, injected, untrusted, untrustedKey, true)), wantErr: "the S/MIME signer's certificate (CN=ca.test challenge signer) is not issued by a trusted root (MailVerifier.SMIMERoots); no DKIM signature", untrusted: true},
		{name: "not for email protection", raw: smimeTestMultipart(authTestFrom, injected, pki.sign(t, injected, serverAuth, serverAuthKey, true)), wantErr: "is not valid for email protection"},
		{name: "expired", raw: valid, now: time.Now().Add(48 * time.Hour), wantErr: "is expired or not yet valid"},
		{name: "no header protection", raw: smimeTestMultipart(authTestFrom, plain, pki.sign(t, plain, leaf, key, true)), wantErr: "S/MIME without header protection: the signed part does not carry From, To and Subject"},
		{name: "partial header protection", raw: smimeTestMultipart(authTestFrom, partial, pki.sign(t, partial, leaf, key, true)), wantErr: "S/MIME without header protection: the signed part does not carry To"},
		{name: "protected From differs", raw: smimeTestMultipart(authTestFrom, innerFrom, pki.sign(t, innerFrom, leaf, key, true)), wantErr: "the S/MIME signed part: its From address acme@ca.test is not " + authTestFrom},
		{name: "tampered content", raw: authTestReplace(t, valid, "To: "+authTestUser+"\r\nSubject: ACME: "+authTestToken+"\r\nMessage-ID", "To: mallory@example.org\r\nSubject: ACME: "+authTestToken+"\r\nMessage-ID"), wantErr: "S/MIME signature does not verify: digest mismatch"},
		{name: "signature of other content", raw: smimeTestMultipart(authTestFrom, injected, pki.sign(t, plain, leaf, key, true)), wantErr: "digest mismatch"},
		{name: "enveloped", raw: authTestReplace(t, smimeTestOpaque(authTestFrom, pki.sign(t, injected, leaf, key, false)), "signed-data", "enveloped-data"), wantErr: "smime-type=enveloped-data, not signed-data"},
		{name: "not detached", raw: smimeTestMultipart(authTestFrom, injected, pki.sign(t, injected, leaf, key, false)), wantErr: "the signature is not detached"},
		{name: "garbage signature", raw: smimeTestMultipart(authTestFrom, injected, []byte("not DER")), wantErr: "S/MIME signature cannot be parsed"},
		{name: "one part", raw: authTestReplace(t, valid, "\r\n------=_sig_42\r\nContent-Type: application/pkcs7", "\r\nContent-Type: application/pkcs7"), wantErr: "has 1 body part(s), want 2"},
		{name: "no closing boundary", raw: authTestReplace(t, valid, "------=_sig_42--", "------=_sig_43--"), wantErr: "no closing boundary"},
		{
			name:       "valid S/MIME, broken DKIM",
			raw:        k.sign(t, valid, "evil.test", nil),
			wantMethod: "smime",
			wantWarn:   "its DKIM signature is not acceptable (DKIM signature by evil.test, not by the From domain ca.test); the S/MIME signature is",
		},
		{
			name:       "valid DKIM, untrusted S/MIME",
			raw:        k.sign(t, smimeTestMultipart(authTestFrom, injected, other.sign(t, injected, untrusted, untrustedKey, true)), "ca.test", nil),
			wantMethod: "dkim",
		},
		{
			name:      "both invalid",
			raw:       k.sign(t, smimeTestMultipart(authTestFrom, injected, other.sign(t, injected, untrusted, untrustedKey, true)), "evil.test", nil),
			wantErr:   "is not issued by a trusted root (MailVerifier.SMIMERoots); DKIM signature by evil.test, not by the From domain ca.test",
			untrusted: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &MailVerifier{LookupTXT: k.dns.lookup, SMIMERoots: pki.roots}
			if tt.noRoots {
				v.SMIMERoots = nil
			}
			if !tt.now.IsZero() {
				v.Now = func() time.Time { return tt.now }
			}
			res, err := v.Verify(t.Context(), tt.raw, authTestFrom)
			authTestCheck(t, res, err, tt.wantErr, tt.wantMethod, tt.wantWarn)
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Verify error = %v, want one wrapping %v", err, tt.wantIs)
			}
			if tt.wantIs == nil && errors.Is(err, ErrNoSMIMERoots) {
				t.Errorf("Verify error = %v wraps ErrNoSMIMERoots, but trust anchors were given", err)
			}
			var ue *UntrustedSignerError
			if got := errors.As(err, &ue); got != tt.untrusted {
				t.Errorf("Verify error = %v: wraps an *UntrustedSignerError = %v, want %v", err, got, tt.untrusted)
			} else if got && (!ue.Signer.Equal(untrusted) || !errors.As(ue, new(x509.UnknownAuthorityError))) {
				t.Errorf("UntrustedSignerError = {%v, %v}, want the signer's certificate and an x509.UnknownAuthorityError", ue.Signer.Subject, ue.Err)
			}
			if err != nil || tt.wantHeaders == nil {
				return
			}
			if !bytes.Equal(res.Headers, tt.wantHeaders) {
				t.Errorf("Verify Headers = %q, want %q", res.Headers, tt.wantHeaders)
			}
			if res.Domain != "ca.test" {
				t.Errorf("Verify Domain = %q, want ca.test", res.Domain)
			}
			// The client parses the protected headers as a challenge.
			cm, err := ParseChallengeMail(res.Headers)
			if err != nil {
				t.Fatalf("ParseChallengeMail(Headers) error = %v", err)
			}
			if cm.From != authTestFrom || cm.TokenPart1 != authTestToken || len(cm.To) != 1 || cm.To[0] != authTestUser {
				t.Errorf("ParseChallengeMail(Headers) = %+v, want From %s, To %s, token %s", cm, authTestFrom, authTestUser, authTestToken)
			}
		})
	}
}

func TestSMIMESplit(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []string
		wantErr string
	}{
		{name: "plain", body: "--b\r\nA\r\n--b\r\nB\r\n--b--\r\n", want: []string{"A", "B"}},
		{name: "preamble and epilogue", body: "pre\r\n--b\r\nA\r\n--b\r\nB\r\n--b--\r\nepi\r\n", want: []string{"A", "B"}},
		{name: "transport padding", body: "--b \t\r\nA\r\n--b  \r\nB\r\n--b-- \r\n", want: []string{"A", "B"}},
		{name: "line that only starts with the boundary", body: "--b\r\n--bx\r\nA\r\n--b--", want: []string{"--bx\r\nA"}},
		{name: "empty part", body: "--b\r\n--b\r\nB\r\n--b--", want: []string{"", "B"}},
		{name: "part keeps inner CRLF", body: "--b\r\nA\r\n\r\n--b--", want: []string{"A\r\n"}},
		{name: "no closing", body: "--b\r\nA\r\n--b\r\nB\r\n", wantErr: "no closing boundary"},
		{name: "closing first", body: "--b--\r\n", wantErr: "closing boundary before any part"},
		{name: "too many parts", body: strings.Repeat("--b\r\nA\r\n", smimeMaxParts+2) + "--b--", wantErr: "more than"},
	}
	for _, tt := range tests {
		got, err := smimeSplit([]byte(tt.body), "b")
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: smimeSplit error = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: smimeSplit error = %v", tt.name, err)
			continue
		}
		var gs []string
		for _, p := range got {
			gs = append(gs, string(p))
		}
		if strings.Join(gs, "|") != strings.Join(tt.want, "|") || len(gs) != len(tt.want) {
			t.Errorf("%s: smimeSplit = %q, want %q", tt.name, gs, tt.want)
		}
	}
}

func TestSMIMEDecodeAndCRLF(t *testing.T) {
	for _, tt := range []struct{ cte, in, want string }{
		{"base64", "aGVs\r\nbG8=\r\n", "hello"},
		{"BASE64", "aGVsbG8", "hello"},
		{"quoted-printable", "h=C3=A9\r\n", "h\xc3\xa9\r\n"},
		{"7bit", "x", "x"},
		{"", "x", "x"},
	} {
		got, err := smimeDecode(tt.cte, []byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("smimeDecode(%q, %q) = %q, %v, want %q", tt.cte, tt.in, got, err, tt.want)
		}
	}
	for _, cte := range []string{"x-uuencode"} {
		if _, err := smimeDecode(cte, nil); err == nil {
			t.Errorf("smimeDecode(%q) succeeded, want an error", cte)
		}
	}
	if _, err := smimeDecode("base64", []byte("a*b")); err == nil {
		t.Error("smimeDecode(base64, \"a*b\") succeeded, want an error")
	}
	for in, want := range map[string]string{"a\nb\r\nc\n": "a\r\nb\r\nc\r\n", "\n": "\r\n", "a\r\n": "a\r\n", "": ""} {
		if got := string(smimeCRLF([]byte(in))); got != want {
			t.Errorf("smimeCRLF(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSMIMESignature feeds arbitrary DER to the PKCS#7 parser and the
// signer checks (FuzzVerify reaches them only through base64).
func FuzzSMIMESignature(f *testing.F) {
	pki := newSMIMETestPKI(f, "Fuzz")
	leaf, key := pki.leaf(f, x509.ExtKeyUsageEmailProtection, authTestFrom)
	injected := smimeTestInjected(authTestFrom)
	f.Add(pki.sign(f, injected, leaf, key, false))
	f.Add(pki.sign(f, smimeTestWrapped(authTestFrom), leaf, key, false))
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80, 0x00, 0x00})
	v := &MailVerifier{SMIMERoots: pki.roots}
	f.Fuzz(func(t *testing.T, der []byte) {
		p7, err := smimeParse(der)
		if err != nil {
			return
		}
		if err := v.smimeCheckSigner(p7, authTestFrom); err != nil {
			return
		}
		if _, err := smimeProtected(p7.Content, authTestFrom); err != nil {
			return
		}
	})
}
