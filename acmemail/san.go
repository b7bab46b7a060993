package acmemail

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// OIDSmtpUTF8Mailbox is id-on-SmtpUTF8Mailbox (RFC 9598, formerly RFC
// 8398): the otherName that carries an email address with a non-ASCII
// local part in a subjectAltName.
var OIDSmtpUTF8Mailbox = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 9}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// GeneralName tags (RFC 5280 §4.2.1.6).
const (
	sanTagOtherName = 0
	sanTagRFC822    = 1
)

var sanTagNames = map[int]string{
	0: "otherName", 2: "dNSName", 3: "x400Address", 4: "directoryName",
	5: "ediPartyName", 6: "uniformResourceIdentifier", 7: "iPAddress", 8: "registeredID",
}

// marshalEmailSAN encodes the subjectAltName extension value for the
// normalized addresses emails: an rfc822Name (domain in A-labels) for an
// ASCII local part, an SmtpUTF8Mailbox otherName (UTF8String, domain in
// U-labels, RFC 9598 §3) for a non-ASCII one.
func marshalEmailSAN(emails []string) ([]byte, error) {
	names := make([]asn1.RawValue, 0, len(emails))
	for _, e := range emails {
		if !IsInternationalized(e) {
			names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: sanTagRFC822, Bytes: []byte(e)})
			continue
		}
		at := strings.LastIndexByte(e, '@')
		value := e[:at] + "@" + addrDomainUnicode(e[at+1:])
		utf8Str, err := asn1.MarshalWithParams(value, "utf8")
		if err != nil {
			return nil, err
		}
		// value [0] EXPLICIT UTF8String
		explicit, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: utf8Str})
		if err != nil {
			return nil, err
		}
		oid, err := asn1.Marshal(OIDSmtpUTF8Mailbox)
		if err != nil {
			return nil, err
		}
		// otherName [0] IMPLICIT OtherName ::= SEQUENCE { type-id, value }
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: sanTagOtherName, IsCompound: true,
			Bytes: append(oid, explicit...)})
	}
	return asn1.Marshal(names)
}

// SANEmails are the names of a subjectAltName extension, as
// [ParseSANEmails] found them.
type SANEmails struct {
	// Emails are the rfc822Names and SmtpUTF8Mailbox otherNames, in
	// order, normalized as [NormalizeAddress] does (domains in lowercase
	// A-labels), so that they compare with the requested addresses.
	Emails []string
	// Others names every other GeneralName form found, such as
	// "dNSName" or "otherName 1.2.3".
	Others []string
}

// ParseSANEmails decodes a subjectAltName extension value (DER). Email
// names that are not valid addresses are an error: a certificate that
// holds one is not for the addresses that were asked for.
func ParseSANEmails(der []byte) (SANEmails, error) {
	var out SANEmails
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil {
		return out, fmt.Errorf("subjectAltName: %w", err)
	}
	if len(rest) > 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return out, errors.New("subjectAltName: not a SEQUENCE of GeneralNames")
	}
	rest = seq.Bytes
	for len(rest) > 0 {
		var gn asn1.RawValue
		if rest, err = asn1.Unmarshal(rest, &gn); err != nil {
			return out, fmt.Errorf("subjectAltName: %w", err)
		}
		if gn.Class != asn1.ClassContextSpecific {
			return out, errors.New("subjectAltName: a GeneralName without a context-specific tag")
		}
		switch gn.Tag {
		case sanTagRFC822:
			if gn.IsCompound {
				return out, errors.New("subjectAltName: a constructed rfc822Name")
			}
			if addrHasNonASCII(string(gn.Bytes)) {
				return out, errors.New("subjectAltName: an rfc822Name that is not IA5String")
			}
			n, err := NormalizeAddress(string(gn.Bytes))
			if err != nil {
				return out, fmt.Errorf("subjectAltName: rfc822Name: %w", err)
			}
			out.Emails = append(out.Emails, n)
		case sanTagOtherName:
			oid, value, err := parseOtherName(gn)
			if err != nil {
				return out, err
			}
			if !oid.Equal(OIDSmtpUTF8Mailbox) {
				out.Others = append(out.Others, "otherName "+oid.String())
				continue
			}
			var s string
			if r, err := asn1.UnmarshalWithParams(value, &s, "utf8"); err != nil || len(r) > 0 {
				return out, errors.New("subjectAltName: an SmtpUTF8Mailbox that is not a UTF8String")
			}
			if !utf8.ValidString(s) {
				return out, errors.New("subjectAltName: an SmtpUTF8Mailbox that is not valid UTF-8")
			}
			// Mail clients compare local parts as octets, and acmemail
			// asks only for NFC addresses: one in another form is not
			// the address that was asked for, though NormalizeAddress
			// would make it so.
			if !norm.NFC.IsNormalString(s) {
				return out, errors.New("subjectAltName: an SmtpUTF8Mailbox that is not in Unicode NFC")
			}
			n, err := NormalizeAddress(s)
			if err != nil {
				return out, fmt.Errorf("subjectAltName: SmtpUTF8Mailbox: %w", err)
			}
			out.Emails = append(out.Emails, n)
		default:
			name, ok := sanTagNames[gn.Tag]
			if !ok {
				name = fmt.Sprintf("GeneralName [%d]", gn.Tag)
			}
			out.Others = append(out.Others, name)
		}
	}
	return out, nil
}

// parseOtherName splits an otherName GeneralName into its type-id and the
// DER of its [0] EXPLICIT value.
func parseOtherName(gn asn1.RawValue) (asn1.ObjectIdentifier, []byte, error) {
	if !gn.IsCompound {
		return nil, nil, errors.New("subjectAltName: a primitive otherName")
	}
	var oid asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(gn.Bytes, &oid)
	if err != nil {
		return nil, nil, fmt.Errorf("subjectAltName: otherName type-id: %w", err)
	}
	var v asn1.RawValue
	rest, err = asn1.Unmarshal(rest, &v)
	if err != nil || len(rest) > 0 || v.Class != asn1.ClassContextSpecific || v.Tag != 0 || !v.IsCompound {
		return nil, nil, errors.New("subjectAltName: an otherName without a [0] EXPLICIT value")
	}
	return oid, v.Bytes, nil
}

// CertificateEmails returns the email names of cert's subjectAltName
// (rfc822Name and SmtpUTF8Mailbox; Go's x509 ignores the latter) and
// the other name forms it holds.
func CertificateEmails(cert *x509.Certificate) (SANEmails, error) {
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidSubjectAltName) {
			return ParseSANEmails(ext.Value)
		}
	}
	return SANEmails{}, nil
}
