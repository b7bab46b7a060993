package acmemail

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/mholt/acmez/v3/acme"
)

// Test mail parties. The CA mails from authTestFrom to authTestUser.
const (
	authTestFrom  = "acme-challenge+2i211oi1204310@ca.test"
	authTestUser  = "alice@example.org"
	authTestToken = "LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME"
	authTestBody  = "This message was sent by the ca.test certificate authority to confirm\r\n" +
		"that you control alice@example.org. Your ACME client answers it.\r\n"
)

// authTestDNS serves DKIM key records from memory.
type authTestDNS map[string]string

func (d authTestDNS) lookup(_ context.Context, name string) ([]string, error) {
	if rec, ok := d[strings.ToLower(strings.TrimSuffix(name, "."))]; ok {
		return []string{rec}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// authTestFields is the header of a well-formed challenge from from.
func authTestFields(from string) []string {
	return []string{
		"Auto-Submitted: auto-generated; type=acme",
		"Date: Sat, 05 Dec 2020 10:08:55 +0100",
		"Message-ID: <A2299BB.FF7788@ca.test>",
		"From: " + from,
		"To: " + authTestUser,
		"Subject: ACME: " + authTestToken,
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=us-ascii",
		"Content-Transfer-Encoding: 7bit",
	}
}

// authTestMessage joins header lines and a body with CRLF.
func authTestMessage(fields []string, body string) []byte {
	return []byte(strings.Join(fields, "\r\n") + "\r\n\r\n" + body)
}

// authTestReplace replaces the first old in raw by new; old must occur.
func authTestReplace(t testing.TB, raw []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(raw, []byte(old)) {
		t.Fatalf("test mail has no %q", old)
	}
	return bytes.Replace(raw, []byte(old), []byte(new), 1)
}

// authTestPrepend adds header lines on top of raw.
func authTestPrepend(raw []byte, lines ...string) []byte {
	return append([]byte(strings.Join(lines, "\r\n")+"\r\n"), raw...)
}

// authTestKeys is one DKIM key published, under selector "test", for
// several domains.
type authTestKeys struct {
	key crypto.Signer
	dns authTestDNS
}

func newAuthTestKeys(t testing.TB, domains ...string) *authTestKeys {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := &authTestKeys{key: key, dns: authTestDNS{}}
	for _, d := range domains {
		k.publish(d)
	}
	return k
}

func (k *authTestKeys) publish(domain string) {
	k.dns["test._domainkey."+domain] = k.dnsRecord()
}

// dnsRecord is the DKIM key record of the key.
func (k *authTestKeys) dnsRecord() string {
	switch pub := k.key.Public().(type) {
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	case *rsa.PublicKey:
		der, _ := x509.MarshalPKIXPublicKey(pub)
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	}
	panic("unknown key type")
}

// sign DKIM-signs raw for domain with go-msgauth (relaxed/relaxed); nil
// headerKeys means RFC 8823's MUST list.
func (k *authTestKeys) sign(t testing.TB, raw []byte, domain string, headerKeys []string) []byte {
	t.Helper()
	if headerKeys == nil {
		headerKeys = dkimListed
	}
	var b bytes.Buffer
	err := dkim.Sign(&b, bytes.NewReader(raw), &dkim.SignOptions{
		Domain:                 domain,
		Selector:               "test",
		Signer:                 k.key,
		HeaderKeys:             headerKeys,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func (k *authTestKeys) verifier() *MailVerifier {
	return &MailVerifier{LookupTXT: k.dns.lookup}
}

// authTestSig describes a DKIM signature made by authTestDKIMSign, a small
// deterministic ed25519-sha256 relaxed/relaxed signer for what go-msgauth
// cannot sign (l=) and for a reproducible corpus (fixed t=).
type authTestSig struct {
	Domain, Selector string
	Key              ed25519.PrivateKey
	Headers          []string
	BodyLength       bool  // add l= with the length of the body as signed
	Time             int64 // t=
}

func authTestDKIMSign(raw []byte, s authTestSig) []byte {
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		panic("test mail without a body")
	}
	// Header fields with their folded values.
	var names, values []string
	for _, line := range strings.Split(string(head), "\r\n") {
		if line[0] == ' ' || line[0] == '\t' {
			values[len(values)-1] += "\r\n" + line
			continue
		}
		n, v, _ := strings.Cut(line, ":")
		names, values = append(names, n), append(values, v)
	}
	cb := authTestRelaxedBody(body)
	bh := sha256.Sum256(cb)
	tags := fmt.Sprintf("v=1; a=ed25519-sha256; c=relaxed/relaxed; d=%s; s=%s;\r\n\tt=%d;", s.Domain, s.Selector, s.Time)
	if s.BodyLength {
		tags += fmt.Sprintf(" l=%d;", len(cb))
	}
	tags += fmt.Sprintf("\r\n\th=%s;\r\n\tbh=%s;\r\n\tb=", strings.Join(s.Headers, ":"), base64.StdEncoding.EncodeToString(bh[:]))

	var hashed bytes.Buffer
	used := map[int]bool{}
	for _, want := range s.Headers {
		for i := len(names) - 1; i >= 0; i-- {
			if !used[i] && strings.EqualFold(strings.TrimSpace(names[i]), want) {
				used[i] = true
				hashed.WriteString(authTestRelaxedHeader(names[i], values[i]) + "\r\n")
				break
			}
		}
	}
	hashed.WriteString(authTestRelaxedHeader("DKIM-Signature", " "+tags))
	h := sha256.Sum256(hashed.Bytes())
	sig := ed25519.Sign(s.Key, h[:])
	field := "DKIM-Signature: " + tags + base64.StdEncoding.EncodeToString(sig) + "\r\n"
	return append([]byte(field), raw...)
}

// authTestRelaxedHeader is RFC 6376 §3.4.2 without the final CRLF.
func authTestRelaxedHeader(name, value string) string {
	v := strings.ReplaceAll(value, "\r\n", "")
	return strings.ToLower(strings.TrimSpace(name)) + ":" + strings.Join(strings.Fields(v), " ")
}

// authTestRelaxedBody is RFC 6376 §3.4.4 for a CRLF body.
func authTestRelaxedBody(body []byte) []byte {
	lines := strings.Split(string(body), "\r\n")
	for i, l := range lines {
		l = strings.Map(func(r rune) rune {
			if r == '\t' {
				return ' '
			}
			return r
		}, l)
		for strings.Contains(l, "  ") {
			l = strings.ReplaceAll(l, "  ", " ")
		}
		lines[i] = strings.TrimRight(l, " ")
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return nil
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

// authTestCheck compares a Verify outcome with the wanted error and
// warning substrings ("" = none wanted).
func authTestCheck(t *testing.T, res *Verified, err error, wantErr, wantMethod, wantWarn string) {
	t.Helper()
	if wantErr != "" {
		if err == nil {
			t.Fatalf("Verify = %+v, want error containing %q", res, wantErr)
		}
		if !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("Verify error = %q, want it to contain %q", err, wantErr)
		}
		if res != nil {
			t.Fatalf("Verify returned %+v with its error", res)
		}
		return
	}
	if err != nil {
		t.Fatalf("Verify error = %q, want success", err)
	}
	if res.Method != wantMethod {
		t.Errorf("Verify Method = %q, want %q", res.Method, wantMethod)
	}
	warns := strings.Join(res.Warnings, "\n")
	switch {
	case wantWarn == "" && warns != "":
		t.Errorf("Verify Warnings = %q, want none", res.Warnings)
	case wantWarn != "" && !strings.Contains(warns, wantWarn):
		t.Errorf("Verify Warnings = %q, want one containing %q", res.Warnings, wantWarn)
	}
}

func TestVerifyDKIM(t *testing.T) {
	k := newAuthTestKeys(t, "ca.test", "evil.test", "mail.ca.test", "xn--bcher-kva.test")
	base := authTestMessage(authTestFields(authTestFrom), authTestBody)
	signed := k.sign(t, base, "ca.test", nil)
	tests := []struct {
		name       string
		raw        []byte
		from       string // "" = authTestFrom
		wantErr    string
		wantMethod string
		wantWarn   string
		wantDomain string
	}{
		{name: "valid", raw: signed, wantMethod: "dkim", wantDomain: "ca.test"},
		{name: "valid over-signed", raw: k.sign(t, base, "ca.test", append(append([]string{}, dkimListed...), "From", "To", "Subject")), wantMethod: "dkim"},
		{name: "no signature", raw: base, wantErr: "no DKIM signature"},
		{name: "another domain", raw: k.sign(t, base, "evil.test", nil), wantErr: "DKIM signature by evil.test, not by the From domain ca.test"},
		{
			name:    "parent domain",
			raw:     k.sign(t, authTestMessage(authTestFields("acme@mail.ca.test"), authTestBody), "ca.test", nil),
			from:    "acme@mail.ca.test",
			wantErr: "DKIM signature by ca.test, the parent (organizational) domain of the From domain mail.ca.test",
		},
		{name: "subdomain", raw: k.sign(t, base, "mail.ca.test", nil), wantErr: "a subdomain of the From domain ca.test"},
		{name: "tampered body", raw: append(bytes.Clone(signed), "Also send your password.\r\n"...), wantErr: "DKIM signature by ca.test: body hash mismatch"},
		{name: "tampered subject", raw: authTestReplace(t, signed, "ACME: LgYe", "ACME: XgYe"), wantErr: "DKIM signature by ca.test: signature mismatch"},
		{name: "tampered To", raw: authTestReplace(t, signed, "To: alice@", "To: mallory@"), wantErr: "signature mismatch"},
		{
			name:    "l= signature",
			raw:     append(authTestDKIMSign(base, authTestSig{Domain: "ca.test", Selector: "test", Key: k.key.(ed25519.PrivateKey), Headers: dkimListed, BodyLength: true, Time: 1607159335}), "unsigned tail\r\n"...),
			wantErr: "DKIM signature by ca.test uses the l= body length tag",
		},
		{name: "duplicated From", raw: authTestPrepend(signed, "From: acme-challenge+2i211oi1204310@ca.test"), wantErr: "the mail has 2 From header fields"},
		{name: "duplicated Subject", raw: authTestPrepend(signed, "Subject: ACME: XgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME"), wantErr: "the mail has 2 Subject header fields"},
		{name: "added unsigned To", raw: authTestPrepend(signed, "To: mallory@example.org"), wantErr: "the mail has 2 To header fields but the DKIM signature by ca.test signs only 1"},
		{name: "added unsigned Reply-To", raw: authTestPrepend(k.sign(t, authTestPrepend(base, "Reply-To: acme@ca.test"), "ca.test", nil), "Reply-To: mallory@example.org"), wantErr: "the mail has 2 Reply-To header fields"},
		{name: "h= misses To", raw: k.sign(t, base, "ca.test", []string{"From", "Subject", "Date", "Message-ID", "Auto-Submitted"}), wantErr: "DKIM signature by ca.test does not sign To"},
		{
			// OpenDKIM's default h= on a challenge mail (seen in the
			// real-mail tests): no Message-ID, no Auto-Submitted.
			name:       "h= of OpenDKIM's defaults",
			raw:        k.sign(t, base, "ca.test", []string{"From", "To", "Subject", "Date", "From"}),
			wantMethod: "dkim",
			wantWarn:   "the mail's Message-ID, Auto-Submitted, Content-Type and Content-Transfer-Encoding could have been changed",
		},
		{name: "h= misses present Reply-To", raw: k.sign(t, authTestPrepend(base, "Reply-To: acme@ca.test"), "ca.test", []string{"From", "To", "Subject", "Message-ID", "Auto-Submitted"}), wantErr: "does not sign Reply-To"},
		{
			name:       "h= partial list",
			raw:        k.sign(t, base, "ca.test", []string{"From", "To", "Subject", "Message-ID", "Auto-Submitted"}),
			wantMethod: "dkim",
			wantWarn:   "the mail's Date, Content-Type and Content-Transfer-Encoding could have been changed",
		},
		{name: "From is not the given address", raw: signed, from: "acme-challenge+other@ca.test", wantErr: "its From address acme-challenge+2i211oi1204310@ca.test is not acme-challenge+other@ca.test"},
		{name: "given address is not an address", raw: signed, from: "ca.test", wantErr: "is not an address"},
		{name: "no From", raw: k.sign(t, authTestMessage(authTestFields(authTestFrom)[4:], authTestBody), "ca.test", nil), wantErr: "the mail has no From header field"},
		{name: "two From addresses", raw: authTestReplace(t, signed, "From: "+authTestFrom, "From: "+authTestFrom+", a@evil.test"), wantErr: "2 addresses, want exactly one"},
		{name: "key not in DNS", raw: authTestReplace(t, signed, "s=test", "s=gone"), wantErr: "its key cannot be found in DNS"},
		{
			name:       "second signature valid",
			raw:        k.sign(t, k.sign(t, base, "ca.test", nil), "evil.test", nil),
			wantMethod: "dkim",
		},
		{
			name: "all signatures bad",
			raw:  k.sign(t, authTestReplace(t, signed, "bh=", "bh=AAAA"), "evil.test", nil),
			// Both reasons are given.
			wantErr: "DKIM signature by evil.test, not by the From domain ca.test; DKIM signature by ca.test: ",
		},
		{
			name:       "internationalized From domain",
			raw:        k.sign(t, authTestMessage(authTestFields("acme@bücher.test"), authTestBody), "xn--bcher-kva.test", nil),
			from:       "acme@bücher.test",
			wantMethod: "dkim",
		},
		{name: "LF line endings", raw: bytes.ReplaceAll(signed, []byte("\r\n"), []byte("\n")), wantMethod: "dkim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := tt.from
			if from == "" {
				from = authTestFrom
			}
			res, err := k.verifier().Verify(t.Context(), tt.raw, from)
			authTestCheck(t, res, err, tt.wantErr, tt.wantMethod, tt.wantWarn)
			if err == nil && tt.wantDomain != "" && res.Domain != tt.wantDomain {
				t.Errorf("Verify Domain = %q, want %q", res.Domain, tt.wantDomain)
			}
			if err == nil && res.Headers != nil {
				t.Errorf("Verify Headers = %q, want nil for DKIM", res.Headers)
			}
		})
	}
}

func TestVerifyDKIMRSA(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k := &authTestKeys{key: key, dns: authTestDNS{}}
	k.publish("ca.test")
	raw := k.sign(t, authTestMessage(authTestFields(authTestFrom), authTestBody), "ca.test", nil)
	res, err := k.verifier().Verify(t.Context(), raw, authTestFrom)
	authTestCheck(t, res, err, "", "dkim", "")
	res, err = k.verifier().Verify(t.Context(), authTestReplace(t, raw, "type=acme", "type=acme2"), authTestFrom)
	authTestCheck(t, res, err, "DKIM signature by ca.test: signature mismatch", "", "")
}

func TestVerifyDKIMExpired(t *testing.T) {
	k := newAuthTestKeys(t, "ca.test")
	var b bytes.Buffer
	err := dkim.Sign(&b, bytes.NewReader(authTestMessage(authTestFields(authTestFrom), authTestBody)), &dkim.SignOptions{
		Domain: "ca.test", Selector: "test", Signer: k.key, HeaderKeys: dkimListed,
		Expiration: time.Now().Add(-time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := k.verifier().Verify(t.Context(), b.Bytes(), authTestFrom)
	authTestCheck(t, res, err, "DKIM signature by ca.test: the signature has expired", "", "")
}

func TestVerifyDKIMLookupContext(t *testing.T) {
	k := newAuthTestKeys(t, "ca.test")
	raw := k.sign(t, authTestMessage(authTestFields(authTestFrom), authTestBody), "ca.test", nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	v := &MailVerifier{LookupTXT: func(ctx context.Context, name string) ([]string, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return k.dns.lookup(ctx, name)
	}}
	res, err := v.Verify(ctx, raw, authTestFrom)
	authTestCheck(t, res, err, "its key cannot be found in DNS (no key for signature: context canceled)", "", "")
}

func TestDKIMDescribe(t *testing.T) {
	// The refusal reasons depend on go-msgauth's wording; this pins it.
	tests := []struct{ in, want string }{
		{"dkim: body hash did not verify", "body hash mismatch"},
		{"dkim: signature did not verify: crypto/rsa: verification error", "signature mismatch"},
		{"dkim: message contains an insecure body length tag", "l= body length tag"},
		{"dkim: no key for signature: lookup x: no such host", "cannot be found in DNS"},
		{"dkim: key unavailable: timeout", "cannot be looked up now"},
		{"dkim: key revoked", "revoked"},
		{"dkim: hash algorithm too weak: sha1", "rsa-sha1"},
		{"dkim: something new", "something new"},
	}
	for _, tt := range tests {
		if got := dkimDescribe(fmt.Errorf("%s", tt.in)); !strings.Contains(got, tt.want) {
			t.Errorf("dkimDescribe(%q) = %q, want it to contain %q", tt.in, got, tt.want)
		}
	}
}

func TestVerifyLimits(t *testing.T) {
	k := newAuthTestKeys(t, "ca.test")
	big := make([]byte, maxMailSize+1)
	_, err := k.verifier().Verify(t.Context(), big, authTestFrom)
	if err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Errorf("Verify(%d bytes) error = %v, want a size error", len(big), err)
	}
	// More signatures than are checked: the valid one comes too late.
	raw := k.sign(t, authTestMessage(authTestFields(authTestFrom), authTestBody), "ca.test", nil)
	for range maxDKIMSignatures {
		raw = k.sign(t, raw, "evil.test", nil)
	}
	_, err = k.verifier().Verify(t.Context(), raw, authTestFrom)
	if err == nil || !strings.Contains(err.Error(), "only the first 5 of its 6 DKIM signatures were checked") {
		t.Errorf("Verify(6 signatures) error = %v, want a note on the limit", err)
	}
}

// The corpus of forged and broken challenge mails in testdata/corpus is
// made by corpusCases, signed with the fixed test key in dkim-key.pem, and
// checked by TestCorpus. Regenerate it with
//
//	go test ./acmemail -run TestCorpus -update-corpus
var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/corpus from corpusCases")

const (
	corpusDir        = "testdata/corpus"
	corpusKeyFile    = "dkim-key.pem"
	corpusSelector   = "corpus"
	corpusAuthservID = "mx.example.org"
	corpusTime       = 1607159335 // t= of every signature: the mails' Date
	corpusToken2     = "DGyRejmCefe7v4NfDGDKfA"
)

// corpusDate is the Date of every corpus mail, and when the order began.
var corpusDate = time.Date(2020, 12, 5, 9, 8, 55, 0, time.UTC)

// corpusEntry is one line of reasons.json: which layer of the client
// refuses the mail first, and a substring of its reason.
type corpusEntry struct {
	Description string `json:"description"`
	// Layer is "ParseChallengeMail", "Verifier" (MailVerifier.Verify with
	// TrustAuthservID mx.example.org), "Client.match" (the expectation
	// rules of client.go), or "none" for the genuine control mail.
	Layer  string `json:"layer"`
	Reason string `json:"reason,omitempty"`
	// VerifierReason, for a mail refused before the Verifier, is the
	// Verifier's own reason for refusing it too (defence in depth).
	VerifierReason string `json:"verifier_reason,omitempty"`
}

type corpusCase struct {
	file  string
	entry corpusEntry
	build func(g corpusGen) []byte
}

// corpusGen builds corpus mails; every mail has its own Message-ID.
type corpusGen struct {
	key  ed25519.PrivateKey
	name string
}

// mail is the genuine challenge, with header fields replaced or added by
// "Name: value" lines in set.
func (g corpusGen) mail(set ...string) []byte {
	fields := authTestFields(authTestFrom)
	fields[2] = "Message-ID: <corpus-" + strings.TrimSuffix(g.name, ".eml") + "@ca.test>"
	for _, s := range set {
		name, _, _ := strings.Cut(s, ":")
		replaced := false
		for i, f := range fields {
			if strings.HasPrefix(f, name+":") {
				fields[i], replaced = s, true
			}
		}
		if !replaced {
			fields = append(fields, s)
		}
	}
	return authTestMessage(fields, authTestBody)
}

// sign adds a DKIM signature by domain over RFC 8823's h= list (or keys).
func (g corpusGen) sign(raw []byte, domain string, keys ...string) []byte {
	if keys == nil {
		keys = dkimListed
	}
	return authTestDKIMSign(raw, authTestSig{Domain: domain, Selector: corpusSelector, Key: g.key, Headers: keys, Time: corpusTime})
}

func (g corpusGen) signL(raw []byte) []byte {
	return authTestDKIMSign(raw, authTestSig{Domain: "ca.test", Selector: corpusSelector, Key: g.key, Headers: dkimListed, BodyLength: true, Time: corpusTime})
}

var corpusCases = []corpusCase{
	{"valid.eml", corpusEntry{Description: "control: the genuine challenge, DKIM-signed by ca.test; every layer accepts it", Layer: "none"},
		func(g corpusGen) []byte { return g.sign(g.mail(), "ca.test") }},
	{"no-signature.eml", corpusEntry{Description: "no DKIM signature and no S/MIME", Layer: "Verifier", Reason: "no DKIM signature"},
		func(g corpusGen) []byte { return g.mail() }},
	{"other-domain.eml", corpusEntry{Description: "a valid DKIM signature, but by evil.test, not by the From domain", Layer: "Verifier", Reason: "DKIM signature by evil.test, not by the From domain ca.test"},
		func(g corpusGen) []byte { return g.sign(g.mail(), "evil.test") }},
	{"tampered-body.eml", corpusEntry{Description: "a valid signature by ca.test over a body that was changed afterwards", Layer: "Verifier", Reason: "DKIM signature by ca.test: body hash mismatch"},
		func(g corpusGen) []byte {
			return bytes.Replace(g.sign(g.mail(), "ca.test"), []byte("Your ACME client answers it."), []byte("Please reply with your password."), 1)
		}},
	{"tampered-subject.eml", corpusEntry{Description: "a signature by ca.test over another token-part1 than the Subject now carries", Layer: "Verifier", Reason: "DKIM signature by ca.test: signature mismatch"},
		func(g corpusGen) []byte {
			return bytes.Replace(g.sign(g.mail(), "ca.test"), []byte("Subject: ACME: LgYe"), []byte("Subject: ACME: XgYe"), 1)
		}},
	{"unsigned-to.eml", corpusEntry{Description: "a valid signature by ca.test whose h= does not list To", Layer: "Verifier", Reason: "DKIM signature by ca.test does not sign To"},
		func(g corpusGen) []byte {
			return g.sign(g.mail(), "ca.test", "From", "Subject", "Date", "Message-ID", "Auto-Submitted", "Content-Type")
		}},
	{"body-length.eml", corpusEntry{Description: "an l= signature by ca.test, with unsigned text appended to the body", Layer: "Verifier", Reason: "DKIM signature by ca.test uses the l= body length tag"},
		func(g corpusGen) []byte {
			return append(g.signL(g.mail()), "\r\nUPDATE: reply to mallory@example.org instead.\r\n"...)
		}},
	{"duplicate-from.eml", corpusEntry{Description: "a genuine signed mail with a second, unsigned From field added on top", Layer: "ParseChallengeMail", Reason: "more than one From header field", VerifierReason: "the mail has 2 From header fields"},
		func(g corpusGen) []byte {
			return authTestPrepend(g.sign(g.mail(), "ca.test"), "From: acme-challenge+2i211oi1204310@evil.test")
		}},
	{"duplicate-subject.eml", corpusEntry{Description: "a genuine signed mail with a second, unsigned Subject field carrying another token", Layer: "ParseChallengeMail", Reason: "more than one Subject header field", VerifierReason: "the mail has 2 Subject header fields"},
		func(g corpusGen) []byte {
			return authTestPrepend(g.sign(g.mail(), "ca.test"), "Subject: ACME: XgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME")
		}},
	{"added-to.eml", corpusEntry{Description: "a genuine signed mail with an unsigned copy of To added", Layer: "ParseChallengeMail", Reason: "more than one To header field", VerifierReason: "the mail has 2 To header fields but the DKIM signature by ca.test signs only 1"},
		func(g corpusGen) []byte {
			return authTestPrepend(g.sign(g.mail(), "ca.test"), "To: alice@example.org")
		}},
	{"forged-authres.eml", corpusEntry{Description: "unsigned, with a forged 'dkim=pass' Authentication-Results of the trusted mx.example.org below the genuine topmost one", Layer: "Verifier", Reason: "the Authentication-Results of mx.example.org report dkim=none, not dkim=pass for ca.test"},
		func(g corpusGen) []byte {
			return authTestPrepend(g.mail(),
				"Authentication-Results: mx.example.org; dkim=none; spf=pass smtp.mailfrom=evil.test",
				"Received: from mail.evil.test by mx.example.org with ESMTPS; Sat, 05 Dec 2020 10:08:56 +0100",
				"Authentication-Results: mx.example.org; dkim=pass header.d=ca.test header.s=corpus",
				"Authentication-Results: ca.test; dkim=pass header.d=ca.test")
		}},
	{"forged-authres-other-id.eml", corpusEntry{Description: "unsigned, with forged 'dkim=pass' Authentication-Results of servers that are not trusted", Layer: "Verifier", Reason: "no DKIM signature; no Authentication-Results header field by mx.example.org"},
		func(g corpusGen) []byte {
			return authTestPrepend(g.mail(),
				"Authentication-Results: mx.example.com; dkim=pass header.d=ca.test",
				"Authentication-Results: ca.test; dkim=pass header.d=ca.test")
		}},
	{"wrong-from.eml", corpusEntry{Description: "signed by ca.test, but From is not the challenge's from address", Layer: "Client.match", Reason: "its From acme-challenge+99999@ca.test is not the address the CA announced (acme-challenge+2i211oi1204310@ca.test)"},
		func(g corpusGen) []byte { return g.sign(g.mail("From: acme-challenge+99999@ca.test"), "ca.test") }},
	{"wrong-to.eml", corpusEntry{Description: "signed by ca.test, but To is not the address being certified (which is only in Cc)", Layer: "Client.match", Reason: "it is not addressed (To) to an address with a pending order (To: bob@example.org)"},
		func(g corpusGen) []byte {
			return g.sign(g.mail("To: bob@example.org", "Cc: alice@example.org"), "ca.test")
		}},
	{"reply-subject.eml", corpusEntry{Description: "signed by ca.test, but the Subject is a reply (Re: ACME: ...)", Layer: "ParseChallengeMail", Reason: "(a reply prefix)"},
		func(g corpusGen) []byte { return g.sign(g.mail("Subject: Re: ACME: "+authTestToken), "ca.test") }},
	{"auto-submitted-no.eml", corpusEntry{Description: "signed by ca.test, but Auto-Submitted: no", Layer: "Client.match", Reason: `its Auto-Submitted is "no", not auto-generated`},
		func(g corpusGen) []byte { return g.sign(g.mail("Auto-Submitted: no"), "ca.test") }},
}

// corpusDNS publishes the corpus key for ca.test and evil.test.
func corpusDNS(key ed25519.PrivateKey) authTestDNS {
	rec := "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	return authTestDNS{
		corpusSelector + "._domainkey.ca.test":   rec,
		corpusSelector + "._domainkey.evil.test": rec,
	}
}

func corpusLoadKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpusDir, corpusKeyFile))
	if err != nil {
		t.Fatalf("%v (run go test ./acmemail -run TestCorpus -update-corpus)", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM block", corpusKeyFile)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ed, ok := key.(ed25519.PrivateKey)
	if !ok {
		t.Fatalf("%s holds a %T, want an ed25519 key", corpusKeyFile, key)
	}
	return ed
}

// corpusGenerate returns every corpus file: the mails and reasons.json.
func corpusGenerate(t testing.TB, key ed25519.PrivateKey) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	reasons := make(map[string]corpusEntry)
	for _, c := range corpusCases {
		files[c.file] = c.build(corpusGen{key: key, name: c.file})
		reasons[c.file] = c.entry
	}
	j, err := json.MarshalIndent(reasons, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	files["reasons.json"] = append(j, '\n')
	return files
}

func corpusUpdate(t *testing.T) {
	keyPath := filepath.Join(corpusDir, corpusKeyFile)
	if _, err := os.Stat(keyPath); os.IsNotExist(err) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		text := "TEST-ONLY DKIM key of the acmemail test corpus (selector \"corpus\",\n" +
			"domains ca.test and evil.test). It is public: never sign real mail with it.\n" +
			string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		if err := os.MkdirAll(corpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyPath, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := filepath.Glob(filepath.Join(corpusDir, "*.eml"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range corpusGenerate(t, corpusLoadKey(t)) {
		if err := os.WriteFile(filepath.Join(corpusDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// corpusLayer runs raw through the client's layers in order and returns
// the first that refuses it, with its error ("none", nil if all accept).
func corpusLayer(ctx context.Context, v Verifier, raw []byte) (string, error) {
	cm, err := ParseChallengeMail(raw)
	if err != nil {
		return "ParseChallengeMail", err
	}
	if _, err := v.Verify(ctx, raw, cm.From); err != nil {
		return "Verifier", err
	}
	if err := corpusMatch(ctx, v, raw); err != nil {
		return "Client.match", err
	}
	return "none", nil
}

// corpusMatch runs Client.match with one pending challenge for
// authTestUser from authTestFrom, as Obtain would.
func corpusMatch(ctx context.Context, v Verifier, raw []byte) error {
	c := &Client{Verifier: v}
	work := []*pending{{
		email:    authTestUser,
		authzURL: "https://ca.test/acme/authz/1",
		challenge: acme.Challenge{
			Type:  ChallengeType,
			URL:   "https://ca.test/acme/chall/1",
			Token: corpusToken2,
			From:  authTestFrom,
		},
	}}
	_, _, err := c.match(ctx, work, corpusDate, raw)
	return err
}

func TestCorpus(t *testing.T) {
	if *updateCorpus {
		corpusUpdate(t)
	}
	key := corpusLoadKey(t)

	// The files on disk are exactly what the generator makes.
	want := corpusGenerate(t, key)
	onDisk, err := filepath.Glob(filepath.Join(corpusDir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range onDisk {
		if _, ok := want[filepath.Base(f)]; !ok {
			t.Errorf("%s is not made by corpusCases (run with -update-corpus)", f)
		}
	}
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(corpusDir, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s is missing or stale (run go test ./acmemail -run TestCorpus -update-corpus)", name)
		}
	}
	var reasons map[string]corpusEntry
	if err := json.Unmarshal(want["reasons.json"], &reasons); err != nil {
		t.Fatal(err)
	}

	v := &MailVerifier{LookupTXT: corpusDNS(key).lookup, TrustAuthservID: corpusAuthservID}
	for _, c := range corpusCases {
		t.Run(c.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(corpusDir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			e := reasons[c.file]
			layer, err := corpusLayer(t.Context(), v, raw)
			if layer != e.Layer {
				t.Fatalf("refused by %s (%v), want by %s", layer, err, e.Layer)
			}
			if e.Layer == "none" {
				return
			}
			if !strings.Contains(err.Error(), e.Reason) {
				t.Errorf("%s refused it with %q, want a reason containing %q", layer, err, e.Reason)
			}
			// The whole of Client.match refuses it with the same reason.
			if err := corpusMatch(t.Context(), v, raw); err == nil || !strings.Contains(err.Error(), e.Reason) {
				t.Errorf("Client.match error = %v, want one containing %q", err, e.Reason)
			}
			if e.VerifierReason != "" {
				_, err := v.Verify(t.Context(), raw, authTestFrom)
				if err == nil || !strings.Contains(err.Error(), e.VerifierReason) {
					t.Errorf("Verify error = %v, want one containing %q", err, e.VerifierReason)
				}
			}
		})
	}
}

// FuzzVerify feeds arbitrary mail to MailVerifier.Verify with every method
// enabled. Seeds: the corpus and S/MIME mails made here.
func FuzzVerify(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.eml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	pki := newSMIMETestPKI(f, "Fuzz")
	leaf, key := pki.leaf(f, x509.ExtKeyUsageEmailProtection, authTestFrom)
	injected := smimeTestInjected(authTestFrom)
	wrapped := smimeTestWrapped(authTestFrom)
	f.Add(smimeTestMultipart(authTestFrom, injected, pki.sign(f, injected, leaf, key, true)))
	f.Add(smimeTestOpaque(authTestFrom, pki.sign(f, wrapped, leaf, key, false)))
	f.Add([]byte("From: " + authTestFrom + "\r\nContent-Type: multipart/signed; protocol=application/pkcs7-signature; boundary=b\r\n\r\n--b\r\n\r\n--b\r\n\r\n--b--\r\n"))
	f.Add([]byte("From: " + authTestFrom + "\r\nAuthentication-Results: mx.example.org; dkim=pass header.d=ca.test\r\nDKIM-Signature: v=1; d=ca.test; h=from:to:subject; l=1\r\n\r\n"))
	f.Add([]byte("From: " + authTestFrom + "\nDKIM-Signature: v=1; a=ed25519-sha256; d=ca.test; s=corpus; h=from; bh=; b=\n\n"))

	v := &MailVerifier{
		LookupTXT:       corpusDNS(corpusLoadKey(f)).lookup,
		TrustAuthservID: corpusAuthservID,
		SMIMERoots:      pki.roots,
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := v.Verify(context.Background(), raw, authTestFrom)
		if err != nil {
			if res != nil {
				t.Fatalf("Verify returned %+v with error %v", res, err)
			}
			if err.Error() == "" {
				t.Fatal("Verify returned an empty error")
			}
			return
		}
		switch res.Method {
		case "dkim", "authentication-results":
			if res.Headers != nil {
				t.Fatalf("Verify %s returned Headers", res.Method)
			}
		case "smime":
			if h, _, err := readHeader(res.Headers); err != nil || h.count("From") != 1 || h.count("To") == 0 || h.count("Subject") != 1 {
				t.Fatalf("Verify smime Headers %q lack From, To or Subject", res.Headers)
			}
		default:
			t.Fatalf("Verify Method = %q", res.Method)
		}
		if res.Domain != "ca.test" {
			t.Fatalf("Verify Domain = %q, want ca.test", res.Domain)
		}
	})
}
