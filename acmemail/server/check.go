package server

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/acmemail/acmemail/acmemail"
)

// RefusedError is a certificate the CA issued that [Check] refused. It is
// acmemail.ErrCertificateRefused to errors.Is (exit status 5).
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string {
	return "the CA's certificate was refused (nothing is saved): " + e.Reason
}
func (e *RefusedError) Is(target error) bool { return target == acmemail.ErrCertificateRefused }

func refused(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// Names are the subjectAltNames of a certificate, by kind.
type Names struct {
	DNS []string // dNSName
	SRV []string // SRVName otherName, as "_service.host"
	// Other describes each name of another kind (rfc822Name, IP address,
	// URI, another otherName), which a server certificate must not have.
	Other []string
}

// ParseNames reads the subjectAltName of cert, otherNames included (which
// crypto/x509 skips).
func ParseNames(cert *x509.Certificate) (Names, error) {
	var n Names
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		var seq asn1.RawValue
		rest, err := asn1.Unmarshal(ext.Value, &seq)
		if err != nil || len(rest) != 0 || seq.Tag != asn1.TagSequence {
			return n, errors.New("the subjectAltName extension does not parse")
		}
		data := seq.Bytes
		for len(data) > 0 {
			var gn asn1.RawValue
			if data, err = asn1.Unmarshal(data, &gn); err != nil {
				return n, fmt.Errorf("a subjectAltName does not parse: %w", err)
			}
			if gn.Class != asn1.ClassContextSpecific {
				return n, errors.New("a subjectAltName is not a GeneralName")
			}
			switch gn.Tag {
			case 2:
				n.DNS = append(n.DNS, string(gn.Bytes))
			case 0:
				var typ asn1.ObjectIdentifier
				r, err := asn1.Unmarshal(gn.Bytes, &typ)
				if err != nil {
					return n, fmt.Errorf("an otherName does not parse: %w", err)
				}
				if !typ.Equal(OIDSRVName) {
					n.Other = append(n.Other, "otherName "+typ.String())
					continue
				}
				var wrap asn1.RawValue
				if _, err := asn1.Unmarshal(r, &wrap); err != nil || wrap.Class != asn1.ClassContextSpecific || wrap.Tag != 0 {
					return n, errors.New("an SRVName does not parse")
				}
				var v asn1.RawValue
				if _, err := asn1.Unmarshal(wrap.Bytes, &v); err != nil || v.Tag != asn1.TagIA5String {
					return n, errors.New("an SRVName is not an IA5String")
				}
				n.SRV = append(n.SRV, string(v.Bytes))
			case 1:
				n.Other = append(n.Other, "rfc822Name "+string(gn.Bytes))
			case 6:
				n.Other = append(n.Other, "URI "+string(gn.Bytes))
			case 7:
				n.Other = append(n.Other, "IP address")
			default:
				n.Other = append(n.Other, fmt.Sprintf("a name of kind [%d]", gn.Tag))
			}
		}
	}
	return n, nil
}

// notBeforeSkew is how far in the future a new certificate's notBefore
// may be: clocks differ.
const notBeforeSkew = time.Hour

// Check decides whether the chain the CA issued (leaf first) is a server
// certificate for host and services with the key pub: the leaf's key is
// pub; it is valid now; its subjectAltName is exactly the dNSName host and the SRVName of
// each service (compared case-insensitively), nothing else; its extended
// key usage includes serverAuth; its key usage includes
// digitalSignature, and not keyEncipherment on an EC key; and the chain
// verifies for serverAuth to roots (nil: each certificate is signed by the
// next). Errors are *RefusedError.
func Check(chain []*x509.Certificate, pub crypto.PublicKey, host string, services []string, roots *x509.CertPool) error {
	if len(chain) == 0 {
		return refused("no certificate")
	}
	leaf := chain[0]
	// A TLS client refuses a certificate outside its validity period;
	// installing one would replace a working certificate. A notBefore
	// ahead of this clock by up to notBeforeSkew is taken for clock skew.
	if now := time.Now(); !now.Before(leaf.NotAfter) {
		return refused("it expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	} else if leaf.NotBefore.After(now.Add(notBeforeSkew)) {
		return refused("it is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if k, ok := pub.(equaler); !ok || !k.Equal(leaf.PublicKey) {
		return refused("it is not for our key")
	}
	names, err := ParseNames(leaf)
	if err != nil {
		return refused("%v", err)
	}
	if len(names.Other) > 0 {
		return refused("it names %s, which a mail server's certificate must not", strings.Join(names.Other, ", "))
	}
	want := []string{strings.ToLower(host)}
	for _, s := range services {
		want = append(want, strings.ToLower(SRVName(s, host)))
	}
	var got []string
	for _, d := range names.DNS {
		got = append(got, strings.ToLower(d))
	}
	for _, s := range names.SRV {
		got = append(got, strings.ToLower(s))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return refused("its names are [%s], not the [%s] asked for", strings.Join(got, " "), strings.Join(want, " "))
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return refused("it lacks the serverAuth extended key usage (TLS clients would reject it)")
	}
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return refused("its key usage lacks digitalSignature (TLS needs it)")
	}
	if _, ec := leaf.PublicKey.(*ecdsa.PublicKey); ec && leaf.KeyUsage&x509.KeyUsageKeyEncipherment != 0 {
		return refused("its key usage has keyEncipherment for an EC key, which cannot encipher keys")
	}
	if roots != nil {
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, CurrentTime: leaf.NotBefore.Add(time.Second)}); err != nil {
			return refused("the chain does not verify to the CA's roots: %v", err)
		}
		return nil
	}
	for i := 0; i+1 < len(chain); i++ {
		if !bytes.Equal(chain[i].RawIssuer, chain[i+1].RawSubject) || chain[i].CheckSignatureFrom(chain[i+1]) != nil {
			return refused("certificate %d of the chain is not signed by the next", i+1)
		}
	}
	return nil
}

func sortStrings(s []string) { slices.Sort(s) }

// parsePEMChain parses a PEM chain, leaf first; any block other than a
// certificate is an error.
func parsePEMChain(data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q in the chain", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("no certificate in the chain")
	}
	return chain, nil
}
