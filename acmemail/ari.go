package acmemail

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

// ACME Renewal Information, RFC 9773.

// ErrNoRenewalInfo is returned when the CA's directory has no renewalInfo.
var ErrNoRenewalInfo = errors.New("the CA offers no renewal information (RFC 9773 renewalInfo)")

// ErrInvalidWindow is returned (wrapped) when the CA's suggested window
// ends at or before its start; RFC 9773 says to treat that as no answer.
var ErrInvalidWindow = errors.New("the CA's suggested renewal window is invalid (it ends at or before its start)")

// Bounds of the time to wait before asking for renewal information again.
const (
	MinRenewalInfoRetry     = time.Minute
	MaxRenewalInfoRetry     = 24 * time.Hour
	DefaultRenewalInfoRetry = 6 * time.Hour // no Retry-After, or after an error
)

// RenewalInfo is a CA's suggested renewal window for one certificate.
type RenewalInfo struct {
	CertID         string    `json:"cert_id"`
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	ExplanationURL string    `json:"explanation_url,omitempty"`
	// Fetched is when the CA was asked; NextCheck is when to ask again
	// (Retry-After, clamped to between one minute and one day).
	Fetched   time.Time `json:"fetched"`
	NextCheck time.Time `json:"next_check"`
}

// CertID returns the RFC 9773 unique identifier of a certificate:
// base64url(AKI keyIdentifier) "." base64url(serial number octets).
func CertID(leaf *x509.Certificate) (string, error) {
	if len(leaf.AuthorityKeyId) == 0 {
		return "", errors.New("the certificate has no authority key identifier, so it has no renewal information")
	}
	return acme.ARIUniqueIdentifier(leaf)
}

// Pick returns a uniformly random time in [Start, End), as RFC 9773 asks
// clients to choose. A window in the past yields a past time: renew now.
func (ri *RenewalInfo) Pick() time.Time {
	span := ri.End.Sub(ri.Start)
	if span <= 0 {
		return ri.Start
	}
	return ri.Start.Add(time.Duration(rand.Int64N(int64(span)))).UTC()
}

// FallbackRenewalTime is when to renew without renewal information: when a
// third of the certificate's lifetime is left.
func FallbackRenewalTime(leaf *x509.Certificate) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Add(-life / 3).UTC()
}

// SupportsRenewalInfo reports whether the CA's directory has renewalInfo;
// renewal orders carry "replaces" only then.
func (c *Client) SupportsRenewalInfo(ctx context.Context) (bool, error) {
	dir, err := c.Directory(ctx)
	if err != nil {
		return false, err
	}
	return dir.RenewalInfo != "", nil
}

// GetRenewalInfo asks the CA for the renewal window of leaf (one
// unauthenticated GET, no retries: the caller asks again at NextCheck). It
// returns ErrNoRenewalInfo when the CA offers none and an error wrapping
// ErrInvalidWindow for a window that ends at or before its start; both
// mean: decide without the CA (see FallbackRenewalTime).
func (c *Client) GetRenewalInfo(ctx context.Context, leaf *x509.Certificate) (*RenewalInfo, error) {
	dir, err := c.Directory(ctx)
	if err != nil {
		return nil, err
	}
	if dir.RenewalInfo == "" {
		return nil, ErrNoRenewalInfo
	}
	id, err := CertID(leaf)
	if err != nil {
		return nil, err
	}
	u := dir.RenewalInfo
	if u[len(u)-1] != '/' {
		u += "/"
	}
	u += id
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	ua := "acmemail"
	if c.UserAgent != "" {
		ua = c.UserAgent
	}
	req.Header.Set("User-Agent", ua)
	resp, err := c.acme.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the renewal information: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("fetch the renewal information: %w", err)
	}
	now := c.now()
	if resp.StatusCode != http.StatusOK {
		if pe, err := ParseProblem(body); err == nil {
			pe.Op = "fetch the renewal information"
			return nil, pe
		}
		return nil, fmt.Errorf("fetch the renewal information: the CA answered %s", resp.Status)
	}
	return parseRenewalInfo(body, resp.Header.Get("Retry-After"), id, now)
}

// parseRenewalInfo decodes a renewalInfo response (untrusted input).
func parseRenewalInfo(body []byte, retryAfter, id string, now time.Time) (*RenewalInfo, error) {
	var doc struct {
		SuggestedWindow *struct {
			Start time.Time `json:"start"`
			End   time.Time `json:"end"`
		} `json:"suggestedWindow"`
		ExplanationURL string `json:"explanationURL"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("the CA's renewal information is not valid JSON: %w", err)
	}
	if doc.SuggestedWindow == nil || doc.SuggestedWindow.Start.IsZero() || doc.SuggestedWindow.End.IsZero() {
		return nil, errors.New("the CA's renewal information has no suggestedWindow")
	}
	ri := &RenewalInfo{
		CertID: id, Start: doc.SuggestedWindow.Start.UTC(), End: doc.SuggestedWindow.End.UTC(),
		ExplanationURL: doc.ExplanationURL, Fetched: now.UTC(),
		NextCheck: now.Add(clampRetry(retryAfter, now)).UTC(),
	}
	if !ri.End.After(ri.Start) {
		return ri, fmt.Errorf("%w: %s to %s", ErrInvalidWindow, ri.Start.Format(time.RFC3339), ri.End.Format(time.RFC3339))
	}
	return ri, nil
}

// clampRetry turns a Retry-After value into a wait between
// MinRenewalInfoRetry and MaxRenewalInfoRetry.
func clampRetry(v string, now time.Time) time.Duration {
	t, ok := parseRetryAfter(v, now)
	if !ok {
		return DefaultRenewalInfoRetry
	}
	return min(max(t.Sub(now), MinRenewalInfoRetry), MaxRenewalInfoRetry)
}

// fromACMERenewalInfo converts the window acmez fetched after a download.
func fromACMERenewalInfo(ri acme.RenewalInfo, now time.Time) *RenewalInfo {
	out := &RenewalInfo{
		CertID: ri.UniqueIdentifier, Start: ri.SuggestedWindow.Start.UTC(), End: ri.SuggestedWindow.End.UTC(),
		ExplanationURL: ri.ExplanationURL, Fetched: now.UTC(), NextCheck: now.Add(DefaultRenewalInfoRetry).UTC(),
	}
	if ri.RetryAfter != nil {
		out.NextCheck = now.Add(min(max(ri.RetryAfter.Sub(now), MinRenewalInfoRetry), MaxRenewalInfoRetry)).UTC()
	}
	return out
}
