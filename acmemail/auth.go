package acmemail

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"golang.org/x/net/idna"
)

// Verified is the outcome of a successful [Verifier.Verify].
type Verified struct {
	// Method is how authenticity was established: "dkim", "smime" or
	// "authentication-results".
	Method string
	// Domain is the signing domain (DKIM d=) or the signer's address domain.
	Domain string
	// Headers, when not nil, is the signed inner message (S/MIME header
	// protection) whose From, To and Subject are the ones to trust.
	Headers []byte
	// Warnings are form problems that do not make the mail unauthentic
	// (e.g. a DKIM h= list that misses some headers RFC 8823 lists).
	Warnings []string
}

// Verifier decides whether a mail claiming to come from the address from
// is authentic. It must fail closed: any doubt is an error, whose text says
// precisely why the mail was refused.
type Verifier interface {
	Verify(ctx context.Context, raw []byte, from string) (*Verified, error)
}

// MailVerifier checks that a challenge mail really comes from its From
// address, as RFC 8823 §3.1 requires, and fails closed. A mail is accepted
// when one of these holds, tried in this order:
//
//  1. DKIM, verified locally: a valid signature whose d= equals the From
//     domain exactly (not merely its parent or organizational domain),
//     without the l= body length tag, whose h= signs From, To and Subject
//     (and Reply-To when the mail has one, since the reply goes there), and
//     which signs every copy of the fields it signs from RFC 8823's list
//     (an unsigned copy added on the way is refused). An h= that misses
//     other fields of that list is accepted with a warning: real signers
//     sign only the fields a mail has, and OpenDKIM by default signs only
//     RFC 6376's recommended set, which has neither Message-ID nor
//     Auto-Submitted (h=From:To:Subject:Date on a typical challenge).
//  2. S/MIME, when the mail is S/MIME signed (multipart/signed or
//     application/pkcs7-mime; smime-type=signed-data) and SMIMERoots is
//     set: a valid signature by a certificate that chains to SMIMERoots,
//     is valid for email protection now, and whose rfc822Name is the From
//     address; From, To and Subject must be inside the signed part (header
//     protection), and [Verified.Headers] returns that inner message.
//  3. Authentication-Results, only when TrustAuthservID is set (see there).
//
// Whatever the method, a mail with more than one From or Subject field, or
// whose From field is not the address given to Verify, is refused.
type MailVerifier struct {
	// LookupTXT looks up DKIM key records. nil: the system resolver.
	LookupTXT func(ctx context.Context, name string) ([]string, error)

	// TrustAuthservID, when not empty, lets the Authentication-Results
	// header field (RFC 8601) added by the user's own mail provider vouch
	// for the DKIM signature when local DKIM verification fails (for
	// example because the key cannot be looked up from here, was rotated
	// since delivery, or the provider rewrote the message after checking
	// it). Only the topmost Authentication-Results field whose authserv-id
	// is exactly TrustAuthservID counts; it must report dkim=pass with a
	// header.d (or header.i) domain equal to the From domain, and the mail
	// must still carry a DKIM-Signature by that domain whose h= passes the
	// checks above. All other Authentication-Results fields are ignored,
	// and none is trusted when TrustAuthservID is empty.
	//
	// This is safe only for the authserv-id of the provider that receives
	// the user's mail, because anyone can write an Authentication-Results
	// field into a mail they send: the header is evidence only if the
	// receiving server removes every such field bearing its own
	// authserv-id from incoming mail before adding its own (RFC 8601 §5),
	// so the topmost one is known to be its own. Never set it to the id of
	// a server you do not run or trust, nor to a value a sender can guess
	// and that your provider does not strip.
	TrustAuthservID string

	// SMIMERoots are the trust anchors for S/MIME signed challenge mail.
	// nil: S/MIME signatures are not accepted (the mail then needs a valid
	// DKIM signature).
	SMIMERoots *x509.CertPool

	// Now returns the current time, at which S/MIME certificates must be
	// valid. nil: time.Now.
	Now func() time.Time
}

// Limits that bound the work a hostile mail can cause.
const (
	// maxDKIMSignatures is how many DKIM signatures are checked at most.
	maxDKIMSignatures = 5
)

// dkimRequired are the fields a challenge's DKIM signature must sign. The
// first three always; Reply-To when the mail has one, because the reply
// goes there. Message-ID and Auto-Submitted are not among them: OpenDKIM's
// default h= leaves them out, and neither decides authenticity (a replay
// under a new Message-ID still carries an answered token).
var dkimRequired = []string{"From", "To", "Subject", "Reply-To"}

// dkimAlwaysRequired is how many of dkimRequired are needed even when the
// mail lacks them.
const dkimAlwaysRequired = 3

// dkimListed is RFC 8823 §3.1's MUST list for h=. All of them may appear
// at most once in a message (RFC 5322 §3.6, RFC 3834, RFC 2045), so a
// copy beyond what h= signs is an added, unsigned one.
var dkimListed = []string{
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "In-Reply-To", "References",
	"Message-ID", "Auto-Submitted", "Content-Type", "Content-Transfer-Encoding",
}

// Verify implements [Verifier]. from is the address of the mail's From
// field (an addr-spec); the mail must agree.
func (v *MailVerifier) Verify(ctx context.Context, raw []byte, from string) (*Verified, error) {
	if len(raw) > maxMailSize {
		return nil, fmt.Errorf("the mail is %d bytes, more than the %d checked", len(raw), maxMailSize)
	}
	hdr, _, err := readHeader(raw)
	if err != nil {
		return nil, fmt.Errorf("its header section cannot be read: %w", err)
	}
	for _, name := range []string{"From", "Subject"} {
		if n := hdr.count(name); n > 1 {
			return nil, fmt.Errorf("the mail has %d %s header fields (a forgery trick: a signature may cover only one of them)", n, name)
		}
	}
	fromDomain, err := authAddrDomain(from)
	if err != nil {
		return nil, err
	}
	if err := authCheckFrom(hdr, from); err != nil {
		return nil, err
	}

	// 1. DKIM, verified here.
	res, dkimReasons := v.verifyDKIM(ctx, raw, hdr, fromDomain)
	if res != nil {
		return res, nil
	}
	dkimWhy := strings.Join(dkimReasons, "; ")

	// 2. S/MIME.
	var reasons refusal
	if smimeIs(hdr) {
		res, err := v.verifySMIME(raw, from)
		if err == nil {
			if hdr.count("DKIM-Signature") > 0 {
				res.Warnings = append(res.Warnings, "its DKIM signature is not acceptable ("+dkimWhy+"); the S/MIME signature is")
			}
			return res, nil
		}
		reasons = append(reasons, err)
	}
	reasons = append(reasons, errors.New(dkimWhy))

	// 3. The provider's Authentication-Results.
	if v.TrustAuthservID != "" {
		res, err := authresVouch(hdr, v.TrustAuthservID, fromDomain)
		if err == nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("local DKIM verification failed (%s); accepted on the word of the Authentication-Results of %s", dkimWhy, v.TrustAuthservID))
			return res, nil
		}
		reasons = append(reasons, err)
	}
	return nil, reasons
}

// refusal is the error of [MailVerifier.Verify] for a mail that no method
// accepted: why each method tried refused it, joined by "; ". Each reason
// stays reachable with [errors.Is] and [errors.As] (for example
// [ErrNoSMIMERoots]), so a caller can tell the user what to change.
type refusal []error

func (r refusal) Error() string {
	msgs := make([]string, len(r))
	for i, err := range r {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (r refusal) Unwrap() []error { return r }

func (v *MailVerifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// verifyDKIM verifies the DKIM signatures of raw locally. It returns the
// result for the first acceptable signature, or why none is.
func (v *MailVerifier) verifyDKIM(ctx context.Context, raw []byte, hdr header, fromDomain string) (*Verified, []string) {
	sigs := hdr.values("DKIM-Signature")
	if len(sigs) == 0 {
		return nil, []string{"no DKIM signature"}
	}
	lookup := v.LookupTXT
	if lookup == nil {
		lookup = net.DefaultResolver.LookupTXT
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return lookup(ctx, name) },
		MaxVerifications: maxDKIMSignatures,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return nil, []string{"DKIM signatures cannot be checked: " + dkimDescribe(err)}
	}
	if len(verifs) == 0 {
		return nil, []string{"no DKIM signature"}
	}
	var reasons []string
	for i, vf := range verifs {
		var tags map[string]string
		if i < len(sigs) {
			tags, _ = dkimParseTags(sigs[i])
		}
		res, err := dkimAccept(vf, tags, hdr, fromDomain)
		if err == nil {
			return res, nil
		}
		reasons = append(reasons, err.Error())
	}
	if len(sigs) > maxDKIMSignatures {
		reasons = append(reasons, fmt.Sprintf("only the first %d of its %d DKIM signatures were checked", maxDKIMSignatures, len(sigs)))
	}
	return nil, authDedup(reasons)
}

// dkimAccept decides on one verified (or failed) DKIM signature. tags are
// the signature's own tags (nil if unparseable).
func dkimAccept(vf *dkim.Verification, tags map[string]string, hdr header, fromDomain string) (*Verified, error) {
	d := strings.ToLower(vf.Domain)
	if d == "" && tags != nil {
		d = strings.ToLower(authStripSpace(tags["d"]))
	}
	if d == "" {
		msg := "DKIM signature without a signing domain (d=)"
		if vf.Err != nil {
			msg += ": " + dkimDescribe(vf.Err)
		}
		return nil, errors.New(msg)
	}
	if err := dkimCheckDomain(d, fromDomain); err != nil {
		return nil, err
	}
	if _, ok := tags["l"]; ok {
		return nil, fmt.Errorf("DKIM signature by %s uses the l= body length tag, which leaves part of the body unsigned", d)
	}
	if vf.Err != nil {
		return nil, fmt.Errorf("DKIM signature by %s: %s", d, dkimDescribe(vf.Err))
	}
	warnings, err := dkimCheckHeaders(d, vf.HeaderKeys, hdr)
	if err != nil {
		return nil, err
	}
	return &Verified{Method: "dkim", Domain: d, Warnings: warnings}, nil
}

// dkimCheckDomain requires the signing domain d to equal the From domain
// (RFC 8823 §3.1: exact equality, stricter than DMARC alignment).
func dkimCheckDomain(d, fromDomain string) error {
	if d == fromDomain || d == authASCIIDomain(fromDomain) {
		return nil
	}
	switch {
	case strings.HasSuffix(fromDomain, "."+d):
		return fmt.Errorf("DKIM signature by %s, the parent (organizational) domain of the From domain %s, not by %s itself (RFC 8823 requires d= to equal the From domain exactly)", d, fromDomain, fromDomain)
	case strings.HasSuffix(d, "."+fromDomain):
		return fmt.Errorf("DKIM signature by %s, a subdomain of the From domain %s, not by %s itself (RFC 8823 requires d= to equal the From domain exactly)", d, fromDomain, fromDomain)
	}
	return fmt.Errorf("DKIM signature by %s, not by the From domain %s", d, fromDomain)
}

// dkimCheckHeaders checks the h= list keys of a signature by d against the
// mail's header: the required fields must be signed, and no signed field
// may appear more often than h= signs it. Other fields of RFC 8823's list
// that h= misses give a warning.
func dkimCheckHeaders(d string, keys []string, hdr header) ([]string, error) {
	signed := make(map[string]int)
	for _, k := range keys {
		if k = strings.ToLower(authStripSpace(k)); k != "" {
			signed[k]++
		}
	}
	var unsigned []string
	for i, name := range dkimRequired {
		if signed[strings.ToLower(name)] == 0 && (i < dkimAlwaysRequired || hdr.count(name) > 0) {
			unsigned = append(unsigned, name)
		}
	}
	if len(unsigned) > 0 {
		return nil, fmt.Errorf("DKIM signature by %s does not sign %s (h= must list From, To and Subject, and Reply-To when present)", d, authList(unsigned))
	}
	for _, name := range dkimListed {
		n, k := hdr.count(name), signed[strings.ToLower(name)]
		if k > 0 && n > k {
			return nil, fmt.Errorf("the mail has %d %s header fields but the DKIM signature by %s signs only %d (an unsigned copy was added)", n, name, d, k)
		}
	}
	var missing []string
	var present []string
	for _, name := range dkimListed {
		if signed[strings.ToLower(name)] == 0 {
			missing = append(missing, name)
			if hdr.count(name) > 0 {
				present = append(present, name)
			}
		}
	}
	// Fields the mail does not have, left out of h=, could be added on the
	// way; none that acmemail acts on (Reply-To is required above when
	// present, and a second To, From or Subject is refused), so only
	// unsigned fields the mail has are worth a warning. Otherwise every run
	// against a CA signing with OpenDKIM's defaults would warn.
	if len(present) == 0 {
		return nil, nil
	}
	w := fmt.Sprintf("the DKIM signature by %s does not sign %s, which RFC 8823 requires in h= (accepted: From, To and Subject are signed)", d, authList(missing))
	if len(present) > 0 {
		w += fmt.Sprintf("; the mail's %s could have been changed", authList(present))
	}
	return []string{w}, nil
}

// dkimDescribe turns go-msgauth's messages into the words users see.
func dkimDescribe(err error) string {
	msg := strings.TrimPrefix(err.Error(), "dkim: ")
	switch {
	case strings.Contains(msg, "body hash did not verify"):
		return "body hash mismatch (the body was changed after signing)"
	case strings.Contains(msg, "signature did not verify"):
		return "signature mismatch (a signed header field was changed after signing, or the published key does not match)"
	case strings.Contains(msg, "insecure body length tag"):
		return "it uses the l= body length tag, which leaves part of the body unsigned"
	case strings.HasPrefix(msg, "no key for signature"):
		return "its key cannot be found in DNS (" + msg + ")"
	case strings.HasPrefix(msg, "key unavailable"):
		return "its key cannot be looked up now (" + msg + ")"
	case msg == "key revoked":
		return "its key was revoked (empty p= in DNS)"
	case msg == "signature has expired":
		return "the signature has expired (x= is past)"
	case strings.HasPrefix(msg, "hash algorithm too weak"):
		return "it uses rsa-sha1, which RFC 8301 forbids"
	case msg == "From field not signed":
		return "its h= does not list From"
	case msg == "domain mismatch":
		return "its i= identity is not in its d= domain"
	}
	return msg
}

// dkimParseTags parses a DKIM-Signature value's tag list (RFC 6376 §3.2).
func dkimParseTags(v string) (map[string]string, error) {
	tags := make(map[string]string)
	for _, part := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok {
			if k == "" {
				continue
			}
			return nil, errors.New("malformed tag list")
		}
		if _, dup := tags[k]; dup {
			return nil, fmt.Errorf("duplicate tag %s=", k)
		}
		tags[k] = strings.TrimSpace(val)
	}
	return tags, nil
}

// authCheckFrom requires the mail's single From field to hold exactly from.
func authCheckFrom(hdr header, from string) error {
	if hdr.count("From") == 0 {
		return errors.New("the mail has no From header field")
	}
	got, err := hdr.address("From")
	if err != nil {
		return fmt.Errorf("its From header field cannot be read: %s", authQuote(err.Error()))
	}
	if !sameAddress(got, from) {
		return fmt.Errorf("its From address %s is not %s", authQuote(got), authQuote(from))
	}
	return nil
}

// authAddrDomain returns the lowercased domain of an addr-spec.
func authAddrDomain(addr string) (string, error) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", fmt.Errorf("the From %q is not an address", authQuote(addr))
	}
	return strings.ToLower(addr[at+1:]), nil
}

// authASCIIDomain is domain in A-label form (RFC 8616: d= uses A-labels
// even when the From domain is internationalized), or domain if it is not
// a valid IDN.
func authASCIIDomain(domain string) string {
	a, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return domain
	}
	return strings.ToLower(a)
}

// authStripSpace removes all whitespace (DKIM tag values may be folded).
func authStripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}

// authList joins names as "A, B and C".
func authList(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// authDedup removes repeated reasons, keeping the order.
func authDedup(reasons []string) []string {
	seen := make(map[string]bool)
	out := reasons[:0]
	for _, r := range reasons {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// authQuote makes untrusted text safe and short for an error message.
func authQuote(s string) string {
	const max = 80
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
	if t := truncate(s, max); len(t) < len(s) {
		s = t + "…"
	}
	return s
}
