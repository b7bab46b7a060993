package acmemail

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"

	"github.com/smallstep/pkcs7"
)

// smimeMaxParts bounds the parts of a multipart/signed body (it has two).
const smimeMaxParts = 10

// ErrNoSMIMERoots is wrapped by the error of [MailVerifier.Verify] when
// the mail is S/MIME signed but [MailVerifier.SMIMERoots] is nil, so the
// signature could not be checked (and the mail had no acceptable DKIM
// signature either).
var ErrNoSMIMERoots = errors.New("the mail is S/MIME signed, but no S/MIME trust anchors are configured (MailVerifier.SMIMERoots), so its signature cannot be checked")

// UntrustedSignerError is wrapped by the error of [MailVerifier.Verify]
// when a mail's S/MIME signer's certificate does not chain to any of
// [MailVerifier.SMIMERoots] (and the mail had no acceptable DKIM signature
// either).
type UntrustedSignerError struct {
	// Signer is the signer's certificate, as the mail carried it.
	Signer *x509.Certificate
	// Err is the reason from certificate verification, an
	// [x509.UnknownAuthorityError].
	Err error
}

func (e *UntrustedSignerError) Error() string {
	who := ""
	if e.Signer != nil {
		who = " (" + authQuote(e.Signer.Subject.String()) + ")"
	}
	return "the S/MIME signer's certificate" + who + " is not issued by a trusted root (MailVerifier.SMIMERoots)"
}

func (e *UntrustedSignerError) Unwrap() error { return e.Err }

// smimeIs reports whether the top-level Content-Type of a mail says it is
// S/MIME signed: multipart/signed with the PKCS#7 signature protocol, or
// application/pkcs7-mime (whose smime-type is checked later).
func smimeIs(hdr header) bool {
	mt, params, _ := mime.ParseMediaType(hdr.get("Content-Type"))
	switch mt {
	case "multipart/signed":
		return smimeIsSignatureType(strings.ToLower(params["protocol"]))
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		return true
	}
	return false
}

func smimeIsSignatureType(mt string) bool {
	return mt == "application/pkcs7-signature" || mt == "application/x-pkcs7-signature"
}

// verifySMIME checks the S/MIME signature of raw (RFC 8551) and its header
// protection, and returns the protected inner message as Headers.
func (v *MailVerifier) verifySMIME(raw []byte, from string) (*Verified, error) {
	if v.SMIMERoots == nil {
		return nil, ErrNoSMIMERoots
	}
	msg := smimeCRLF(raw)
	hdr, body, err := readHeader(msg)
	if err != nil {
		return nil, fmt.Errorf("S/MIME: %w", err)
	}
	mt, params, _ := mime.ParseMediaType(hdr.get("Content-Type"))

	var p7 *pkcs7.PKCS7
	var content []byte
	switch mt {
	case "multipart/signed":
		boundary := params["boundary"]
		if boundary == "" {
			return nil, errors.New("S/MIME multipart/signed without a boundary")
		}
		parts, err := smimeSplit(body, boundary)
		if err != nil {
			return nil, fmt.Errorf("S/MIME multipart/signed: %w", err)
		}
		if len(parts) != 2 {
			return nil, fmt.Errorf("S/MIME multipart/signed has %d body part(s), want 2 (the content and the signature)", len(parts))
		}
		content = parts[0]
		sh, sbody, err := readHeader(parts[1])
		if err != nil {
			return nil, fmt.Errorf("S/MIME signature part: %w", err)
		}
		if smt, _, _ := mime.ParseMediaType(sh.get("Content-Type")); !smimeIsSignatureType(smt) {
			return nil, fmt.Errorf("S/MIME multipart/signed: its second part is %q, not application/pkcs7-signature", authQuote(smt))
		}
		der, err := smimeDecode(sh.get("Content-Transfer-Encoding"), sbody)
		if err != nil {
			return nil, fmt.Errorf("S/MIME signature part: %w", err)
		}
		if p7, err = smimeParse(der); err != nil {
			return nil, err
		}
		if len(p7.Content) > 0 {
			return nil, errors.New("S/MIME multipart/signed: the signature is not detached (it carries content of its own)")
		}
		p7.Content = content
	default: // application/pkcs7-mime
		if st := strings.ToLower(params["smime-type"]); st != "" && st != "signed-data" {
			return nil, fmt.Errorf("S/MIME: the mail is smime-type=%s, not signed-data; only signed challenge mail can be checked", authQuote(st))
		}
		der, err := smimeDecode(hdr.get("Content-Transfer-Encoding"), body)
		if err != nil {
			return nil, fmt.Errorf("S/MIME body: %w", err)
		}
		if p7, err = smimeParse(der); err != nil {
			return nil, err
		}
		if len(p7.Content) == 0 {
			return nil, errors.New("S/MIME signed-data without content")
		}
		content = p7.Content
	}
	if err := v.smimeCheckSigner(p7, from); err != nil {
		return nil, err
	}
	inner, err := smimeProtected(content, from)
	if err != nil {
		return nil, err
	}
	domain, _ := authAddrDomain(from)
	return &Verified{Method: "smime", Domain: domain, Headers: inner}, nil
}

// smimeParse parses a DER (or BER) PKCS#7 structure. The parser is third-
// party code fed with hostile input, so a panic in it is turned into a
// refusal rather than taking the whole process down.
func smimeParse(der []byte) (p7 *pkcs7.PKCS7, err error) {
	defer func() {
		if r := recover(); r != nil {
			p7, err = nil, errors.New("S/MIME signature cannot be parsed (malformed PKCS#7)")
		}
	}()
	p7, err = pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("S/MIME signature cannot be parsed: %s", authQuote(err.Error()))
	}
	return p7, nil
}

// smimeCheckSigner verifies the signature of p7 over its content, the
// signer's chain to SMIMERoots for email protection now, and that the
// signer's certificate is for the address from.
func (v *MailVerifier) smimeCheckSigner(p7 *pkcs7.PKCS7, from string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("S/MIME signature cannot be checked (malformed PKCS#7)")
		}
	}()
	if len(p7.Signers) != 1 {
		return fmt.Errorf("the S/MIME signature has %d signers, want exactly one", len(p7.Signers))
	}
	ee := p7.GetOnlySigner()
	if ee == nil {
		return errors.New("the S/MIME signature does not include its signer's certificate")
	}
	now := v.now()
	if err := p7.VerifyWithChainAtTime(nil, now); err != nil {
		var md *pkcs7.MessageDigestMismatchError
		var st *pkcs7.SigningTimeNotValidError
		switch {
		case errors.As(err, &md):
			return errors.New("S/MIME signature does not verify: digest mismatch (the signed part was changed after signing)")
		case errors.As(err, &st):
			return fmt.Errorf("S/MIME signature does not verify: its signing time %s is outside the validity of the signer's certificate", st.SigningTime.UTC().Format("2006-01-02 15:04:05Z"))
		}
		return fmt.Errorf("S/MIME signature does not verify: %s", authQuote(strings.TrimPrefix(err.Error(), "pkcs7: ")))
	}

	inter := x509.NewCertPool()
	for _, c := range p7.Certificates {
		if c != ee {
			inter.AddCert(c)
		}
	}
	_, err = ee.Verify(x509.VerifyOptions{
		Roots:         v.SMIMERoots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	})
	if err != nil {
		who := authQuote(ee.Subject.String())
		var ua x509.UnknownAuthorityError
		var ci x509.CertificateInvalidError
		switch {
		case errors.As(err, &ua):
			return &UntrustedSignerError{Signer: ee, Err: err}
		case errors.As(err, &ci) && ci.Reason == x509.Expired:
			return fmt.Errorf("the S/MIME signer's certificate (%s) or its chain is expired or not yet valid", who)
		case errors.As(err, &ci) && ci.Reason == x509.IncompatibleUsage:
			return fmt.Errorf("the S/MIME signer's certificate (%s) is not valid for email protection (extended key usage)", who)
		}
		return fmt.Errorf("the S/MIME signer's certificate (%s) is not trusted: %s", who, authQuote(err.Error()))
	}
	if ee.KeyUsage != 0 && ee.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return errors.New("the S/MIME signer's certificate does not allow signing (key usage)")
	}
	for _, e := range ee.EmailAddresses {
		if sameAddress(e, from) {
			return nil
		}
	}
	if len(ee.EmailAddresses) == 0 {
		return fmt.Errorf("the S/MIME signer's certificate has no email address (rfc822Name), so it is not the From address %s", authQuote(from))
	}
	return fmt.Errorf("the S/MIME signer's certificate is for %s, not for the From address %s", authQuote(strings.Join(ee.EmailAddresses, ", ")), authQuote(from))
}

// smimeProtected returns the protected inner message of signed content:
// the body of a message/rfc822 part (the whole message wrapped), or the
// part itself when its own header block carries From, To and Subject
// (RFC 7508-style injected headers). Without them it refuses the mail.
func smimeProtected(content []byte, from string) ([]byte, error) {
	inner := smimeCRLF(content)
	h, body, err := readHeader(inner)
	if err != nil {
		return nil, fmt.Errorf("S/MIME signed part: %w", err)
	}
	if mt, _, _ := mime.ParseMediaType(h.get("Content-Type")); mt == "message/rfc822" {
		switch cte := strings.ToLower(h.get("Content-Transfer-Encoding")); cte {
		case "", "7bit", "8bit", "binary":
		default:
			return nil, fmt.Errorf("S/MIME signed message/rfc822 part has Content-Transfer-Encoding %q (RFC 2046 allows 7bit, 8bit or binary)", authQuote(cte))
		}
		inner = body
		if h, _, err = readHeader(inner); err != nil {
			return nil, fmt.Errorf("S/MIME signed message: %w", err)
		}
	}
	var missing []string
	for _, name := range []string{"From", "To", "Subject"} {
		switch n := h.count(name); {
		case n == 0:
			missing = append(missing, name)
		case n > 1:
			return nil, fmt.Errorf("the S/MIME signed part has %d %s header fields", n, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("S/MIME without header protection: the signed part does not carry %s (RFC 8823 requires From, To and Subject inside the signature)", authList(missing))
	}
	if err := authCheckFrom(h, from); err != nil {
		return nil, fmt.Errorf("the S/MIME signed part: %w", err)
	}
	return inner, nil
}

// smimeSplit splits a multipart body at boundary (RFC 2046 §5.1.1) and
// returns the exact bytes of each part; the CRLF before a delimiter line
// belongs to the delimiter.
func smimeSplit(body []byte, boundary string) ([][]byte, error) {
	dash := []byte("--" + boundary)
	var parts [][]byte
	start := -1 // where the current part began; -1 in the preamble
	for pos := 0; pos < len(body); {
		next := len(body)
		line := body[pos:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line, next = line[:i], pos+i+1
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if rest, ok := bytes.CutPrefix(line, dash); ok {
			closing := bytes.HasPrefix(rest, []byte("--"))
			if closing {
				rest = rest[2:]
			}
			if len(bytes.Trim(rest, " \t")) == 0 {
				if start >= 0 {
					end := pos
					if end-2 >= start && body[end-2] == '\r' && body[end-1] == '\n' {
						end -= 2
					} else if end-1 >= start && body[end-1] == '\n' {
						end--
					}
					if len(parts) == smimeMaxParts {
						return nil, fmt.Errorf("more than %d parts", smimeMaxParts)
					}
					parts = append(parts, body[start:end])
				}
				if closing {
					if start < 0 {
						return nil, errors.New("closing boundary before any part")
					}
					return parts, nil
				}
				start = next
			}
		}
		pos = next
	}
	return nil, errors.New("no closing boundary")
}

// smimeDecode undoes a Content-Transfer-Encoding.
func smimeDecode(cte string, body []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			switch r {
			case ' ', '\t', '\r', '\n', '=':
				return -1
			}
			return r
		}, body)
		out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
		n, err := base64.RawStdEncoding.Decode(out, clean)
		if err != nil {
			return nil, errors.New("malformed base64")
		}
		return out[:n], nil
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if err != nil {
			return nil, errors.New("malformed quoted-printable")
		}
		return out, nil
	case "", "7bit", "8bit", "binary":
		return body, nil
	}
	return nil, fmt.Errorf("unknown Content-Transfer-Encoding %q", authQuote(cte))
}

// smimeCRLF turns every bare LF of b into CRLF (the canonical form that
// S/MIME signs). b is returned as is when it has none.
func smimeCRLF(b []byte) []byte {
	bare := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			bare++
		}
	}
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}
