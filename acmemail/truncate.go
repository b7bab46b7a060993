package acmemail

import "unicode/utf8"

// truncate cuts s to at most limit bytes without cutting a UTF-8 encoded
// character in two. It returns s itself when len(s) <= limit, and
// otherwise the longest prefix of s of at most limit bytes that ends where
// a character ends; a negative limit counts as 0. So the result is always
// a prefix of s of at most max(limit, 0) bytes, and it is valid UTF-8
// whenever s is.
//
// When s is not valid UTF-8 where it is cut, the cut moves back at most
// utf8.UTFMax-1 bytes looking for the start of a character, and is made
// at limit if there is none: a run of stray continuation bytes does not
// cut everything away.
//
// It is the one truncation helper of this package: text meant for display
// (in errors, warnings and problem details) is bounded with it.
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
