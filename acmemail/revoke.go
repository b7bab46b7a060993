package acmemail

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"strings"
)

// Revocation reasons (RFC 5280 CRLReason) that CAs commonly accept.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
)

var reasonNames = []struct {
	name string
	code int
}{
	{"unspecified", ReasonUnspecified},
	{"keyCompromise", ReasonKeyCompromise},
	{"affiliationChanged", ReasonAffiliationChanged},
	{"superseded", ReasonSuperseded},
	{"cessationOfOperation", ReasonCessationOfOperation},
}

// RevocationReasonNames lists the reasons ParseRevocationReason accepts.
func RevocationReasonNames() []string {
	var out []string
	for _, r := range reasonNames {
		out = append(out, r.name)
	}
	return out
}

// ParseRevocationReason maps a reason name (case-insensitive, as in RFC
// 5280: keyCompromise, superseded, ...) to its CRLReason code.
func ParseRevocationReason(name string) (int, error) {
	for _, r := range reasonNames {
		if strings.EqualFold(name, r.name) {
			return r.code, nil
		}
	}
	return 0, fmt.Errorf("unknown revocation reason %q (choose %s)", name, strings.Join(RevocationReasonNames(), ", "))
}

// RevocationReasonName is the name of a CRLReason code.
func RevocationReasonName(code int) string {
	for _, r := range reasonNames {
		if r.code == code {
			return r.name
		}
	}
	return fmt.Sprintf("reason %d", code)
}

// Revoke asks the CA to revoke cert. With certKey nil the request is
// signed by the account key (AccountURL must be set: the account the
// certificate was issued to, or one with authority over its identifiers);
// otherwise by certKey, the certificate's own key.
func (c *Client) Revoke(ctx context.Context, cert *x509.Certificate, reason int, certKey crypto.Signer) error {
	if err := c.init(ctx); err != nil {
		return err
	}
	if certKey == nil && c.account.Location == "" {
		return fmt.Errorf("revoke the certificate %s: no ACME account is known for %s; revoke with the certificate's key instead", FormatSerial(cert.SerialNumber), c.DirectoryURL)
	}
	err := c.acme.RevokeCertificate(ctx, c.account, cert, certKey, reason)
	return fromACME("revoke the certificate "+FormatSerial(cert.SerialNumber), err)
}
