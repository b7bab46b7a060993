package sandbox

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"
)

const testHost = "mail.example.test"

// serverEnv is a world with the zone example.test and an account.
func serverEnv(t *testing.T, opt Options) *env {
	t.Helper()
	e := newEnv(t, opt)
	if err := e.w.AddZone("example.test"); err != nil {
		t.Fatal(err)
	}
	return e
}

// publish adds a TXT record with a signed RFC 2136 update of its own
// (no lego), so that tests using it can run in parallel.
func publish(t *testing.T, w *World, name, value string) {
	t.Helper()
	m := new(dns.Msg).SetUpdate("example.test.")
	m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{value}}})
	m.SetTsig(w.TSIG.Name, w.TSIG.Algorithm, 300, time.Now().Unix())
	if r := exchange(t, w, m, map[string]string{w.TSIG.Name: w.TSIG.Secret}); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("update %s: %s", name, dns.RcodeToString[r.Rcode])
	}
}

// serverOrder orders a certificate for host and the services and returns
// the order with its challenges by identifier value.
func (e *env) serverOrder(host string, services ...string) (acme.Order, map[string]acme.Challenge) {
	e.t.Helper()
	ids := []acme.Identifier{{Type: "dns", Value: host}}
	for _, s := range services {
		ids = append(ids, acme.Identifier{Type: "srvname", Value: "_" + s + "." + host})
	}
	o, err := e.client.NewOrder(e.t.Context(), e.acct, acme.Order{Identifiers: ids})
	if err != nil {
		e.t.Fatalf("NewOrder(%v) = %v", ids, err)
	}
	chs := map[string]acme.Challenge{}
	for _, u := range o.Authorizations {
		az, err := e.client.GetAuthorization(e.t.Context(), e.acct, u)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(az.Challenges) != 1 {
			e.t.Fatalf("authorization %s has %d challenges, want 1", az.Identifier.Value, len(az.Challenges))
		}
		chs[az.Identifier.Value] = az.Challenges[0]
	}
	return o, chs
}

// answer publishes the record of a challenge as a client following the
// proposal would, and asks the CA to validate it; it returns the
// authorization's final state.
func (e *env) answer(ch acme.Challenge, present func(domain, keyAuth string)) acme.Authorization {
	e.t.Helper()
	domain, keyAuth := ch.Identifier.Value, ch.KeyAuthorization
	if ch.Type == "dns-service-01" {
		svc, host, _ := strings.Cut(ch.Identifier.Value, ".")
		port, _ := ServicePort(strings.TrimPrefix(svc, "_"))
		domain = "_" + strconv.Itoa(port) + "." + svc + "." + host
		keyAuth += "." + strings.TrimPrefix(svc, "_") + "." + strconv.Itoa(port)
	}
	present(domain, keyAuth)
	if _, err := e.client.InitiateChallenge(e.t.Context(), e.acct, ch); err != nil {
		e.t.Fatalf("InitiateChallenge(%s) = %v", ch.Identifier.Value, err)
	}
	return e.waitAuthz(authzURLOf(e, ch))
}

// authzURLOf finds the authorization of a challenge through the CA's
// state (acmez does not keep the link).
func authzURLOf(e *env, ch acme.Challenge) string {
	e.w.ca.mu.Lock()
	defer e.w.ca.mu.Unlock()
	for _, c := range e.w.ca.challs {
		if c.url == ch.URL {
			return c.authz.url
		}
	}
	e.t.Fatalf("no challenge %s", ch.URL)
	return ""
}

// finalizeServer finalizes o with a CSR for key and returns the leaf and
// the chain.
func (e *env) finalizeServer(o acme.Order, key crypto.Signer, hosts []string, srvNames []string) (*x509.Certificate, []byte, error) {
	e.t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: hosts[0]}, DNSNames: hosts}
	if len(srvNames) > 0 {
		san, err := marshalServerSAN(hosts, srvNames)
		if err != nil {
			e.t.Fatal(err)
		}
		tmpl.DNSNames = nil
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidExtSubjectAltName, Value: san}}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		e.t.Fatal(err)
	}
	o, err = e.client.FinalizeOrder(e.t.Context(), e.acct, o, csr)
	if err != nil {
		return nil, nil, err
	}
	certs, err := e.client.GetCertificateChain(e.t.Context(), e.acct, o.Certificate)
	if err != nil || len(certs) == 0 {
		e.t.Fatalf("GetCertificateChain() = %v", err)
	}
	block, _ := pem.Decode(certs[0].ChainPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		e.t.Fatal(err)
	}
	return leaf, certs[0].ChainPEM, nil
}

// srvNamesOf decodes the SRVName otherNames of a certificate, independently
// of the CA's encoder.
func srvNamesOf(t *testing.T, c *x509.Certificate) []string {
	t.Helper()
	var out []string
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
			continue
		}
		var names []asn1.RawValue
		if _, err := asn1.Unmarshal(ext.Value, &names); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if n.Tag != 0 {
				continue
			}
			var on struct {
				TypeID asn1.ObjectIdentifier
				Value  asn1.RawValue // [0] EXPLICIT
			}
			if _, err := asn1.UnmarshalWithParams(n.FullBytes, &on, "tag:0"); err != nil {
				t.Fatalf("otherName: %v", err)
			}
			var v asn1.RawValue
			if _, err := asn1.Unmarshal(on.Value.Bytes, &v); err != nil || on.Value.Tag != 0 || on.Value.Class != asn1.ClassContextSpecific {
				t.Fatalf("otherName value: %v", err)
			}
			if !on.TypeID.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}) || v.Tag != asn1.TagIA5String {
				t.Fatalf("otherName %v with tag %d, want an SRVName IA5String", on.TypeID, v.Tag)
			}
			out = append(out, string(v.Bytes))
		}
	}
	slices.Sort(out)
	return out
}

// wantKeyUsage is what a server certificate for key must carry.
func wantKeyUsage(key crypto.PublicKey) x509.KeyUsage {
	if _, ok := key.(*rsa.PublicKey); ok {
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	return x509.KeyUsageDigitalSignature
}

// checkServerCert checks a correct server certificate: the names, the
// key, serverAuth only, the key type's keyUsage, a chain to the issuer
// root valid for serverAuth.
func checkServerCert(t *testing.T, w *World, leaf *x509.Certificate, chainPEM []byte, key crypto.Signer, hosts, srvNames []string) {
	t.Helper()
	if !slices.Equal(leaf.DNSNames, hosts) || leaf.Subject.CommonName != hosts[0] {
		t.Errorf("dNSNames %q CN %q, want %q", leaf.DNSNames, leaf.Subject.CommonName, hosts)
	}
	if got := srvNamesOf(t, leaf); !slices.Equal(got, srvNames) {
		t.Errorf("SRVNames %q, want %q", got, srvNames)
	}
	if len(leaf.EmailAddresses)+len(leaf.IPAddresses)+len(leaf.URIs) != 0 {
		t.Errorf("other SANs: %v %v %v", leaf.EmailAddresses, leaf.IPAddresses, leaf.URIs)
	}
	if !sameKey(leaf.PublicKey, key.Public()) {
		t.Errorf("the certificate is not for the CSR's key")
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("EKU %v, want serverAuth", leaf.ExtKeyUsage)
	}
	if want := wantKeyUsage(key.Public()); leaf.KeyUsage != want {
		t.Errorf("keyUsage %b, want %b", leaf.KeyUsage, want)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(w.IssuerRootPEM)
	inter := x509.NewCertPool()
	rest := chainPEM
	for i := 0; ; i++ {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil && i > 0 {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: hosts[0], Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("Verify() = %v", err)
	}
}

// TestServerDNS01Lego: a dns-01 order end to end, the record published by
// lego's rfc2136 provider configured from DNSUpdateEnv: a dNSName
// certificate with serverAuth and the key type's keyUsage.
func TestServerDNS01Lego(t *testing.T) {
	e := serverEnv(t, Options{})
	useLegoResolver(t, e.w)
	setEnv(t, e.w.DNSUpdateEnv())
	p, err := dnsupdate.NewDNSProvider()
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"rsa", "p256"} {
		t.Run(kind, func(t *testing.T) {
			e.t = t
			o, chs := e.serverOrder(testHost)
			ch := chs[testHost]
			if ch.Type != "dns-01" || ch.Token == "" {
				t.Fatalf("challenge %+v, want dns-01 with a token", ch)
			}
			before := e.w.Stats().DNSValidations
			az := e.answer(ch, func(domain, keyAuth string) {
				if err := p.Present(t.Context(), domain, ch.Token, keyAuth); err != nil {
					t.Fatalf("Present() = %v", err)
				}
				t.Cleanup(func() { p.CleanUp(t.Context(), domain, ch.Token, keyAuth) })
			})
			if az.Status != "valid" {
				t.Fatalf("authorization %s: %+v", az.Status, az.Challenges[0].Error)
			}
			if got := e.w.Stats().DNSValidations - before; got != 1 {
				t.Errorf("DNSValidations grew by %d, want 1", got)
			}
			key := mustKey(t, kind)
			leaf, chain, err := e.finalizeServer(o, key, []string{testHost}, nil)
			if err != nil {
				t.Fatalf("FinalizeOrder() = %v", err)
			}
			checkServerCert(t, e.w, leaf, chain, key, []string{testHost}, nil)
		})
	}
}

// TestServerServiceLego: the service-bound challenge end to end with
// lego's provider: a challenge per service with its port, the record at
// _acme-challenge._PORT._SERVICE.HOST with service and port in the digest,
// and a certificate with the dNSName and an SRVName per service.
func TestServerServiceLego(t *testing.T) {
	e := serverEnv(t, Options{})
	useLegoResolver(t, e.w)
	setEnv(t, e.w.DNSUpdateEnv())
	p, err := dnsupdate.NewDNSProvider()
	if err != nil {
		t.Fatal(err)
	}
	for _, withSRVInCSR := range []bool{false, true} {
		t.Run(fmt.Sprintf("srvnames in CSR %v", withSRVInCSR), func(t *testing.T) {
			e.t = t
			o, chs := e.serverOrder(testHost, "imaps", "submissions")
			if len(chs) != 3 {
				t.Fatalf("%d authorizations, want 3", len(chs))
			}
			for value, ch := range chs {
				want := "dns-01"
				if value != testHost {
					want = "dns-service-01"
				}
				if ch.Type != want {
					t.Errorf("%s: challenge %s, want %s", value, ch.Type, want)
				}
				az := e.answer(ch, func(domain, keyAuth string) {
					if err := p.Present(t.Context(), domain, ch.Token, keyAuth); err != nil {
						t.Fatalf("Present() = %v", err)
					}
				})
				if az.Status != "valid" {
					t.Fatalf("%s: authorization %s: %+v", value, az.Status, az.Challenges[0].Error)
				}
			}
			srvNames := []string{"_imaps." + testHost, "_submissions." + testHost}
			var inCSR []string
			if withSRVInCSR {
				inCSR = srvNames
			}
			key := mustKey(t, "p256")
			leaf, chain, err := e.finalizeServer(o, key, []string{testHost}, inCSR)
			if err != nil {
				t.Fatalf("FinalizeOrder() = %v", err)
			}
			checkServerCert(t, e.w, leaf, chain, key, []string{testHost}, srvNames)
		})
	}
}

// TestServerServiceChallengeObject: the dns-service-01 challenge object
// carries the port of its service; dns-01 has none, and neither has from.
func TestServerServiceChallengeObject(t *testing.T) {
	t.Parallel()
	e := serverEnv(t, Options{})
	k := newJWSKey(t, "ES256")
	e.acct = e.newAccount(k.signer)
	c := newRawClient(t, e.w)
	o, _ := e.serverOrder(testHost, "imaps", "submission", "pop3s")
	want := map[string]struct {
		typ  string
		port float64
	}{
		testHost:                  {"dns-01", 0},
		"_imaps." + testHost:      {"dns-service-01", 993},
		"_submission." + testHost: {"dns-service-01", 587},
		"_pop3s." + testHost:      {"dns-service-01", 995},
	}
	for _, u := range o.Authorizations {
		resp, body := c.do(http.MethodPost, u, "application/jose+json", k.sign(t, "", e.acct.Location, c.nonce(), u, nil))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST-as-GET %s = %d %s", u, resp.StatusCode, body)
		}
		var az struct {
			Identifier struct{ Type, Value string }
			Challenges []map[string]any
		}
		if err := json.Unmarshal(body, &az); err != nil {
			t.Fatal(err)
		}
		w, ok := want[az.Identifier.Value]
		if !ok || len(az.Challenges) != 1 {
			t.Fatalf("authorization %s with %d challenges", az.Identifier.Value, len(az.Challenges))
		}
		ch := az.Challenges[0]
		port, _ := ch["port"].(float64)
		if ch["type"] != w.typ || port != w.port || ch["from"] != nil {
			t.Errorf("%s: challenge %v, want type %s port %v", az.Identifier.Value, ch, w.typ, w.port)
		}
	}
}

// TestServerServiceChallengeRefused: a record for another port, or with
// the plain dns-01 digest, does not validate a dns-service-01 challenge.
func TestServerServiceChallengeRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		publish func(keyAuth string) (name, value string)
		prob    string
	}{
		{"wrong port", func(ka string) (string, string) {
			return "_acme-challenge._587._imaps." + testHost, dns01Value(ka + ".imaps.587")
		}, "unauthorized"},
		{"no service in the digest", func(ka string) (string, string) {
			return "_acme-challenge._993._imaps." + testHost, dns01Value(ka)
		}, "incorrectResponse"},
		{"dns-01 name", func(ka string) (string, string) {
			return "_acme-challenge._imaps." + testHost, dns01Value(ka + ".imaps.993")
		}, "unauthorized"},
		{"other service", func(ka string) (string, string) {
			return "_acme-challenge._993._imaps." + testHost, dns01Value(ka + ".imap.993")
		}, "incorrectResponse"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := serverEnv(t, Options{})
			_, chs := e.serverOrder(testHost, "imaps")
			ch := chs["_imaps."+testHost]
			name, value := tt.publish(ch.KeyAuthorization)
			publish(t, e.w, name, value)
			if _, err := e.client.InitiateChallenge(t.Context(), e.acct, ch); err != nil {
				t.Fatal(err)
			}
			az := e.waitAuthz(authzURLOf(e, ch))
			if az.Status != "invalid" || az.Challenges[0].Error == nil || !strings.HasSuffix(az.Challenges[0].Error.Type, ":"+tt.prob) {
				t.Errorf("authorization %s, error %+v; want invalid with %s", az.Status, az.Challenges[0].Error, tt.prob)
			}
			if st := e.w.Stats(); st.ChallengesInvalid != 1 || st.DNSValidations != 1 {
				t.Errorf("stats: %d invalid challenges, %d validations; want 1, 1", st.ChallengesInvalid, st.DNSValidations)
			}
		})
	}
}

// TestServerOrderIdentifiers: what a server order may not ask for.
func TestServerOrderIdentifiers(t *testing.T) {
	t.Parallel()
	e := serverEnv(t, Options{})
	if err := e.w.AddUser("alice@example.test", "pw"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		ids  []acme.Identifier
		prob string
	}{
		{"outside the zones", []acme.Identifier{{Type: "dns", Value: "mail.example.net"}}, "rejectedIdentifier"},
		{"wildcard", []acme.Identifier{{Type: "dns", Value: "*.example.test"}}, "rejectedIdentifier"},
		{"underscore host", []acme.Identifier{{Type: "dns", Value: "_imaps.example.test"}}, "rejectedIdentifier"},
		{"srvname without its host", []acme.Identifier{{Type: "dns", Value: "other.example.test"}, {Type: "srvname", Value: "_imaps." + testHost}}, "rejectedIdentifier"},
		{"srvname alone", []acme.Identifier{{Type: "srvname", Value: "_imaps." + testHost}}, "rejectedIdentifier"},
		{"unknown service", []acme.Identifier{{Type: "dns", Value: testHost}, {Type: "srvname", Value: "_https." + testHost}}, "rejectedIdentifier"},
		{"srvname without underscore", []acme.Identifier{{Type: "dns", Value: testHost}, {Type: "srvname", Value: "imaps." + testHost}}, "malformed"},
		{"email and dns", []acme.Identifier{{Type: "dns", Value: testHost}, {Type: "email", Value: "alice@example.test"}}, "rejectedIdentifier"},
		{"ip", []acme.Identifier{{Type: "dns", Value: testHost}, {Type: "ip", Value: "127.0.0.1"}}, "unsupportedIdentifier"},
	} {
		_, err := e.client.NewOrder(t.Context(), e.acct, acme.Order{Identifiers: tt.ids})
		var prob acme.Problem
		if !errors.As(err, &prob) || !strings.HasSuffix(prob.Type, ":"+tt.prob) {
			t.Errorf("%s: NewOrder() = %v, want %s", tt.name, err, tt.prob)
		}
	}
	// Case and a trailing dot are canonicalized; duplicates merge.
	o, err := e.client.NewOrder(t.Context(), e.acct, acme.Order{Identifiers: []acme.Identifier{
		{Type: "dns", Value: "MAIL.Example.TEST."}, {Type: "dns", Value: testHost}, {Type: "srvname", Value: "_IMAPS.mail.example.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []acme.Identifier{{Type: "dns", Value: testHost}, {Type: "srvname", Value: "_imaps." + testHost}}
	if !slices.Equal(o.Identifiers, want) {
		t.Errorf("identifiers %v, want %v", o.Identifiers, want)
	}
}

// TestServerBadCerts: each bad-certificate mode spoils a server
// certificate the way it says, for RSA and EC keys.
func TestServerBadCerts(t *testing.T) {
	t.Parallel()
	for _, bad := range []BadCert{BadCertWrongSAN, BadCertNoServerAuth, BadCertNoEmailProtection, BadCertKeyUsage, BadCertForeignKey} {
		for _, kind := range []string{"rsa", "p256"} {
			t.Run(string(bad)+"/"+kind, func(t *testing.T) {
				t.Parallel()
				e := serverEnv(t, Options{BadCert: bad})
				o, chs := e.serverOrder(testHost, "imaps")
				for _, ch := range chs {
					if az := e.answer(ch, func(domain, keyAuth string) { publish(t, e.w, "_acme-challenge."+domain, dns01Value(keyAuth)) }); az.Status != "valid" {
						t.Fatalf("authorization %s", az.Status)
					}
				}
				key := mustKey(t, kind)
				leaf, _, err := e.finalizeServer(o, key, []string{testHost}, nil)
				if err != nil {
					t.Fatal(err)
				}
				_, isRSA := key.(*rsa.PrivateKey)
				names := slices.Equal(leaf.DNSNames, []string{testHost}) && slices.Equal(srvNamesOf(t, leaf), []string{"_imaps." + testHost})
				serverAuth := slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
				ku := leaf.KeyUsage == wantKeyUsage(key.Public())
				ownKey := sameKey(leaf.PublicKey, key.Public())
				switch bad {
				case BadCertWrongSAN:
					if names || !slices.Equal(leaf.DNSNames, []string{"mallory.example.test"}) || !serverAuth || !ku || !ownKey {
						t.Errorf("dNSNames %q, want only the name changed to mallory.example.test", leaf.DNSNames)
					}
				case BadCertNoServerAuth, BadCertNoEmailProtection:
					if slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !names || !ku || !ownKey {
						t.Errorf("EKU %v, want no serverAuth and the rest right", leaf.ExtKeyUsage)
					}
				case BadCertKeyUsage:
					unfit := leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0
					if !isRSA {
						unfit = leaf.KeyUsage&x509.KeyUsageKeyEncipherment != 0
					}
					if !unfit || !names || !serverAuth || !ownKey {
						t.Errorf("keyUsage %b for %s, want one unfit for the key", leaf.KeyUsage, kind)
					}
				case BadCertForeignKey:
					if ownKey || !names || !serverAuth {
						t.Errorf("the certificate is for the CSR's key")
					}
				}
			})
		}
	}
}

// TestCheckServerCSR: the CA's CSR policy for server orders.
func TestCheckServerCSR(t *testing.T) {
	t.Parallel()
	idents := []identifier{{Type: "dns", Value: testHost}, {Type: "srvname", Value: "_imaps." + testHost}}
	ec, rsaKey := mustKey(t, "p256"), mustKey(t, "rsa")
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	csr := func(key crypto.Signer, mutate func(*x509.CertificateRequest)) []byte {
		tmpl := &x509.CertificateRequest{DNSNames: []string{testHost}}
		if mutate != nil {
			mutate(tmpl)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	withExt := func(id asn1.ObjectIdentifier, v any) func(*x509.CertificateRequest) {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return func(r *x509.CertificateRequest) {
			r.ExtraExtensions = append(r.ExtraExtensions, pkix.Extension{Id: id, Value: b})
		}
	}
	san := func(hosts, srv []string) func(*x509.CertificateRequest) {
		b, err := marshalServerSAN(hosts, srv)
		if err != nil {
			t.Fatal(err)
		}
		return func(r *x509.CertificateRequest) {
			r.DNSNames = nil
			r.ExtraExtensions = append(r.ExtraExtensions, pkix.Extension{Id: oidExtSubjectAltName, Value: b})
		}
	}
	kuExt := func(ku x509.KeyUsage) func(*x509.CertificateRequest) {
		return func(r *x509.CertificateRequest) { r.ExtraExtensions = append(r.ExtraExtensions, kuExtension(t, ku)) }
	}
	for _, tt := range []struct {
		name string
		der  []byte
		ok   bool
		ku   x509.KeyUsage
	}{
		{"plain EC", csr(ec, nil), true, x509.KeyUsageDigitalSignature},
		{"plain RSA", csr(rsaKey, nil), true, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{"Ed25519", csr(edKey, nil), true, x509.KeyUsageDigitalSignature},
		{"upper case and CN", csr(ec, func(r *x509.CertificateRequest) {
			r.DNSNames = []string{"MAIL.example.test"}
			r.Subject.CommonName = testHost
		}), true, x509.KeyUsageDigitalSignature},
		{"with SRVName", csr(ec, san([]string{testHost}, []string{"_imaps." + testHost})), true, x509.KeyUsageDigitalSignature},
		{"serverAuth asked", csr(ec, withExt(oidExtExtKeyUsage, []asn1.ObjectIdentifier{oidEKUServerAuth})), true, x509.KeyUsageDigitalSignature},
		{"RSA keyEncipherment asked", csr(rsaKey, kuExt(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment)), true, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{"EC keyEncipherment asked", csr(ec, kuExt(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment)), false, 0},
		{"keyCertSign asked", csr(ec, kuExt(x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign)), false, 0},
		{"another host", csr(ec, func(r *x509.CertificateRequest) { r.DNSNames = append(r.DNSNames, "other.example.test") }), false, 0},
		{"no host", csr(ec, func(r *x509.CertificateRequest) { r.DNSNames = nil }), false, 0},
		{"wrong SRVName", csr(ec, san([]string{testHost}, []string{"_imap." + testHost})), false, 0},
		{"email SAN", csr(ec, func(r *x509.CertificateRequest) { r.EmailAddresses = []string{"a@example.test"} }), false, 0},
		{"clientAuth", csr(ec, withExt(oidExtExtKeyUsage, []asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 2}})), false, 0},
		{"other CN", csr(ec, func(r *x509.CertificateRequest) { r.Subject.CommonName = "other.example.test" }), false, 0},
		{"account key", csr(rsaKey, nil), false, 0},
	} {
		acct := mustKey(t, "p256").Public()
		if tt.name == "account key" {
			acct = rsaKey.Public()
		}
		req, prob := checkServerCSR(tt.der, idents, acct)
		if (prob == nil) != tt.ok {
			t.Errorf("%s: problem %v, want ok %v", tt.name, prob, tt.ok)
			continue
		}
		if prob != nil {
			if prob.Type != probBadCSR {
				t.Errorf("%s: problem type %s", tt.name, prob.Type)
			}
			continue
		}
		if req.keyUsage != tt.ku || !req.server || !slices.Equal(req.dnsNames, []string{testHost}) || !slices.Equal(req.srvNames, []string{"_imaps." + testHost}) {
			t.Errorf("%s: request %+v", tt.name, req)
		}
	}
}

func FuzzCheckServerCSR(f *testing.F) {
	key := mustKeyF(f)
	for _, tmpl := range []*x509.CertificateRequest{
		{DNSNames: []string{testHost}},
		{DNSNames: []string{testHost, "x.example.test"}, EmailAddresses: []string{"a@b.test"}},
	} {
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	san, _ := marshalServerSAN([]string{testHost}, []string{"_imaps." + testHost})
	f.Add(san)
	idents := []identifier{{Type: "dns", Value: testHost}, {Type: "srvname", Value: "_imaps." + testHost}}
	f.Fuzz(func(t *testing.T, der []byte) {
		req, prob := checkServerCSR(der, idents, nil)
		if (req == nil) == (prob == nil) {
			t.Fatalf("request %v and problem %v", req, prob)
		}
		if req != nil && (req.keyUsage&x509.KeyUsageDigitalSignature == 0 || !slices.Equal(req.dnsNames, []string{testHost})) {
			t.Fatalf("accepted request %+v", req)
		}
		// The SAN parser alone: what it accepts re-encodes to names it
		// reads back the same.
		if hosts, srvs, err := parseServerSAN(der); err == nil {
			for _, s := range srvs {
				if !strings.HasPrefix(s, "_") || !strings.Contains(s, ".") {
					t.Fatalf("accepted SRVName %q", s)
				}
			}
			enc, err := marshalServerSAN(hosts, srvs)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			h2, s2, err := parseServerSAN(enc)
			if err != nil || !slices.Equal(h2, hosts) || !slices.Equal(s2, srvs) {
				t.Fatalf("round trip: %q %q %v, want %q %q", h2, s2, err, hosts, srvs)
			}
		}
	})
}

func mustKeyF(f *testing.F) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	return k
}

// TestServerRenewalReplaces: a server certificate is renewed the ARI way:
// renewalInfo answers for it, an order with "replaces" is accepted once,
// and the CA records the replacement; revocation works as for S/MIME.
func TestServerRenewalReplaces(t *testing.T) {
	t.Parallel()
	e := serverEnv(t, Options{})
	issue := func(replaces string) *x509.Certificate {
		t.Helper()
		ids := []acme.Identifier{{Type: "dns", Value: testHost}}
		o, err := e.client.NewOrder(t.Context(), e.acct, acme.Order{Identifiers: ids, Replaces: replaces})
		if err != nil {
			t.Fatalf("NewOrder(replaces %q) = %v", replaces, err)
		}
		az, err := e.client.GetAuthorization(t.Context(), e.acct, o.Authorizations[0])
		if err != nil {
			t.Fatal(err)
		}
		if got := e.answer(az.Challenges[0], func(domain, keyAuth string) { publish(t, e.w, "_acme-challenge."+domain, dns01Value(keyAuth)) }); got.Status != "valid" {
			t.Fatalf("authorization %s", got.Status)
		}
		leaf, _, err := e.finalizeServer(o, mustKey(t, "p256"), []string{testHost}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	first := issue("")
	if code, _, body := getRenewalInfo(t, e, certID(first)); code != http.StatusOK || body["suggestedWindow"]["start"] == "" {
		t.Errorf("renewalInfo = %d %v", code, body)
	}
	second := issue(certID(first))
	st, ok := e.w.Certificate(first.SerialNumber.Text(16))
	if !ok || st.ReplacedBy != second.SerialNumber.Text(16) || !slices.Equal(st.DNSNames, []string{testHost}) {
		t.Errorf("Certificate(first) = %+v, want replaced by %s", st, second.SerialNumber.Text(16))
	}
	if _, err := e.client.NewOrder(t.Context(), e.acct, acme.Order{Identifiers: []acme.Identifier{{Type: "dns", Value: testHost}}, Replaces: certID(first)}); err == nil {
		t.Errorf("a second order replacing the same certificate was accepted")
	}
	if err := e.client.RevokeCertificate(t.Context(), e.acct, second, e.acct.PrivateKey, 4); err != nil {
		t.Fatalf("RevokeCertificate() = %v", err)
	}
	if st, _ := e.w.Certificate(second.SerialNumber.Text(16)); !st.Revoked || st.RevocationReason != 4 {
		t.Errorf("after revocation: %+v", st)
	}
}
