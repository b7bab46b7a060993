package acmemail

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// NormalizeAddress checks an email address and returns the form acmemail
// uses for it everywhere: in the ACME order, the CSR, the reply, the
// certificate check, the state directory and the configuration file. The
// whole address is put in Unicode NFC (an address typed or pasted in NFD,
// as some systems produce it, is the same identity as the NFC one). The
// domain is lowercased and, if it holds non-ASCII labels, converted to
// A-labels ("bücher.example" becomes "xn--bcher-kva.example"; RFC 8823 §4
// with RFC 5890); A-labels given as such must decode. The local part is
// kept as given, case included (RFC 5321 §2.4: it may be case-sensitive):
// it may be internationalized (RFC 6531: UTF-8 beyond ASCII), but it must
// be a dot-atom (quoted local parts are not supported) of at most 64
// octets. Normalizing a normalized address gives it back unchanged.
func NormalizeAddress(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("empty address")
	}
	if !utf8.ValidString(addr) {
		return "", fmt.Errorf("%q is not valid UTF-8", tokenQuoteShort(addr))
	}
	given := addr
	addr = norm.NFC.String(addr)
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", fmt.Errorf("%q has no @", tokenQuoteShort(given))
	}
	local, domain := addr[:at], addr[at+1:]
	if !addrIsDotAtomUTF8(local) || len(local) > 64 {
		return "", fmt.Errorf("%q: the local part is not a plain dot-atom of at most 64 octets (quoted local parts are not supported)", tokenQuoteShort(given))
	}
	domain = strings.ToLower(domain)
	if addrHasNonASCII(domain) || addrHasALabel(domain) {
		a, err := idna.Lookup.ToASCII(domain)
		if err != nil {
			return "", fmt.Errorf("%q: the domain is not a valid internationalized domain name: %v", tokenQuoteShort(given), err)
		}
		domain = strings.ToLower(a)
	}
	if !addrIsHostName(domain) {
		return "", fmt.Errorf("%q: the domain is not a host name", tokenQuoteShort(given))
	}
	out := local + "@" + domain
	if len(out) > 254 {
		return "", fmt.Errorf("%q is longer than 254 characters", tokenQuoteShort(given))
	}
	return out, nil
}

// addrHasALabel reports whether a (lowercase) domain has a label in the
// ACE form of IDNA, "xn--".
func addrHasALabel(domain string) bool {
	for l := range strings.SplitSeq(domain, ".") {
		if strings.HasPrefix(l, "xn--") {
			return true
		}
	}
	return false
}

// AddressFold is the key under which two addresses look the same to a
// person: normalized (see [NormalizeAddress]; an address that does not
// normalize is taken as it is) and then lowercased as a whole. Two
// addresses with one key but different normalized forms differ only in the
// case of the local part, which mail servers may tell apart: acmemail
// never takes one for the other, but asks "did you mean".
func AddressFold(addr string) string {
	if n, err := NormalizeAddress(addr); err == nil {
		addr = n
	}
	return strings.ToLower(addr)
}

// SimilarAddress returns the first of candidates that is not addr (once
// both are normalized) but looks the same (the same [AddressFold]), or "": the address a "did you
// mean" names.
func SimilarAddress(addr string, candidates []string) string {
	same := func(a string) string {
		if n, err := NormalizeAddress(a); err == nil {
			return n
		}
		return a
	}
	key, self := AddressFold(addr), same(addr)
	for _, c := range candidates {
		if same(c) != self && AddressFold(c) == key {
			return c
		}
	}
	return ""
}

// IsInternationalized reports whether addr has a non-ASCII local part. Such
// an address goes into a certificate as an SmtpUTF8Mailbox otherName (RFC
// 9598) instead of an rfc822Name, and mail to or from it needs SMTPUTF8
// (RFC 6531). A non-ASCII domain alone does not count: it is written in
// A-labels (see [NormalizeAddress]).
func IsInternationalized(addr string) bool {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addrHasNonASCII(addr)
	}
	return addrHasNonASCII(addr[:at])
}

// addrIsDotAtomUTF8 reports whether s is a dot-atom-text of RFC 6531: the
// atext of RFC 5322 plus any non-ASCII character that is neither a control
// character nor white space.
func addrIsDotAtomUTF8(s string) bool {
	if !addrHasNonASCII(s) {
		return addrIsDotAtom(s)
	}
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		if r < utf8.RuneSelf {
			if !addrIsDotAtom(string(r)) && r != '.' {
				return false
			}
			continue
		}
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

// addrDomainUnicode returns domain with its A-labels converted to U-labels,
// as an SmtpUTF8Mailbox holds it (RFC 9598 §3), or domain unchanged if it
// cannot be converted.
func addrDomainUnicode(domain string) string {
	u, err := idna.Lookup.ToUnicode(domain)
	if err != nil {
		return domain
	}
	return u
}

// addrKey is the form in which two normalized addresses are compared: the
// local part exactly, the domain in lowercase A-labels.
func addrKey(addr string) string {
	n, err := NormalizeAddress(addr)
	if err != nil {
		return addr
	}
	return n
}

// addrParser parses the address fields of mail. Display names are not
// used, so encoded-words in any charset are passed through instead of
// failing.
var addrParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

// parseAddressList parses an RFC 5322 address-list (a header field value)
// into addr-specs: "local@domain" without display names, the domain
// lowercased, the local part kept as sent (it may be case-sensitive, RFC
// 5321 §2.4). Groups are flattened. An empty or blank value gives no
// addresses; a value longer than maxFieldSize is an error. It is the only
// parser of mail addresses in this package.
func parseAddressList(v string) ([]string, error) {
	if len(v) > maxFieldSize {
		return nil, fmt.Errorf("the address list is longer than %d bytes", maxFieldSize)
	}
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	list, err := addrParser.ParseList(v)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, addrLowerDomain(a.Address))
	}
	return out, nil
}

// parseOneAddress is parseAddressList for a value that must hold exactly
// one mailbox (a From or Sender field).
func parseOneAddress(v string) (string, error) {
	list, err := parseAddressList(v)
	if err != nil {
		return "", err
	}
	switch len(list) {
	case 0:
		return "", errors.New("no address")
	case 1:
		return list[0], nil
	}
	return "", fmt.Errorf("%d addresses, want exactly one", len(list))
}

// addrLowerDomain lowercases the domain of an addr-spec.
func addrLowerDomain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr
	}
	return addr[:i+1] + strings.ToLower(addr[i+1:])
}

// sameAddress reports whether two addr-specs name the same mailbox as the
// challenge checks compare them: local parts exactly, domains
// case-insensitively. An argument without an @ is never the same as
// anything.
func sameAddress(a, b string) bool {
	ai, bi := strings.LastIndexByte(a, '@'), strings.LastIndexByte(b, '@')
	if ai < 0 || bi < 0 {
		return false
	}
	return a[:ai] == b[:bi] && strings.EqualFold(a[ai+1:], b[bi+1:])
}
