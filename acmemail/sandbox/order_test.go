package sandbox

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/url"
	"strings"
	"testing"

	"github.com/mholt/acmez/v3/acme"
)

func TestNewOrderIdentifiers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{}, "alice@example.org")
	tests := []struct {
		name     string
		ids      []acme.Identifier
		wantType string
		detail   string
	}{
		{"ip identifier", []acme.Identifier{{Type: "ip", Value: "127.0.0.1"}}, acme.ProblemTypeUnsupportedIdentifier, `"ip" is not supported`},
		{"wildcard", []acme.Identifier{{Type: "email", Value: "*@example.org"}}, acme.ProblemTypeRejectedIdentifier, "wildcard"},
		{"no at", []acme.Identifier{{Type: "email", Value: "alice"}}, acme.ProblemTypeMalformed, "has no @"},
		{"display name", []acme.Identifier{{Type: "email", Value: "Alice <alice@example.org>"}}, acme.ProblemTypeMalformed, "bare address"},
		{"single-label domain", []acme.Identifier{{Type: "email", Value: "alice@localhost"}}, acme.ProblemTypeMalformed, "single label"},
		{"internationalized, no mailbox", []acme.Identifier{{Type: "email", Value: "jörg@example.org"}}, acme.ProblemTypeRejectedIdentifier, "no mailbox for jörg@example.org"},
		{"bad IDN", []acme.Identifier{{Type: "email", Value: "a@bü_cher.example"}}, acme.ProblemTypeMalformed, "not a valid internationalized domain name"},
		{"control in local part", []acme.Identifier{{Type: "email", Value: "j\u200börg@example.org"}}, acme.ProblemTypeMalformed, "U+200B"},
		{"unknown mailbox", []acme.Identifier{{Type: "email", Value: "carol@example.org"}}, acme.ProblemTypeRejectedIdentifier, "no mailbox for carol@example.org"},
		{"two bad", []acme.Identifier{{Type: "ip", Value: "127.0.0.1"}, {Type: "email", Value: "*@x.example"}}, "urn:ietf:params:acme:error:compound", "2 identifiers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client.NewOrder(t.Context(), e.acct, acme.Order{Identifiers: tt.ids})
			p := problemOf(t, err)
			if p.Type != tt.wantType || !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("NewOrder() = %s %q, want %s containing %q", p.Type, p.Detail, tt.wantType, tt.detail)
			}
		})
	}
	// The domain is case-insensitive and duplicates collapse.
	o, err := e.client.NewOrder(t.Context(), e.acct, acme.Order{Identifiers: []acme.Identifier{
		{Type: "email", Value: "alice@EXAMPLE.org"}, {Type: "email", Value: "alice@example.org"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Identifiers) != 1 || o.Identifiers[0].Value != "alice@example.org" || len(o.Authorizations) != 1 {
		t.Errorf("order identifiers = %+v, authorizations %d", o.Identifiers, len(o.Authorizations))
	}
}

// TestNewOrderASCIIOnly: Options.ASCIIOnly imitates CAs that refuse
// internationalized addresses.
func TestNewOrderASCIIOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ASCIIOnly: true}, "alice@example.org")
	for _, v := range []string{"jörg@example.org", "alice@bücher.example"} {
		_, err := e.client.NewOrder(t.Context(), e.acct, acme.Order{Identifiers: []acme.Identifier{{Type: "email", Value: v}}})
		if p := problemOf(t, err); p.Type != acme.ProblemTypeRejectedIdentifier || !strings.Contains(p.Detail, "only ASCII addresses") {
			t.Errorf("NewOrder(%s) = %s %q, want rejectedIdentifier for a non-ASCII address", v, p.Type, p.Detail)
		}
	}
}

func TestCanonicalAddress(t *testing.T) {
	tests := []struct {
		in, want, prob string
	}{
		{"alice@example.org", "alice@example.org", ""},
		{"Alice.Smith+acme@Mail.Example.ORG", "Alice.Smith+acme@mail.example.org", ""},
		{"a@xn--bcher-kva.example", "a@xn--bcher-kva.example", ""},
		{"a@Bücher.example", "a@xn--bcher-kva.example", ""},
		{"Jörg@example.org", "Jörg@example.org", ""},
		{"用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v", ""},
		{"j\xffrg@example.org", "", probMalformed},
		{"jö rg@example.org", "", probMalformed},
		{"", "", probMalformed},
		{"a..b@example.org", "", probMalformed},
		{".a@example.org", "", probMalformed},
		{"a@-x.example", "", probMalformed},
		{"a@example.123", "", probMalformed},
		{"a@[127.0.0.1]", "", probRejectedIdentifier},
		{`"a b"@example.org`, "", probRejectedIdentifier},
		{"a@b@example.org", "", probMalformed},
		{"mailto:a@example.org", "", probMalformed},
		{"a@ex_ample.org", "", probMalformed},
		{strings.Repeat("a", 65) + "@example.org", "", probMalformed},
	}
	for _, tt := range tests {
		got, p := canonicalAddress(tt.in)
		gotType := ""
		if p != nil {
			gotType = p.Type
		}
		if got != tt.want || gotType != tt.prob {
			t.Errorf("canonicalAddress(%q) = %q, %v; want %q, %s", tt.in, got, p, tt.want, tt.prob)
		}
	}
}

func FuzzCanonicalAddress(f *testing.F) {
	for _, s := range []string{"alice@example.org", "*@x.y", "a@[1.2.3.4]", `"q"@x.y`, "a@b", "jörg@bücher.example", "用户@例子.广告"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addr, p := canonicalAddress(s)
		if p != nil {
			return
		}
		again, p := canonicalAddress(addr)
		if p != nil || again != addr {
			t.Fatalf("canonicalAddress(%q) = %q, not a fixed point: %q %v", s, addr, again, p)
		}
		local, _ := splitAddress(s)
		if l, _ := splitAddress(addr); l != local {
			t.Fatalf("canonicalAddress(%q) = %q, a different local part", s, addr)
		}
		if !isInternational(s) && !sameAddress(addr, s) {
			t.Fatalf("canonicalAddress(%q) = %q, a different address", s, addr)
		}
	})
}

// readyOrder runs a challenge to completion and returns the ready order.
func (e *env) readyOrder(addr string) acme.Order {
	e.t.Helper()
	o, az, ch := e.order(addr)
	cm := parseChallengeMail(e.t, e.fetchMail(addr, uint32(e.w.Stats().ChallengesSent)))
	thumb, _ := e.acct.Thumbprint()
	if err := e.submit(addr, []string{ch.From}, composeReply(addr, ch.From, cm, digestFor(e.t, cm.tp1, ch.Token, thumb, false), replyOpts{})); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.client.InitiateChallenge(e.t.Context(), e.acct, ch); err != nil {
		e.t.Fatal(err)
	}
	if az = e.waitAuthz(az.Location); az.Status != "valid" {
		e.t.Fatalf("authorization = %q", az.Status)
	}
	o, err := e.client.GetOrder(e.t.Context(), e.acct, o)
	if err != nil || o.Status != "ready" {
		e.t.Fatalf("order = %q, %v; want ready", o.Status, err)
	}
	return o
}

func kuExtension(t *testing.T, ku x509.KeyUsage) pkix.Extension {
	t.Helper()
	var bits asn1.BitString
	bits.Bytes = []byte{0, 0}
	bits.BitLength = 9
	for i := 0; i < 9; i++ {
		if ku&(1<<i) != 0 {
			bits.Bytes[i/8] |= 0x80 >> (i % 8)
		}
	}
	v, err := asn1.Marshal(bits)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidExtKeyUsage, Critical: true, Value: v}
}

func TestFinalize(t *testing.T) {
	t.Parallel()
	const alice = "alice@example.org"
	e := newEnv(t, Options{}, alice, "bob@example.org")
	ctx := t.Context()

	// Finalizing before the challenge is done fails.
	pending, _, _ := e.order(alice)
	ecKey := mustKey(t, "p256")
	if _, err := e.client.FinalizeOrder(ctx, e.acct, pending, newCSR(t, ecKey, []string{alice}, nil)); err == nil {
		t.Errorf("finalize of a pending order succeeded")
	}

	o := e.readyOrder(alice)
	extraExt := func(oid asn1.ObjectIdentifier) func(*x509.CertificateRequest) {
		return func(r *x509.CertificateRequest) {
			r.ExtraExtensions = append(r.ExtraExtensions, pkix.Extension{Id: oid, Value: []byte{0x30, 0}})
		}
	}
	tests := []struct {
		name   string
		csr    []byte
		detail string
	}{
		{"basicConstraints", newCSR(t, ecKey, []string{alice}, extraExt(asn1.ObjectIdentifier{2, 5, 29, 19})), "basicConstraints"},
		{"account key", newCSR(t, e.acct.PrivateKey, []string{alice}, nil), "account key"},
		{"other address", newCSR(t, ecKey, []string{"bob@example.org"}, nil), "bob@example.org, which is not an identifier"},
		{"missing address", newCSR(t, ecKey, nil, func(r *x509.CertificateRequest) { r.Subject.CommonName = alice }), "no rfc822Name"},
		{"extra address", newCSR(t, ecKey, []string{alice, "bob@example.org"}, nil), "not an identifier"},
		{"dNSName", newCSR(t, ecKey, []string{alice}, func(r *x509.CertificateRequest) { r.DNSNames = []string{"example.org"} }), "dNSName"},
		{"URI", newCSR(t, ecKey, []string{alice}, func(r *x509.CertificateRequest) { r.URIs = []*url.URL{{Scheme: "https", Host: "x"}} }), "uniformResourceIdentifier"},
		{"wrong CN", newCSR(t, ecKey, []string{alice}, func(r *x509.CertificateRequest) { r.Subject.CommonName = "Alice" }), "commonName"},
		{"keyEncipherment on EC", newCSR(t, ecKey, []string{alice}, func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{kuExtension(t, x509.KeyUsageKeyEncipherment)}
		}), "keyAgreement"},
		{"keyCertSign", newCSR(t, ecKey, []string{alice}, func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{kuExtension(t, x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign)}
		}), "only CA certificates"},
		{"serverAuth", newCSR(t, ecKey, []string{alice}, func(r *x509.CertificateRequest) {
			v, _ := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 1}})
			r.ExtraExtensions = []pkix.Extension{{Id: oidExtExtKeyUsage, Value: v}}
		}), "only emailProtection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client.FinalizeOrder(ctx, e.acct, o, tt.csr)
			p := problemOf(t, err)
			if p.Type != acme.ProblemTypeBadCSR || !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("FinalizeOrder() = %s %q, want badCSR containing %q", p.Type, p.Detail, tt.detail)
			}
		})
	}

	// The order is still ready; a signing-only CSR with a CN and the EKU
	// is fine.
	good := newCSR(t, ecKey, []string{alice}, func(r *x509.CertificateRequest) {
		r.Subject.CommonName = alice
		v, _ := asn1.Marshal([]asn1.ObjectIdentifier{oidEKUEmailProtection})
		r.ExtraExtensions = []pkix.Extension{kuExtension(t, x509.KeyUsageDigitalSignature), {Id: oidExtExtKeyUsage, Value: v}}
	})
	o, err := e.client.FinalizeOrder(ctx, e.acct, o, good)
	if err != nil {
		t.Fatalf("FinalizeOrder() = %v", err)
	}
	chains, err := e.client.GetCertificateChain(ctx, e.acct, o.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	leaf := checkChain(t, e.w, chains[0].ChainPEM, alice, ecKey)
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %b, want digitalSignature only", leaf.KeyUsage)
	}

	// Revocation: by the account, then again.
	if err := e.client.RevokeCertificate(ctx, e.acct, leaf, nil, 4); err != nil {
		t.Errorf("RevokeCertificate() = %v", err)
	}
	err = e.client.RevokeCertificate(ctx, e.acct, leaf, nil, 4)
	if p := problemOf(t, err); p.Type != acme.ProblemTypeAlreadyRevoked {
		t.Errorf("second RevokeCertificate() = %v, want alreadyRevoked", err)
	}
	if st := e.w.Stats(); st.CertificatesIssued != 1 || st.CertificatesRevoked != 1 {
		t.Errorf("Stats() = %+v", st)
	}
}

func TestCheckCSRKeyUsage(t *testing.T) {
	ids := []string{"alice@example.org"}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey := mustKey(t, "rsa")
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tests := []struct {
		name string
		der  []byte
		want x509.KeyUsage
		prob string
	}{
		{"rsa default", newCSR(t, rsaKey, ids, nil), x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ""},
		{"rsa encrypt only", newCSR(t, rsaKey, ids, func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{kuExtension(t, x509.KeyUsageKeyEncipherment)}
		}), x509.KeyUsageKeyEncipherment, ""},
		{"rsa keyAgreement", newCSR(t, rsaKey, ids, func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{kuExtension(t, x509.KeyUsageKeyAgreement)}
		}), 0, "keyEncipherment for an encryption"},
		{"ec encrypt only", newCSR(t, ecKey, ids, func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{kuExtension(t, x509.KeyUsageKeyAgreement)}
		}), x509.KeyUsageKeyAgreement, ""},
		{"ed25519 default", newCSR(t, edKey, ids, nil), x509.KeyUsageDigitalSignature, ""},
		{"ed25519 keyAgreement", newCSR(t, edKey, ids, func(r *x509.CertificateRequest) {
			r.ExtraExtensions = []pkix.Extension{kuExtension(t, x509.KeyUsageKeyAgreement)}
		}), 0, "Ed25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, p := checkCSR(tt.der, ids, nil)
			if tt.prob != "" {
				if p == nil || !strings.Contains(p.Detail, tt.prob) {
					t.Fatalf("checkCSR() = %v, want a problem containing %q", p, tt.prob)
				}
				return
			}
			if p != nil {
				t.Fatalf("checkCSR() = %v", p)
			}
			if req.keyUsage != tt.want {
				t.Errorf("keyUsage = %b, want %b", req.keyUsage, tt.want)
			}
		})
	}
}

func FuzzCheckCSR(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{EmailAddresses: []string{"alice@example.org"}}, key)
	f.Add(der)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	if san, err := marshalSAN([]string{"jörg@example.org", "alice@example.org"}); err == nil {
		f.Add(san)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		req, p := checkCSR(der, []string{"alice@example.org"}, nil)
		if p == nil && (req == nil || len(req.emails) != 1 || req.keyUsage == 0) {
			t.Fatalf("checkCSR accepted a CSR without a usable request: %+v", req)
		}
		parseSANEmails(der)
		parseKeyUsage(der)
	})
}

func TestAccountKeyRollover(t *testing.T) {
	e := newEnv(t, Options{}, "alice@example.org")
	oldKey, newKey := e.acct.PrivateKey, mustKey(t, "p256")
	acct, err := e.client.AccountKeyRollover(t.Context(), e.acct, newKey)
	if err != nil {
		t.Fatalf("AccountKeyRollover() = %v", err)
	}
	e.acct = acct
	// The new key works for the whole flow, including the thumbprint.
	e.readyOrder("alice@example.org")

	// The old key no longer finds the account.
	_, err = e.client.GetAccount(t.Context(), acme.Account{PrivateKey: oldKey})
	if p := problemOf(t, err); p.Type != acme.ProblemTypeAccountDoesNotExist {
		t.Errorf("GetAccount(unknown key) = %v, want accountDoesNotExist", err)
	}
}
