package sandbox

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

var (
	oidExtKeyUsage        = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtSubjectAltName  = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidExtExtKeyUsage     = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidEKUEmailProtection = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 4}
	oidEmailAddressAttr   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	oidSmtpUTF8Mailbox    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 9}
)

// extensionNames names extensions that CSR tools commonly add, for error
// details.
var extensionNames = map[string]string{
	"2.5.29.14":              "subjectKeyIdentifier",
	"2.5.29.19":              "basicConstraints",
	"2.5.29.31":              "cRLDistributionPoints",
	"2.5.29.32":              "certificatePolicies",
	"2.5.29.35":              "authorityKeyIdentifier",
	"1.3.6.1.5.5.7.1.1":      "authorityInfoAccess",
	"1.3.6.1.5.5.7.1.24":     "tlsFeature",
	"1.2.840.113549.1.9.15":  "sMIMECapabilities",
	"2.16.840.1.113730.1.1":  "netscapeCertType",
	"2.16.840.1.113730.1.13": "netscapeComment",
}

var generalNameTags = map[int]string{
	0: "otherName",
	2: "dNSName",
	3: "x400Address",
	4: "directoryName",
	5: "ediPartyName",
	6: "uniformResourceIdentifier",
	7: "iPAddress",
	8: "registeredID",
}

var keyUsageNames = []struct {
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
	{x509.KeyUsageEncipherOnly, "encipherOnly"},
	{x509.KeyUsageDecipherOnly, "decipherOnly"},
}

// certRequest is a CSR that passed checkCSR or checkServerCSR.
type certRequest struct {
	pub      crypto.PublicKey
	emails   []string // the order's identifiers, in order
	keyUsage x509.KeyUsage

	server   bool     // a server certificate (checkServerCSR)
	dnsNames []string // its dns identifiers, in order
	srvNames []string // its srvname identifiers, in order
}

// checkCSR applies this CA's CSR policy: a valid self-signature with a
// current algorithm, an acceptable key that is not the account key, exactly
// the order's identifiers as rfc822Name SANs, no extensions other than
// keyUsage, subjectAltName and extKeyUsage (emailProtection), and a subject
// that names nothing but the identifiers.
func checkCSR(der []byte, identifiers []string, accountKey crypto.PublicKey) (*certRequest, *problem) {
	bad := func(format string, args ...any) (*certRequest, *problem) {
		return nil, newProblem(probBadCSR, format, args...)
	}
	csr, prob := parseCSR(der, accountKey)
	if prob != nil {
		return nil, prob
	}

	var (
		req     = &certRequest{pub: csr.PublicKey}
		kuSet   bool
		sanSeen bool
		emails  []string
		seen    = map[string]bool{}
	)
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
			if p := checkKeyUsage(ku, csr.PublicKey); p != nil {
				return nil, p
			}
			req.keyUsage, kuSet = ku, true
		case ext.Id.Equal(oidExtSubjectAltName):
			sanSeen = true
			names, other, err := parseSANEmails(ext.Value)
			if err != nil {
				return bad("cannot parse the CSR's subjectAltName extension: %v", err)
			}
			if other != "" {
				return bad("the CSR's subjectAltName has a %s; this CA issues S/MIME certificates with rfc822Name SANs only", other)
			}
			emails = names
		case ext.Id.Equal(oidExtExtKeyUsage):
			var oids []asn1.ObjectIdentifier
			if rest, err := asn1.Unmarshal(ext.Value, &oids); err != nil || len(rest) > 0 || len(oids) == 0 {
				return bad("cannot parse the CSR's extKeyUsage extension")
			}
			for _, o := range oids {
				if !o.Equal(oidEKUEmailProtection) {
					return bad("the CSR's extKeyUsage asks for %s; only emailProtection (1.3.6.1.5.5.7.3.4) is allowed", o)
				}
			}
		default:
			return bad("the CSR asks for the %s extension; this CA accepts only keyUsage, subjectAltName and extKeyUsage (emailProtection)", extName(ext.Id))
		}
	}
	if !sanSeen || len(emails) == 0 {
		return bad("the CSR has no rfc822Name subjectAltName; RFC 8823 requires the address in a subjectAltName extension request")
	}

	want := map[string]bool{}
	for _, id := range identifiers {
		want[id] = true
	}
	isIdentifier := func(s string) bool {
		canon, p := canonicalAddress(s)
		return p == nil && want[canon]
	}
	got := map[string]bool{}
	for _, e := range emails {
		canon, p := canonicalAddress(e)
		if p != nil {
			return bad("the CSR's subjectAltName %q is not a valid address: %s", e, p.Detail)
		}
		if !want[canon] {
			return bad("the CSR asks for %s, which is not an identifier of this order (%s)", canon, strings.Join(identifiers, ", "))
		}
		got[canon] = true
	}
	for _, id := range identifiers {
		if !got[id] {
			return bad("the CSR does not ask for %s; its subjectAltNames must be exactly the order's identifiers", id)
		}
	}
	if cn := csr.Subject.CommonName; cn != "" && !isIdentifier(cn) {
		return bad("the CSR's subject commonName %q is not an identifier of this order; leave it empty or set it to the address", cn)
	}
	for _, atv := range csr.Subject.Names {
		if atv.Type.Equal(oidEmailAddressAttr) {
			v, _ := atv.Value.(string)
			if !isIdentifier(v) {
				return bad("the CSR's subject emailAddress %q is not an identifier of this order", v)
			}
		}
	}

	if !kuSet {
		req.keyUsage = defaultKeyUsage(csr.PublicKey)
	}
	req.emails = slices.Clone(identifiers)
	return req, nil
}

// parseCSR checks what every CSR needs: it parses, its self-signature is
// valid and made with a current algorithm, its key is acceptable and not
// the account key.
func parseCSR(der []byte, accountKey crypto.PublicKey) (*x509.CertificateRequest, *problem) {
	bad := func(format string, args ...any) (*x509.CertificateRequest, *problem) {
		return nil, newProblem(probBadCSR, format, args...)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return bad("cannot parse the CSR: %v", err)
	}
	switch csr.SignatureAlgorithm {
	case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS,
		x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512, x509.PureEd25519:
	default:
		return bad("the CSR is signed with %v, which this CA does not accept; use SHA-256 or better", csr.SignatureAlgorithm)
	}
	if err := csr.CheckSignature(); err != nil {
		return bad("the CSR signature is invalid: %v", err)
	}

	switch pub := csr.PublicKey.(type) {
	case *rsa.PublicKey:
		if n := pub.N.BitLen(); n < 2048 || n > 8192 {
			return bad("the CSR has a %d-bit RSA key; this CA accepts 2048 to 8192 bits", n)
		}
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return bad("the CSR has an ECDSA key on an unsupported curve; use P-256, P-384 or P-521")
		}
	case ed25519.PublicKey:
	default:
		return bad("the CSR has an unsupported %T key; use RSA, ECDSA or Ed25519", pub)
	}
	if sameKey(csr.PublicKey, accountKey) {
		return bad("the CSR's public key is the ACME account key; the certificate needs a key of its own")
	}
	return csr, nil
}

// defaultKeyUsage is what the CA issues when the CSR has no keyUsage: a
// certificate for both signing and encryption (RFC 8823 §3.3).
func defaultKeyUsage(pub crypto.PublicKey) x509.KeyUsage {
	switch pub.(type) {
	case *rsa.PublicKey:
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	case *ecdsa.PublicKey:
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement
	}
	return x509.KeyUsageDigitalSignature
}

func checkKeyUsage(ku x509.KeyUsage, pub crypto.PublicKey) *problem {
	if ku == 0 {
		return newProblem(probBadCSR, "the CSR's keyUsage extension has no bits set")
	}
	var allowed x509.KeyUsage
	var kind string
	switch pub.(type) {
	case *rsa.PublicKey:
		kind = "an RSA"
		allowed = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment
	case *ecdsa.PublicKey:
		kind = "an ECDSA"
		allowed = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyAgreement | x509.KeyUsageEncipherOnly | x509.KeyUsageDecipherOnly
	default:
		kind = "an Ed25519"
		allowed = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	}
	for _, n := range keyUsageNames {
		if ku&n.bit == 0 || allowed&n.bit != 0 {
			continue
		}
		switch n.bit {
		case x509.KeyUsageCertSign, x509.KeyUsageCRLSign:
			return newProblem(probBadCSR, "the CSR asks for %s, which only CA certificates may have", n.name)
		case x509.KeyUsageKeyEncipherment:
			return newProblem(probBadCSR, "the CSR asks for keyEncipherment, which %s key cannot do; ask for keyAgreement for an encryption certificate (RFC 8823 §3.3)", kind)
		case x509.KeyUsageKeyAgreement:
			return newProblem(probBadCSR, "the CSR asks for keyAgreement, which %s key cannot do; ask for keyEncipherment for an encryption certificate (RFC 8823 §3.3)", kind)
		}
		return newProblem(probBadCSR, "the CSR asks for %s, which %s key cannot have", n.name, kind)
	}
	if ku&(x509.KeyUsageEncipherOnly|x509.KeyUsageDecipherOnly) != 0 && ku&x509.KeyUsageKeyAgreement == 0 {
		return newProblem(probBadCSR, "the CSR asks for encipherOnly or decipherOnly without keyAgreement")
	}
	return nil
}

func parseKeyUsage(val []byte) (x509.KeyUsage, error) {
	var bs asn1.BitString
	rest, err := asn1.Unmarshal(val, &bs)
	if err != nil {
		return 0, err
	}
	if len(rest) > 0 {
		return 0, fmt.Errorf("trailing data")
	}
	var ku x509.KeyUsage
	for i := 0; i < 9; i++ {
		if bs.At(i) != 0 {
			ku |= 1 << uint(i)
		}
	}
	for i := 9; i < bs.BitLength; i++ {
		if bs.At(i) != 0 {
			return 0, fmt.Errorf("unknown key usage bit %d", i)
		}
	}
	return ku, nil
}

// parseSANEmails returns the rfc822Names of a subjectAltName extension and
// the name of the first other GeneralName form it finds.
func parseSANEmails(val []byte) (emails []string, other string, err error) {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(val, &seq)
	if err != nil {
		return nil, "", err
	}
	if len(rest) > 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, "", fmt.Errorf("not a sequence of GeneralNames")
	}
	rest = seq.Bytes
	for len(rest) > 0 {
		var gn asn1.RawValue
		rest, err = asn1.Unmarshal(rest, &gn)
		if err != nil {
			return nil, "", err
		}
		if gn.Class != asn1.ClassContextSpecific {
			return nil, "", fmt.Errorf("GeneralName with a non-context-specific tag")
		}
		if gn.Tag == 0 {
			addr, isMailbox, err := parseSmtpUTF8Mailbox(gn)
			if err != nil {
				return nil, "", err
			}
			if isMailbox {
				emails = append(emails, addr)
				continue
			}
		}
		if gn.Tag != 1 {
			name, ok := generalNameTags[gn.Tag]
			if !ok {
				name = fmt.Sprintf("GeneralName [%d]", gn.Tag)
			}
			if other == "" {
				other = name
			}
			continue
		}
		for _, c := range gn.Bytes {
			if c >= 0x80 {
				return nil, "", fmt.Errorf("rfc822Name is not IA5String")
			}
		}
		emails = append(emails, string(gn.Bytes))
	}
	return emails, other, nil
}

// parseSmtpUTF8Mailbox decodes an otherName GeneralName; isMailbox is
// false for other type-ids. An SmtpUTF8Mailbox must hold a UTF8String
// with a non-ASCII local part (RFC 9598 §3: all-ASCII addresses are
// rfc822Names).
func parseSmtpUTF8Mailbox(gn asn1.RawValue) (addr string, isMailbox bool, err error) {
	var oid asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(gn.Bytes, &oid)
	if err != nil {
		return "", false, fmt.Errorf("otherName: %v", err)
	}
	if !oid.Equal(oidSmtpUTF8Mailbox) {
		return "", false, nil
	}
	var v asn1.RawValue
	if rest, err = asn1.Unmarshal(rest, &v); err != nil || len(rest) > 0 || v.Class != asn1.ClassContextSpecific || v.Tag != 0 || !v.IsCompound {
		return "", true, fmt.Errorf("SmtpUTF8Mailbox: no [0] EXPLICIT value")
	}
	var s string
	if rest, err = asn1.UnmarshalWithParams(v.Bytes, &s, "utf8"); err != nil || len(rest) > 0 {
		return "", true, fmt.Errorf("SmtpUTF8Mailbox is not a UTF8String")
	}
	if !internationalLocal(s) {
		return "", true, fmt.Errorf("SmtpUTF8Mailbox %q has an ASCII local part; it belongs in an rfc822Name (RFC 9598)", s)
	}
	return s, true, nil
}

// marshalSAN encodes a subjectAltName for canonical addresses: an
// rfc822Name for an ASCII local part, an SmtpUTF8Mailbox otherName
// (domain in U-labels, RFC 9598 §3) for a non-ASCII one.
func marshalSAN(emails []string) ([]byte, error) {
	var names []asn1.RawValue
	for _, e := range emails {
		if !internationalLocal(e) {
			names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte(e)})
			continue
		}
		local, domain := splitAddress(e)
		if u, err := idna.Lookup.ToUnicode(domain); err == nil {
			domain = u
		}
		str, err := asn1.MarshalWithParams(local+"@"+domain, "utf8")
		if err != nil {
			return nil, err
		}
		oid, err := asn1.Marshal(oidSmtpUTF8Mailbox)
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

func extName(id asn1.ObjectIdentifier) string {
	if n, ok := extensionNames[id.String()]; ok {
		return n + " (" + id.String() + ")"
	}
	return id.String()
}

func sameKey(a, b crypto.PublicKey) bool {
	if a == nil || b == nil {
		return false
	}
	da, err1 := x509.MarshalPKIXPublicKey(a)
	db, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(da, db)
}

// issue signs a leaf certificate for req with the intermediate and returns
// the chain (leaf, intermediate) in DER.
// With bad set, the certificate is spoiled that way (see [BadCert]).
func (p *pki) issue(req *certRequest, lifetime time.Duration, bad BadCert) ([][]byte, *x509.Certificate, error) {
	if req.server {
		return p.issueServer(req, lifetime, bad)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	notAfter := now.Add(lifetime)
	if notAfter.After(p.inter.NotAfter) {
		notAfter = p.inter.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.emails[0]},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              req.keyUsage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		BasicConstraintsValid: true,
		EmailAddresses:        req.emails,
		SubjectKeyId:          keyID(req.pub),
		AuthorityKeyId:        p.inter.SubjectKeyId,
	}
	if slices.ContainsFunc(req.emails, internationalLocal) {
		san, err := marshalSAN(req.emails)
		if err != nil {
			return nil, nil, fmt.Errorf("encode subjectAltName: %w", err)
		}
		tmpl.EmailAddresses = nil
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidExtSubjectAltName, Value: san}}
	}
	pub, err := bad.spoil(tmpl, req.pub)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.inter, pub, p.interKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return [][]byte{der, p.inter.Raw}, leaf, nil
}
