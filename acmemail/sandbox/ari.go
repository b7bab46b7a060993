package sandbox

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ACME Renewal Information (RFC 9773): the CA serves renewalInfo for every
// certificate it issued, honours "replaces" in newOrder, and answers
// alreadyReplaced for a second replacement.

const (
	pathRenewalInfo = "/acme/renewal-info/"
	pathStatus      = "/sandbox/certificate/"

	probAlreadyReplaced = probPrefix + "alreadyReplaced"

	defaultRenewalRetryAfter = 6 * time.Hour
)

// RenewalWindow places a certificate's suggested renewal window relative
// to its notBefore: the window opens at notBefore+Start and closes at
// notBefore+End. Offsets may be negative (a window in the past says
// "renew now").
type RenewalWindow struct {
	Start, End time.Duration
}

// ParseRenewalWindow parses "START,END": Go durations after issuance, such
// as "1440h,1800h" (days 60 to 75), or "-1h,1h" for a window open now.
func ParseRenewalWindow(s string) (RenewalWindow, error) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return RenewalWindow{}, fmt.Errorf("renewal window %q: want START,END (durations after issuance, e.g. -1h,1h)", s)
	}
	start, err := time.ParseDuration(strings.TrimSpace(a))
	if err != nil {
		return RenewalWindow{}, fmt.Errorf("renewal window start: %w", err)
	}
	end, err := time.ParseDuration(strings.TrimSpace(b))
	if err != nil {
		return RenewalWindow{}, fmt.Errorf("renewal window end: %w", err)
	}
	return RenewalWindow{Start: start, End: end}, nil
}

// CertificateStatus is what the sandbox knows about a certificate it
// issued, for tests ([World.Certificate]) and for clients (GET
// /sandbox/certificate/<serial hex>, unauthenticated JSON).
type CertificateStatus struct {
	Serial           string    `json:"serial"` // lowercase hex
	Emails           []string  `json:"emails"`
	DNSNames         []string  `json:"dns_names,omitempty"` // of a server certificate
	NotBefore        time.Time `json:"not_before"`
	NotAfter         time.Time `json:"not_after"`
	CertID           string    `json:"cert_id"` // RFC 9773 unique identifier
	Revoked          bool      `json:"revoked"`
	RevocationReason int       `json:"revocation_reason"`
	Replaces         string    `json:"replaces,omitempty"`    // serial of the certificate this one replaced
	ReplacedBy       string    `json:"replaced_by,omitempty"` // serial of the certificate that replaced this one
	RenewalStart     time.Time `json:"renewal_window_start"`
	RenewalEnd       time.Time `json:"renewal_window_end"`
}

// Certificate returns the status of the certificate with the given serial
// number (hex, any case), and whether the sandbox issued it.
func (w *World) Certificate(serialHex string) (CertificateStatus, bool) {
	return w.ca.certificateStatus(serialHex)
}

// SetRenewalWindow makes renewalInfo suggest [start, end) for every
// certificate, issued before or after the call, instead of the window
// Options.RenewalWindow places. The window is served as given, even an
// invalid one (end not after start), so clients' handling of it can be
// tested. Zero times restore the default.
func (w *World) SetRenewalWindow(start, end time.Time) {
	w.ca.mu.Lock()
	w.ca.fixedWindow = [2]time.Time{start, end}
	w.ca.mu.Unlock()
}

// certID is the RFC 9773 unique identifier of leaf.
func certID(leaf *x509.Certificate) string {
	der, err := asn1.Marshal(leaf.SerialNumber)
	if err != nil || len(der) < 3 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(leaf.AuthorityKeyId) + "." + base64.RawURLEncoding.EncodeToString(der[2:])
}

// parseCertID splits an RFC 9773 identifier into key identifier and serial.
func parseCertID(id string) (aki []byte, serial *big.Int, ok bool) {
	a, s, found := strings.Cut(id, ".")
	if !found || a == "" || s == "" || strings.ContainsAny(id, "=") {
		return nil, nil, false
	}
	aki, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil {
		return nil, nil, false
	}
	sb, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(sb) == 0 || sb[0]&0x80 != 0 {
		return nil, nil, false
	}
	return aki, new(big.Int).SetBytes(sb), true
}

// certByIDLocked finds the certificate an RFC 9773 identifier names.
func (ca *authority) certByIDLocked(id string) *certificate {
	aki, serial, ok := parseCertID(id)
	if !ok {
		return nil
	}
	c := ca.bySerial[serial.String()]
	if c == nil || string(c.leaf.AuthorityKeyId) != string(aki) {
		return nil
	}
	return c
}

// windowLocked is the suggested renewal window of c.
func (ca *authority) windowLocked(c *certificate) (time.Time, time.Time) {
	if !ca.fixedWindow[0].IsZero() || !ca.fixedWindow[1].IsZero() {
		return ca.fixedWindow[0], ca.fixedWindow[1]
	}
	nb, na := c.leaf.NotBefore, c.leaf.NotAfter
	if rw := ca.opt.RenewalWindow; rw != nil {
		return nb.Add(rw.Start), nb.Add(rw.End)
	}
	life := na.Sub(nb)
	return na.Add(-life / 3), na.Add(-life / 6)
}

func (ca *authority) handleRenewalInfo(w http.ResponseWriter, r *http.Request, id string) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		ca.writeProblem(w, r.URL.Path, newProblem(probMalformed, "fetch renewalInfo with GET").withStatus(http.StatusMethodNotAllowed))
		return
	}
	ca.mu.Lock()
	c := ca.certByIDLocked(id)
	var start, end time.Time
	if c != nil {
		start, end = ca.windowLocked(c)
	}
	ca.mu.Unlock()
	if c == nil {
		ca.writeProblem(w, r.URL.Path, newProblem(probMalformed, "no certificate with the unique identifier %q was issued by this CA", id).withStatus(http.StatusNotFound))
		return
	}
	ca.stats.update(func(s *Stats) { s.RenewalInfoRequests++ })
	ra := ca.opt.RenewalRetryAfter
	if ra <= 0 {
		ra = defaultRenewalRetryAfter
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(ra/time.Second)))
	writeJSON(w, http.StatusOK, map[string]any{
		"suggestedWindow": map[string]string{
			"start": start.UTC().Format(time.RFC3339Nano),
			"end":   end.UTC().Format(time.RFC3339Nano),
		},
		"explanationURL": ca.url(pathTerms),
	})
}

// replacedLocked checks newOrder's "replaces" and returns the certificate
// it names. RFC 9773 §5: an unknown certificate is malformed; one that
// shares no identifier with the order cannot be replaced by it; one that
// another live order already replaces is alreadyReplaced (409).
func (ca *authority) replacedLocked(id string, idents []identifier) (*certificate, *problem) {
	c := ca.certByIDLocked(id)
	if c == nil {
		return nil, newProblem(probMalformed, "replaces: no certificate with the unique identifier %q was issued by this CA", id)
	}
	shared := false
	for _, e := range slices.Concat(c.leaf.EmailAddresses, c.leaf.DNSNames) {
		for _, x := range idents {
			if strings.EqualFold(e, x.Value) {
				shared = true
			}
		}
	}
	if !shared {
		return nil, newProblem(probMalformed, "replaces: the certificate %s shares no identifier with this order", id)
	}
	if o := c.replacing; o != nil {
		ca.expireLocked(o)
		if o.status != statusInvalid {
			return nil, newProblem(probAlreadyReplaced, "the certificate %s is already being replaced by order %s", id, o.url).withStatus(http.StatusConflict)
		}
	}
	return c, nil
}

func (ca *authority) certificateStatus(serialHex string) (CertificateStatus, bool) {
	n, ok := new(big.Int).SetString(strings.TrimPrefix(strings.ToLower(serialHex), "0x"), 16)
	if !ok {
		return CertificateStatus{}, false
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	c := ca.bySerial[n.String()]
	if c == nil {
		return CertificateStatus{}, false
	}
	st := CertificateStatus{
		Serial: c.leaf.SerialNumber.Text(16), Emails: append([]string(nil), c.leaf.EmailAddresses...), DNSNames: slices.Clone(c.leaf.DNSNames),
		NotBefore: c.leaf.NotBefore, NotAfter: c.leaf.NotAfter, CertID: certID(c.leaf),
		Revoked: c.revoked, RevocationReason: c.reason,
	}
	if c.replaces != nil {
		st.Replaces = c.replaces.leaf.SerialNumber.Text(16)
	}
	if c.replacedBy != nil {
		st.ReplacedBy = c.replacedBy.leaf.SerialNumber.Text(16)
	}
	st.RenewalStart, st.RenewalEnd = ca.windowLocked(c)
	return st, true
}

func (ca *authority) handleStatus(w http.ResponseWriter, r *http.Request, serial string) {
	if r.Method != http.MethodGet {
		ca.writeProblem(w, r.URL.Path, newProblem(probMalformed, "use GET").withStatus(http.StatusMethodNotAllowed))
		return
	}
	st, ok := ca.certificateStatus(serial)
	if !ok {
		ca.writeProblem(w, r.URL.Path, newProblem(probMalformed, "no certificate with serial %q was issued here", serial).withStatus(http.StatusNotFound))
		return
	}
	writeJSON(w, http.StatusOK, st)
}
