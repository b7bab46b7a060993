package issuer

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/acmemail/acmemail/acmemail"
)

// What an obtain run did with a certificate (CertResult.Action).
const (
	ActionIssued = "issued" // ordered and saved by this run
	ActionKept   = "kept"   // the current one, valid and not due: nothing was ordered or written
)

// CertResult is obtain --json's account of one certificate. Its names are
// acmemail's vocabulary (README, "Files and JSON"): certificate is
// cert.pem (the leaf alone), chain is chain.pem (the leaf, then its
// issuers), serial is as OpenSSL prints it, times are RFC 3339 in UTC,
// in whole seconds.
type CertResult struct {
	Action      string    `json:"action"` // ActionIssued or ActionKept
	Email       string    `json:"email"`
	PKCS12      string    `json:"pkcs12"`
	Certificate string    `json:"certificate"`
	Chain       string    `json:"chain"`
	Key         string    `json:"key"`
	Serial      string    `json:"serial"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	// RenewalDue is when renew renews the certificate (kept only: a new
	// one's is decided once the CA was asked for its window).
	RenewalDue   *time.Time `json:"renewal_due,omitempty"`
	KeyType      string     `json:"key_type"`
	Usage        string     `json:"usage"`
	CA           string     `json:"ca"`
	OrderURL     string     `json:"order_url,omitempty"` // issued only
	ACMERequests int64      `json:"acme_requests"`
}

// IssuedResult is the CertResult of c, issued by the run res; p12 is the
// PKCS#12 file to name (obtain's --out, if given).
func IssuedResult(res *Obtained, c *Issued, p12 string) CertResult {
	abs, err := filepath.Abs(p12)
	if err != nil {
		abs = p12
	}
	return CertResult{
		Action: ActionIssued, Email: c.Meta.Email, PKCS12: abs, Certificate: c.Paths.Leaf, Chain: c.Paths.Chain, Key: c.Paths.Key,
		Serial: acmemail.FormatSerialText(c.Meta.Serial), NotBefore: UTCSeconds(c.Meta.NotBefore), NotAfter: UTCSeconds(c.Meta.NotAfter),
		KeyType: string(c.Meta.KeyType), Usage: c.Meta.Usage, CA: res.Directory, OrderURL: c.OrderURL, ACMERequests: res.Requests,
	}
}

// Kept is the current certificate of an address that obtain keeps instead
// of ordering a new one (see Issuer.Keep).
type Kept struct {
	Status Status // the certificate; Encryption is the other of a split pair
	// RenewalDue is when renew renews it (the earlier of a pair's), and
	// Basis why then.
	RenewalDue time.Time
	Basis      string
}

// Results are the CertResults of k: one, or the signing and the
// encryption certificate of a pair.
func (k *Kept) Results() []CertResult {
	out := []CertResult{keptResult(k.Status)}
	if e := k.Status.Encryption; e != nil {
		out = append(out, keptResult(*e))
	}
	return out
}

func keptResult(s Status) CertResult {
	due := s.RenewalDue
	return CertResult{
		Action: ActionKept, Email: s.Email, PKCS12: s.Files.PKCS12, Certificate: s.Files.Certificate, Chain: s.Files.Chain, Key: s.Files.Key,
		Serial: s.Serial, NotBefore: s.NotBefore, NotAfter: s.NotAfter, RenewalDue: &due, KeyType: s.KeyType, Usage: s.Usage, CA: s.CA,
	}
}

// Message is what obtain tells when it keeps k: what it kept, until when,
// and how to get a new one now. changes are what the run would have
// changed in what renew repeats: they are not applied (nor recorded); out
// is obtain's --out, which is not written either.
func (k *Kept) Message(changes []string, out string) []string {
	what := fmt.Sprintf("the certificate of %s (serial %s, valid until %s)", k.Status.Email, k.Status.Serial, k.Status.NotAfter.Format(time.RFC3339))
	if e := k.Status.Encryption; e != nil {
		what = fmt.Sprintf("the signing and the encryption certificate of %s (serials %s and %s, valid until %s and %s)",
			k.Status.Email, k.Status.Serial, e.Serial, k.Status.NotAfter.Format(time.RFC3339), e.NotAfter.Format(time.RFC3339))
	}
	msg := []string{fmt.Sprintf("kept %s: it is not due for renewal until %s (%s); nothing was ordered or written. acmemail renew renews it then; obtain --force gets a new one now",
		what, k.RenewalDue.Format(time.RFC3339), k.Basis)}
	if len(changes) > 0 {
		msg = append(msg, "this run would change what renew repeats ("+strings.Join(changes, "; ")+"), but the certificate was kept and the change is not recorded: run obtain --force with the same flags to apply it now")
	}
	if out != "" {
		msg = append(msg, "--out "+out+" was not written: acmemail export "+k.Status.Email+" --out FILE writes the current certificate")
	}
	return msg
}

// Keep is the current certificate of p.Email when obtain should keep it
// rather than order a new one (as certbot keeps a certificate that is not
// due): it is valid (not expired, revoked, pending or broken), from the
// CA p names, and not due for renewal at now by the decision renew makes
// from what it recorded (the time chosen in the CA's renewal window, else
// a third of the lifetime before expiry; Keep asks the CA nothing), and
// its files are all there (cert.p12 and cert.pem included). A
// split pair is kept only when both of its certificates are, and p asking
// for a pair keeps only a pair. nil means: order one.
func (is *Issuer) Keep(p Profile, now time.Time) *Kept {
	s, err := statusOf(is.Store, p.Email, now)
	if err != nil || s.Server != p.Server {
		return nil
	}
	if p.Split && s.Encryption == nil {
		return nil
	}
	k := &Kept{Status: s, RenewalDue: s.RenewalDue, Basis: basisText(s.RenewalBasis)}
	for _, c := range []*Status{&s, s.Encryption} {
		if c == nil {
			continue
		}
		// One without its PKCS#12 file or cert.pem (from an older
		// acmemail) is replaced, as a broken one.
		if c.State != StateValid || !now.Before(c.RenewalDue) || c.Files.PKCS12 == "" || c.Files.Certificate == "" {
			return nil
		}
		if c.RenewalDue.Before(k.RenewalDue) {
			k.RenewalDue, k.Basis = c.RenewalDue, basisText(c.RenewalBasis)
		}
	}
	return k
}

func basisText(basis string) string {
	if basis == "ari" {
		return "the time chosen in the CA's renewal window"
	}
	return "a third of its lifetime before expiry"
}
