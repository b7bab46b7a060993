package keystore

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxEmailLen is the longest forward-path allowed by RFC 5321 minus the
// angle brackets.
const maxEmailLen = 254

// NormalizeEmail checks that email is an addr-spec that is safe to use as
// a directory name and returns it in Unicode NFC with its domain
// lowercased (the local part is case-sensitive and kept): the name of its
// directory. An older acmemail did not apply NFC, so a directory may have
// another spelling of the address; the Store finds it (see
// [Store.CertificatePaths]). It accepts only unquoted addresses
// with exactly one '@', and rejects '/', '\\', NUL and other control
// characters, white space, the RFC 5322 specials that need quoting, "..",
// and a leading or trailing '.' in either part.
func NormalizeEmail(email string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("invalid email address %q: %s", email, why)
	}
	if email == "" {
		return bad("empty")
	}
	if len(email) > maxEmailLen {
		return bad(fmt.Sprintf("longer than %d bytes", maxEmailLen))
	}
	if !utf8.ValidString(email) {
		return bad("not valid UTF-8")
	}
	email = norm.NFC.String(email)
	for _, r := range email {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return bad("contains a control character")
		case r == ' ' || r == '\u00a0' || r == '\u2028' || r == '\u2029' || r == '\ufeff':
			return bad("contains white space")
		case r == '/' || r == '\\':
			return bad("contains a path separator")
		case strings.ContainsRune(`"(),:;<>[]`, r):
			return bad(fmt.Sprintf("contains %q", r))
		}
	}
	if strings.Contains(email, "..") {
		return bad(`contains ".."`)
	}
	at := strings.IndexByte(email, '@')
	if at < 0 || strings.Count(email, "@") != 1 {
		return bad("must contain exactly one '@'")
	}
	local, domain := email[:at], email[at+1:]
	switch {
	case local == "":
		return bad("empty local part")
	case domain == "":
		return bad("empty domain")
	case strings.HasPrefix(local, ".") || strings.HasSuffix(local, "."):
		return bad("local part starts or ends with '.'")
	case strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, "."):
		return bad("domain starts or ends with '.'")
	}
	norm := local + "@" + strings.ToLower(domain)
	if len(norm) > maxEmailLen {
		return bad(fmt.Sprintf("longer than %d bytes", maxEmailLen))
	}
	return norm, nil
}
