package sandbox

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Server certificates (draft-ietf-acme-email-tls, as acmemail proposes
// it): "dns" identifiers validated by dns-01 (RFC 8555 §8.4), and
// "srvname" identifiers (RFC 4985 SRVName form "_service.host") validated
// by dns-service-01, whose record and digest are bound to the service and
// its port. See the README's "Server certificates" for the wire format.
const (
	identDNS     = "dns"
	identSRVName = "srvname"
	identEmail   = "email"

	challengeDNS01        = "dns-01"
	challengeDNSService01 = "dns-service-01"

	// dnsValidationTimeout bounds the CA's lookup of a challenge record.
	dnsValidationTimeout = 10 * time.Second
)

var (
	oidSRVName       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}
	oidEKUServerAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
)

// servicePorts are the mail services a srvname identifier may name, with
// the port (IANA) the CA binds its challenge to. A TLS port and its
// plaintext sibling (imaps 993, imap 143) are different services.
var servicePorts = map[string]int{
	"submissions": 465,
	"submission":  587,
	"imaps":       993,
	"imap":        143,
	"pop3s":       995,
	"pop3":        110,
	"smtp":        25,
}

// ServicePort returns the port the sandbox CA binds a dns-service-01
// challenge for service (without underscore, lower case) to.
func ServicePort(service string) (int, bool) {
	p, ok := servicePorts[service]
	return p, ok
}

// zoneFor returns the zone of zones that name is in (the longest match),
// or "".
func zoneFor(name string, zones []string) string {
	best := ""
	for _, z := range zones {
		if (name == z || strings.HasSuffix(name, "."+z)) && len(z) > len(best) {
			best = z
		}
	}
	return best
}

func isServerIdentifier(t string) bool { return t == identDNS || t == identSRVName }

// checkHostIdentifier canonicalizes the value of a "dns" identifier: a host
// name inside one of the world's zones, no wildcard, no underscore labels.
func (ca *authority) checkHostIdentifier(value string) (string, *problem) {
	if strings.HasPrefix(value, "*.") {
		return "", newProblem(probRejectedIdentifier, "%q is a wildcard; this CA issues server certificates for exact host names only", value)
	}
	host, err := canonicalHost(value)
	if err != nil {
		return "", newProblem(probRejectedIdentifier, "%v", err)
	}
	if strings.Contains(host, "_") {
		return "", newProblem(probRejectedIdentifier, "%q has an underscore label; a dns identifier is a host name (services go into srvname identifiers)", value)
	}
	if zoneFor(host, ca.zones()) == "" {
		return "", newProblem(probRejectedIdentifier, "%s is in none of the sandbox's DNS zones (%s), so no challenge record could be published; add a user in its domain or the zone first", host, strings.Join(ca.zones(), ", "))
	}
	return host, nil
}

// checkSRVNameIdentifier canonicalizes a "srvname" identifier "_service.host"
// and returns it with its service and host.
func (ca *authority) checkSRVNameIdentifier(value string) (canon, service, host string, prob *problem) {
	svc, h, ok := strings.Cut(value, ".")
	svc = strings.ToLower(svc)
	if !ok || !strings.HasPrefix(svc, "_") {
		return "", "", "", newProblem(probMalformed, "srvname identifier %q: the form is _service.host (RFC 4985 SRVName)", value)
	}
	service = svc[1:]
	if _, ok := servicePorts[service]; !ok {
		names := make([]string, 0, len(servicePorts))
		for s := range servicePorts {
			names = append(names, s)
		}
		slices.Sort(names)
		return "", "", "", newProblem(probRejectedIdentifier, "srvname identifier %q: this CA issues SRVNames for the mail services %s only", value, strings.Join(names, ", "))
	}
	host, prob = ca.checkHostIdentifier(h)
	if prob != nil {
		return "", "", "", prob
	}
	return "_" + service + "." + host, service, host, nil
}

// serverIdentifiers checks the identifiers of a server order: only dns and
// srvname identifiers, each srvname's host also as a dns identifier.
func (ca *authority) serverIdentifiers(in []identifier) ([]identifier, []*problem) {
	var out []identifier
	var subs []*problem
	seen := map[identifier]bool{}
	hosts := map[string]bool{}
	srvHosts := map[string]string{} // srvname -> host
	for _, id := range in {
		var prob *problem
		canon := identifier{Type: id.Type}
		switch id.Type {
		case identDNS:
			canon.Value, prob = ca.checkHostIdentifier(id.Value)
			hosts[canon.Value] = true
		case identSRVName:
			var host string
			canon.Value, _, host, prob = ca.checkSRVNameIdentifier(id.Value)
			srvHosts[canon.Value] = host
		case identEmail:
			prob = newProblem(probRejectedIdentifier, "an order is either for S/MIME (email identifiers) or for a server (dns and srvname identifiers), not both")
		default:
			prob = newProblem(probUnsupportedIdentifier, "identifier type %q is not supported; this CA issues server certificates for \"dns\" and \"srvname\" identifiers", id.Type)
		}
		if prob != nil {
			prob.Identifier = &id
			subs = append(subs, prob)
			continue
		}
		if !seen[canon] {
			seen[canon] = true
			out = append(out, canon)
		}
	}
	for _, id := range out {
		if h, ok := srvHosts[id.Value]; ok && id.Type == identSRVName && !hosts[h] {
			id := id
			p := newProblem(probRejectedIdentifier, "the order has the srvname %s but not the dns identifier %s: a server certificate always names its host", id.Value, h)
			p.Identifier = &id
			subs = append(subs, p)
		}
	}
	if len(out) > 0 && !slices.ContainsFunc(out, func(id identifier) bool { return id.Type == identDNS }) && len(subs) == 0 {
		subs = append(subs, newProblem(probRejectedIdentifier, "a server order needs at least one dns identifier"))
	}
	return out, subs
}

// newServerChallenge makes the challenge of a server identifier.
func (ca *authority) newServerChallenge(id identifier) (*challenge, error) {
	tok, err := newToken(43)
	if err != nil {
		return nil, err
	}
	ch := &challenge{typ: challengeDNS01, tp2: tok}
	if id.Type == identSRVName {
		svc, _, _ := strings.Cut(id.Value, ".")
		ch.typ, ch.service = challengeDNSService01, strings.TrimPrefix(svc, "_")
		ch.port = servicePorts[ch.service]
	}
	return ch, nil
}

// challengeRecord returns the owner name of a DNS challenge's TXT record
// and the value the CA expects there.
func challengeRecord(ch *challenge, ident identifier, thumbprint string) (name, value string) {
	keyAuth := ch.tp2 + "." + thumbprint
	switch ch.typ {
	case challengeDNSService01:
		_, host, _ := strings.Cut(ident.Value, ".")
		name = "_acme-challenge._" + strconv.Itoa(ch.port) + "._" + ch.service + "." + host
		keyAuth += "." + ch.service + "." + strconv.Itoa(ch.port)
	default:
		name = "_acme-challenge." + ident.Value
	}
	sum := sha256.Sum256([]byte(keyAuth))
	return name, base64.RawURLEncoding.EncodeToString(sum[:])
}

// validateDNS handles the client's POST to a dns-01 or dns-service-01
// challenge: the CA looks the record up on its own DNS server, once. The
// caller must not hold ca.mu.
func (ca *authority) validateDNS(ch *challenge) {
	ca.mu.Lock()
	if ch.status != statusPending || ch.authz.status != statusPending || ca.closed {
		ca.mu.Unlock()
		return
	}
	ch.status = statusProcessing
	ch.posted = time.Now()
	name, want := challengeRecord(ch, ch.authz.ident, ch.authz.acct.key.thumbprint)
	ca.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), dnsValidationTimeout)
	recs, found, err := ca.queryTXT(ctx, name)
	cancel()
	ca.stats.update(func(s *Stats) { s.DNSValidations++ })

	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ch.status != statusProcessing {
		return
	}
	switch {
	case err != nil:
		ca.failLocked(ch, newProblem(probDNS, "looking up the TXT record at %s failed: %v", name, err))
	case !found:
		ca.failLocked(ch, newProblem(probUnauthorized, "no TXT record at %s", name))
	case slices.ContainsFunc(recs, func(r string) bool { return subtle.ConstantTimeCompare([]byte(r), []byte(want)) == 1 }):
		ca.validLocked(ch)
		return
	default:
		detail := "base64url(SHA-256(token \".\" thumbprint))"
		if ch.typ == challengeDNSService01 {
			detail = fmt.Sprintf("base64url(SHA-256(token \".\" thumbprint \".%s.%d\")), bound to service %s and port %d", ch.service, ch.port, ch.service, ch.port)
		}
		ca.failLocked(ch, newProblem(probIncorrectResponse, "the TXT record at %s is not %s", name, detail))
	}
	ca.log.Info("challenge failed", "challenge", ch.url, "type", ch.typ, "record", name)
}

// checkServerCSR applies the CA's policy for server certificates: the CSR
// checks of every order, then exactly the order's dns identifiers as
// dNSNames (and its srvname identifiers as SRVName otherNames, or none: the
// CA adds them), extensions limited to keyUsage (digitalSignature, and
// keyEncipherment for RSA), subjectAltName and extKeyUsage serverAuth.
func checkServerCSR(der []byte, idents []identifier, accountKey crypto.PublicKey) (*certRequest, *problem) {
	bad := func(format string, args ...any) (*certRequest, *problem) {
		return nil, newProblem(probBadCSR, format, args...)
	}
	csr, prob := parseCSR(der, accountKey)
	if prob != nil {
		return nil, prob
	}
	req := &certRequest{pub: csr.PublicKey, server: true}
	for _, id := range idents {
		if id.Type == identDNS {
			req.dnsNames = append(req.dnsNames, id.Value)
		} else {
			req.srvNames = append(req.srvNames, id.Value)
		}
	}
	var dnsNames, srvNames []string
	sanSeen := false
	seen := map[string]bool{}
	for _, ext := range csr.Extensions {
		id := ext.Id.String()
		if seen[id] {
			return bad("the CSR has the extension %s twice", extName(ext.Id))
		}
		seen[id] = true
		switch {
		case ext.Id.Equal(oidExtKeyUsage):
			ku, err := parseKeyUsage(ext.Value)
			if err != nil {
				return bad("cannot parse the CSR's keyUsage extension: %v", err)
			}
			if extra := ku &^ serverKeyUsage(csr.PublicKey); extra != 0 {
				return bad("the CSR asks for keyUsage bits (%s) a %s server certificate does not get; this CA issues digitalSignature, plus keyEncipherment for RSA keys", keyUsageString(extra), keyKind(csr.PublicKey))
			}
		case ext.Id.Equal(oidExtSubjectAltName):
			sanSeen = true
			var err error
			if dnsNames, srvNames, err = parseServerSAN(ext.Value); err != nil {
				return bad("the CSR's subjectAltName: %v", err)
			}
		case ext.Id.Equal(oidExtExtKeyUsage):
			var oids []asn1.ObjectIdentifier
			if rest, err := asn1.Unmarshal(ext.Value, &oids); err != nil || len(rest) > 0 || len(oids) == 0 {
				return bad("cannot parse the CSR's extKeyUsage extension")
			}
			for _, o := range oids {
				if !o.Equal(oidEKUServerAuth) {
					return bad("the CSR's extKeyUsage asks for %s; a server certificate gets serverAuth (1.3.6.1.5.5.7.3.1) only", o)
				}
			}
		default:
			return bad("the CSR asks for the %s extension; this CA accepts only keyUsage, subjectAltName and extKeyUsage (serverAuth)", extName(ext.Id))
		}
	}
	if !sanSeen || len(dnsNames) == 0 {
		return bad("the CSR has no dNSName subjectAltName; it must ask for the order's host names (%s)", strings.Join(req.dnsNames, ", "))
	}
	canon := func(names []string, srv bool) ([]string, *problem) {
		var out []string
		for _, n := range names {
			c, err := canonicalHost(n)
			if err != nil {
				return nil, newProblem(probBadCSR, "the CSR's subjectAltName %q: %v", n, err)
			}
			if srv {
				svc, host, _ := strings.Cut(c, ".")
				c = strings.ToLower(svc) + "." + host
			}
			out = append(out, c)
		}
		slices.Sort(out)
		return slices.Compact(out), nil
	}
	gotDNS, p := canon(dnsNames, false)
	if p != nil {
		return nil, p
	}
	if want := sortedCopy(req.dnsNames); !slices.Equal(gotDNS, want) {
		return bad("the CSR asks for the dNSNames %s; they must be exactly the order's dns identifiers (%s)", strings.Join(gotDNS, ", "), strings.Join(want, ", "))
	}
	if len(srvNames) > 0 {
		gotSRV, p := canon(srvNames, true)
		if p != nil {
			return nil, p
		}
		if want := sortedCopy(req.srvNames); !slices.Equal(gotSRV, want) {
			return bad("the CSR asks for the SRVNames %s; they must be exactly the order's srvname identifiers (%s), or none", strings.Join(gotSRV, ", "), strings.Join(want, ", "))
		}
	}
	if cn := strings.ToLower(strings.TrimSuffix(csr.Subject.CommonName, ".")); cn != "" && !slices.Contains(req.dnsNames, cn) {
		return bad("the CSR's subject commonName %q is not a dns identifier of this order", csr.Subject.CommonName)
	}
	req.keyUsage = serverKeyUsage(csr.PublicKey)
	return req, nil
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// serverKeyUsage is the keyUsage of every server certificate: a TLS key
// signs (ECDHE), and an RSA key may also decrypt an RSA key exchange
// (TLS 1.2 and older); an EC key never gets keyEncipherment.
func serverKeyUsage(pub crypto.PublicKey) x509.KeyUsage {
	if _, ok := pub.(*rsa.PublicKey); ok {
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	return x509.KeyUsageDigitalSignature
}

func keyKind(pub crypto.PublicKey) string {
	switch pub.(type) {
	case *rsa.PublicKey:
		return "an RSA"
	case *ecdsa.PublicKey:
		return "an ECDSA"
	case ed25519.PublicKey:
		return "an Ed25519"
	}
	return fmt.Sprintf("a %T", pub)
}

func keyUsageString(ku x509.KeyUsage) string {
	var names []string
	for _, n := range keyUsageNames {
		if ku&n.bit != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ", ")
}

// parseServerSAN returns the dNSNames and SRVNames of a subjectAltName
// extension; any other GeneralName is an error.
func parseServerSAN(val []byte) (dnsNames, srvNames []string, err error) {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(val, &seq)
	if err != nil {
		return nil, nil, err
	}
	if len(rest) > 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, nil, fmt.Errorf("not a sequence of GeneralNames")
	}
	rest = seq.Bytes
	for len(rest) > 0 {
		var gn asn1.RawValue
		if rest, err = asn1.Unmarshal(rest, &gn); err != nil {
			return nil, nil, err
		}
		if gn.Class != asn1.ClassContextSpecific {
			return nil, nil, fmt.Errorf("a GeneralName with a non-context-specific tag")
		}
		switch gn.Tag {
		case 2:
			if !isASCII(string(gn.Bytes)) {
				return nil, nil, fmt.Errorf("a dNSName that is not an IA5String")
			}
			dnsNames = append(dnsNames, string(gn.Bytes))
		case 0:
			name, err := parseSRVName(gn.Bytes)
			if err != nil {
				return nil, nil, err
			}
			srvNames = append(srvNames, name)
		default:
			name, ok := generalNameTags[gn.Tag]
			if !ok {
				name = fmt.Sprintf("GeneralName [%d]", gn.Tag)
			}
			return nil, nil, fmt.Errorf("a %s; a server certificate has dNSNames and SRVNames only", name)
		}
	}
	return dnsNames, srvNames, nil
}

// parseSRVName decodes the content of an otherName GeneralName that must
// be an SRVName (RFC 4985: type-id id-on-dnsSRV, [0] EXPLICIT IA5String).
func parseSRVName(b []byte) (string, error) {
	var oid asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(b, &oid)
	if err != nil {
		return "", fmt.Errorf("otherName: %v", err)
	}
	if !oid.Equal(oidSRVName) {
		return "", fmt.Errorf("an otherName of type %s; a server certificate's otherNames are SRVNames (%s)", oid, oidSRVName)
	}
	var v asn1.RawValue
	if rest, err = asn1.Unmarshal(rest, &v); err != nil || len(rest) > 0 || v.Class != asn1.ClassContextSpecific || v.Tag != 0 || !v.IsCompound {
		return "", fmt.Errorf("SRVName: no [0] EXPLICIT value")
	}
	var s string
	if rest, err = asn1.UnmarshalWithParams(v.Bytes, &s, "ia5"); err != nil || len(rest) > 0 || s == "" {
		return "", fmt.Errorf("SRVName is not a non-empty IA5String")
	}
	if !strings.HasPrefix(s, "_") || !strings.Contains(s, ".") {
		return "", fmt.Errorf("SRVName %q is not of the form _Service.Name", s)
	}
	return s, nil
}

// marshalServerSAN encodes dNSNames and SRVName otherNames.
func marshalServerSAN(dnsNames, srvNames []string) ([]byte, error) {
	var names []asn1.RawValue
	for _, n := range dnsNames {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(n)})
	}
	for _, s := range srvNames {
		str, err := asn1.MarshalWithParams(s, "ia5")
		if err != nil {
			return nil, err
		}
		oid, err := asn1.Marshal(oidSRVName)
		if err != nil {
			return nil, err
		}
		val, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: str})
		if err != nil {
			return nil, err
		}
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, val...)})
	}
	return asn1.Marshal(names)
}

// issueServer signs a server certificate for req: CN and dNSNames the
// hosts, an SRVName per service, serverAuth, the key type's keyUsage;
// spoiled as bad says.
func (p *pki) issueServer(req *certRequest, lifetime time.Duration, bad BadCert) ([][]byte, *x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	notAfter := now.Add(lifetime)
	if notAfter.After(p.serverInter.NotAfter) {
		notAfter = p.serverInter.NotAfter
	}
	dnsNames, srvNames := slices.Clone(req.dnsNames), slices.Clone(req.srvNames)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              req.keyUsage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		SubjectKeyId:          keyID(req.pub),
		AuthorityKeyId:        p.serverInter.SubjectKeyId,
	}
	pub := req.pub
	switch bad {
	case BadCertWrongSAN:
		// Another host of the same domain instead of the first one.
		_, parent, _ := strings.Cut(dnsNames[0], ".")
		dnsNames[0] = "mallory." + parent
	case BadCertKeyUsage:
		switch req.pub.(type) {
		case *rsa.PublicKey:
			tmpl.KeyUsage = x509.KeyUsageKeyEncipherment // no digitalSignature
		case *ecdsa.PublicKey:
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		default:
			tmpl.KeyUsage = x509.KeyUsageContentCommitment // no digitalSignature
		}
	default:
		if pub, err = bad.spoil(tmpl, req.pub); err != nil {
			return nil, nil, err
		}
	}
	tmpl.Subject = pkix.Name{CommonName: dnsNames[0]}
	san, err := marshalServerSAN(dnsNames, srvNames)
	if err != nil {
		return nil, nil, fmt.Errorf("encode subjectAltName: %w", err)
	}
	tmpl.ExtraExtensions = []pkix.Extension{{Id: oidExtSubjectAltName, Value: san}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.serverInter, pub, p.serverInterKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return [][]byte{der, p.serverInter.Raw}, leaf, nil
}
