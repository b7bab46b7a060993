package acmemail

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// authresVouch decides whether the mail's Authentication-Results (RFC 8601)
// from the trusted authserv-id id vouch for a DKIM signature by fromDomain.
// Only the topmost field bearing id counts (the receiving server adds its
// own on top and strips copies from incoming mail); every other field is
// ignored. The field must report dkim=pass with header.d, or the domain of
// header.i, equal to fromDomain, and the mail must carry a DKIM-Signature
// by fromDomain whose tags pass the checks of a local verification (no l=,
// From, To and Subject signed, no unsigned copies).
func authresVouch(hdr header, id, fromDomain string) (*Verified, error) {
	for _, f := range hdr {
		if !strings.EqualFold(f.name, "Authentication-Results") {
			continue
		}
		clean, err := authresClean(f.value)
		if err != nil {
			// Its authserv-id cannot be told for sure: if it may be the
			// trusted one, fail closed rather than look further down.
			if strings.Contains(f.value, id) {
				return nil, fmt.Errorf("the Authentication-Results of %s cannot be read: %w", id, err)
			}
			continue
		}
		if authresID(clean) != id {
			continue
		}
		// This is the one: it alone decides.
		_, results, err := authres.Parse(clean)
		if err != nil {
			return nil, fmt.Errorf("the Authentication-Results of %s cannot be read: %s", id, authQuote(err.Error()))
		}
		return authresJudge(hdr, id, results, fromDomain)
	}
	return nil, fmt.Errorf("no Authentication-Results header field by %s", id)
}

// authresJudge checks the results of the trusted field.
func authresJudge(hdr header, id string, results []authres.Result, fromDomain string) (*Verified, error) {
	var seen []string
	pass := false
	for _, r := range results {
		dr, ok := r.(*authres.DKIMResult)
		if !ok {
			continue
		}
		d := strings.ToLower(dr.Domain)
		if d == "" {
			if at := strings.LastIndexByte(dr.Identifier, '@'); at >= 0 {
				d = strings.ToLower(dr.Identifier[at+1:])
			}
		}
		if dr.Value == authres.ResultPass && (d == fromDomain || d == authASCIIDomain(fromDomain)) {
			pass = true
			break
		}
		s := "dkim=" + string(dr.Value)
		if d != "" {
			s += " for " + d
		}
		seen = append(seen, authQuote(s))
	}
	if !pass {
		if len(seen) == 0 {
			return nil, fmt.Errorf("the Authentication-Results of %s report no DKIM result", id)
		}
		return nil, fmt.Errorf("the Authentication-Results of %s report %s, not dkim=pass for %s", id, authList(authDedup(seen)), fromDomain)
	}

	// The provider checked the signature; the form checks are still ours.
	var reasons []string
	for _, v := range hdr.values("DKIM-Signature") {
		tags, err := dkimParseTags(v)
		if err != nil {
			continue
		}
		d := strings.ToLower(authStripSpace(tags["d"]))
		if d != fromDomain && d != authASCIIDomain(fromDomain) {
			continue
		}
		if _, ok := tags["l"]; ok {
			reasons = append(reasons, fmt.Sprintf("DKIM signature by %s uses the l= body length tag, which leaves part of the body unsigned", d))
			continue
		}
		warnings, err := dkimCheckHeaders(d, strings.Split(tags["h"], ":"), hdr)
		if err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		return &Verified{Method: "authentication-results", Domain: d, Warnings: warnings}, nil
	}
	if len(reasons) == 0 {
		return nil, fmt.Errorf("the Authentication-Results of %s report dkim=pass for %s, but the mail has no DKIM-Signature by %s", id, fromDomain, fromDomain)
	}
	return nil, fmt.Errorf("the Authentication-Results of %s report dkim=pass for %s, but %s", id, fromDomain, strings.Join(reasons, "; "))
}

// authresID returns the authserv-id of a (cleaned) Authentication-Results
// value: its first word, before any version and the first ';'.
func authresID(v string) string {
	head, _, _ := strings.Cut(v, ";")
	fields := strings.Fields(head)
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}

// authresClean prepares an Authentication-Results value for the simple
// parser of go-msgauth, which splits at every ';' and space: it removes
// comments, and replaces each quoted string by its content when that is a
// plain word (a domain or address) and by "x" otherwise. Without this, a
// quoted or commented text chosen by the sender (a reason, an SMTP
// MAIL FROM local part) could inject "; dkim=pass header.d=..." into the
// trusted field.
func authresClean(v string) (string, error) {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case depth > 0:
			switch c {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
			}
		case c == '(':
			depth = 1
			b.WriteByte(' ')
		case c == ')':
			return "", errors.New("unbalanced ')'")
		case c == '"':
			var q strings.Builder
			closed := false
			for i++; i < len(v); i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
					q.WriteByte(v[i])
					continue
				}
				if v[i] == '"' {
					closed = true
					break
				}
				q.WriteByte(v[i])
			}
			if !closed {
				return "", errors.New("unterminated quoted string")
			}
			if authresPlainWord(q.String()) {
				b.WriteString(q.String())
			} else {
				b.WriteByte('x')
			}
		default:
			b.WriteByte(c)
		}
	}
	if depth > 0 {
		return "", errors.New("unterminated comment")
	}
	return b.String(), nil
}

// authresPlainWord reports whether s can stand unquoted in a result: a
// non-empty run of letters, digits and . - _ + @.
func authresPlainWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-_+@", c) >= 0) {
			return false
		}
	}
	return true
}
