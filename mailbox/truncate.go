package mailbox

import (
	"strconv"
	"unicode/utf8"
)

// truncate cuts s to at most limit bytes without cutting a UTF-8 encoded
// character in two. It returns s itself when len(s) <= limit, and
// otherwise the longest prefix of s of at most limit bytes that ends where
// a character ends; a negative limit counts as 0. So the result is always
// a prefix of s of at most max(limit, 0) bytes, and it is valid UTF-8
// whenever s is.
//
// When s is not valid UTF-8 where it is cut, the cut moves back at most
// utf8.UTFMax-1 bytes looking for the start of a character, and is made
// at limit if there is none.
//
// It is the one truncation helper of this package. (Package acmemail has
// the same one: the libraries do not import each other.)
func truncate(s string, limit int) string {
	limit = max(limit, 0)
	if len(s) <= limit {
		return s
	}
	for i := limit; i >= 0 && i > limit-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:limit]
}

// quoteShort quotes untrusted or user-given text for an error message, as
// %q does, cut to limit bytes with "..." after it when it was longer.
func quoteShort(s string, limit int) string {
	if t := truncate(s, limit); len(t) < len(s) {
		return strconv.Quote(t + "...")
	}
	return strconv.Quote(s)
}
