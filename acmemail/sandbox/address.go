package sandbox

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Limits from RFC 5321 §4.5.3.1 and RFC 3696 errata 1690.
const (
	maxLocalPart = 64
	maxDomain    = 253
	maxAddress   = 254
)

// canonicalAddress checks that s is an addr-spec this CA can put in a
// certificate and returns it with the domain lowercased and in A-labels
// (RFC 8823 §4). The local part keeps its case: RFC 5321 lets the
// receiving domain decide what case means. It may be internationalized
// (RFC 6531): such an address goes into an SmtpUTF8Mailbox otherName
// (RFC 9598) instead of an rfc822Name.
//
// The returned problem is rejectedIdentifier for addresses that are
// well-formed but not supported (wildcards, quoted local parts, address
// literals) and malformed for everything else.
func canonicalAddress(s string) (string, *problem) {
	if s == "" {
		return "", newProblem(probMalformed, "the email identifier is empty")
	}
	if strings.Contains(s, "*") {
		return "", newProblem(probRejectedIdentifier, "%q contains a wildcard; RFC 8823 does not allow wildcards in email identifiers", s)
	}
	if !utf8.ValidString(s) {
		return "", newProblem(probMalformed, "%q is not valid UTF-8", s)
	}
	if strings.HasPrefix(strings.ToLower(s), "mailto:") {
		return "", newProblem(probMalformed, "%q: give the bare address, without the mailto: scheme", s)
	}
	if strings.HasPrefix(s, `"`) {
		return "", newProblem(probRejectedIdentifier, "%q has a quoted local part; this CA does not support quoted local parts", s)
	}
	if strings.ContainsAny(s, "<>") || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", newProblem(probMalformed, "%q is not a bare address such as alice@example.org (no display name, angle brackets or spaces)", s)
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", newProblem(probMalformed, "%q is not an email address: it has no @", s)
	}
	local, domain := s[:at], s[at+1:]
	if strings.Contains(local, "@") {
		return "", newProblem(probMalformed, "%q has more than one @", s)
	}
	if reason := checkLocalPart(local); reason != "" {
		return "", newProblem(probMalformed, "%q: the local part %s", s, reason)
	}
	if strings.HasPrefix(domain, "[") {
		return "", newProblem(probRejectedIdentifier, "%q uses an address literal; this CA supports only domain names", s)
	}
	if isInternational(domain) {
		a, err := idna.Lookup.ToASCII(domain)
		if err != nil {
			return "", newProblem(probMalformed, "%q: the domain is not a valid internationalized domain name: %v", s, err)
		}
		domain = a
	}
	domain = strings.ToLower(domain)
	if reason := checkDomain(domain); reason != "" {
		return "", newProblem(probMalformed, "%q: the domain %s", s, reason)
	}
	addr := local + "@" + domain
	if len(addr) > maxAddress {
		return "", newProblem(probMalformed, "%q is longer than %d characters", s, maxAddress)
	}
	return addr, nil
}

// isAtext reports whether c is an RFC 5322 atext character.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

func checkLocalPart(local string) string {
	switch {
	case local == "":
		return "is empty"
	case len(local) > maxLocalPart:
		return "is longer than 64 characters"
	case local[0] == '.' || local[len(local)-1] == '.':
		return "starts or ends with a dot"
	case strings.Contains(local, ".."):
		return "has two dots in a row"
	}
	for _, r := range local {
		if r >= utf8.RuneSelf {
			// RFC 6531 UTF8-non-ascii atext; no controls, spaces or format characters.
			if unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
				return fmt.Sprintf("contains %U, which is not allowed", r)
			}
			continue
		}
		if c := byte(r); c != '.' && !isAtext(c) {
			return "contains " + quoteByte(c) + ", which needs quoting"
		}
	}
	return ""
}

// isInternational reports whether s has non-ASCII characters.
func isInternational(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// internationalLocal reports whether addr's local part is non-ASCII: the
// address then needs SmtpUTF8Mailbox in certificates and SMTPUTF8 in mail.
func internationalLocal(addr string) bool {
	local, _ := splitAddress(addr)
	return isInternational(local)
}

func checkDomain(domain string) string {
	switch {
	case domain == "":
		return "is empty"
	case len(domain) > maxDomain:
		return "is longer than 253 characters"
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return "has a single label; use a fully qualified domain name"
	}
	for _, l := range labels {
		if l == "" {
			return "has an empty label"
		}
		if len(l) > 63 {
			return "has a label longer than 63 characters"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "has a label that starts or ends with a hyphen"
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return "contains " + quoteByte(c) + "; only letters, digits and hyphens are allowed"
			}
		}
	}
	tld := labels[len(labels)-1]
	if strings.Trim(tld, "0123456789") == "" {
		return "ends in an all-numeric label"
	}
	return ""
}

func quoteByte(c byte) string {
	return "'" + string(rune(c)) + "'"
}

// splitAddress returns the local part and domain of a canonical address.
func splitAddress(addr string) (local, domain string) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr, ""
	}
	return addr[:at], addr[at+1:]
}

// sameAddress compares two addresses the way this CA does: the local part
// exactly, the domain without regard to case.
func sameAddress(a, b string) bool {
	la, da := splitAddress(a)
	lb, db := splitAddress(b)
	return la == lb && strings.EqualFold(da, db)
}
