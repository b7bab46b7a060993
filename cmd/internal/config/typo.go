package config

import (
	"fmt"
	"strings"

	"github.com/acmemail/acmemail/acmemail"
)

// oneEditAway returns a key that known accepts and that is one typo away
// from k (a letter left out, added, changed, or two neighbours swapped:
// "sever", "smpt"), or "" if there is none. The first one found wins.
func oneEditAway(k string, known func(string) bool) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-"
	try := func(c string) bool { return c != k && c != "" && known(c) }
	for i := 0; i+1 < len(k); i++ { // swapped neighbours
		b := []byte(k)
		b[i], b[i+1] = b[i+1], b[i]
		if c := string(b); try(c) {
			return c
		}
	}
	for i := 0; i <= len(k); i++ {
		if i < len(k) {
			if c := k[:i] + k[i+1:]; try(c) { // one too many
				return c
			}
		}
		for j := 0; j < len(alphabet); j++ {
			if c := k[:i] + alphabet[j:j+1] + k[i:]; try(c) { // one left out
				return c
			}
			if i < len(k) {
				if c := k[:i] + alphabet[j:j+1] + k[i+1:]; try(c) { // one changed
					return c
				}
			}
		}
	}
	return ""
}

// syntaxHints explains the TOML mistakes a configuration file's author
// makes most: an address without quotes in a table name, and a string value
// without quotes.
func syntaxHints(data []byte, row int, msg string) []string {
	lines := strings.Split(string(data), "\n")
	line := ""
	if row >= 1 && row <= len(lines) {
		line = strings.TrimSpace(lines[row-1])
	}
	switch {
	case strings.HasPrefix(line, "[identity.") && !strings.Contains(line, `"`):
		addr := strings.TrimSuffix(strings.TrimPrefix(line, "[identity."), "]")
		return []string{fmt.Sprintf(`an address in a table name goes in double quotes: [identity.%q]`, addr)}
	case strings.Contains(msg, "at start of value"):
		return []string{`a string value goes in double quotes, e.g. server = "castle"`}
	}
	return nil
}

// normalizeAddress is the address of an [identity."ADDRESS"] table as
// the commands take it (domain in lower case), or why it is none.
func normalizeAddress(s string) (string, error) {
	if strings.HasPrefix(s, "*") {
		return "", fmt.Errorf("%q: wildcards are not allowed in email identifiers", s)
	}
	n, err := acmemail.NormalizeAddress(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a mail address (want local@domain): %v", s, err)
	}
	return n, nil
}
