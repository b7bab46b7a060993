package acmemail

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// JoinMode says how token-part1 (from the challenge mail's Subject) and
// token-part2 (from the challenge object) are joined into the ACME token.
// RFC 8823 says "concatenates" without saying whether strings or octets
// are meant, and real servers disagree (see testdata/token-join.json).
type JoinMode int

const (
	// JoinString joins the two parts as text: token-part1 exactly as
	// received (whitespace removed, any '=' padding kept), then
	// token-part2. acme4j, acme2certifier and secsy-pki do this.
	JoinString JoinMode = iota
	// JoinOctet base64url-decodes both parts, joins the octets and
	// re-encodes them without padding. CASTLE's reference client and acmez
	// do this.
	JoinOctet
)

// String returns "string" or "octet".
func (m JoinMode) String() string {
	switch m {
	case JoinString:
		return "string"
	case JoinOctet:
		return "octet"
	}
	return fmt.Sprintf("JoinMode(%d)", int(m))
}

// MarshalText implements [encoding.TextMarshaler].
func (m JoinMode) MarshalText() ([]byte, error) {
	if m != JoinString && m != JoinOctet {
		return nil, fmt.Errorf("unknown token join mode %d", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] with [ParseJoinMode].
func (m *JoinMode) UnmarshalText(text []byte) error {
	v, err := ParseJoinMode(string(text))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseJoinMode parses "string" or "octet" (case-insensitive).
func ParseJoinMode(s string) (JoinMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "string":
		return JoinString, nil
	case "octet":
		return JoinOctet, nil
	}
	return 0, fmt.Errorf("unknown token join mode %q (want string or octet)", tokenQuoteShort(s))
}

// KeyAuthorization returns the RFC 8555 §8.1 key authorization for an
// email-reply-00 challenge: token "." thumbprint, where token is
// tokenPart1 joined with tokenPart2 as mode says. tokenPart1 is used
// exactly as [ParseSubjectToken] returned it (any '=' padding kept);
// thumbprint is the base64url RFC 7638 SHA-256 thumbprint of the account
// key. The result is secret until the challenge is validated: never log it.
func KeyAuthorization(tokenPart1, tokenPart2, thumbprint string, mode JoinMode) (string, error) {
	if err := tokenCheckPadded(tokenPart1); err != nil {
		return "", fmt.Errorf("key authorization: token-part1: %w", err)
	}
	if err := tokenCheckPadded(tokenPart2); err != nil {
		return "", fmt.Errorf("key authorization: token-part2: %w", err)
	}
	if thumbprint == "" {
		return "", errors.New("key authorization: the account key thumbprint is empty")
	}
	if i := tokenFirstNonAlphabet(thumbprint); i >= 0 {
		return "", errors.New("key authorization: the account key thumbprint is not unpadded base64url")
	}
	var token string
	switch mode {
	case JoinString:
		token = tokenPart1 + tokenPart2
	case JoinOctet:
		p1, err := tokenDecodeLenient(tokenPart1)
		if err != nil {
			return "", fmt.Errorf("key authorization: decode token-part1: %w", err)
		}
		p2, err := tokenDecodeLenient(tokenPart2)
		if err != nil {
			return "", fmt.Errorf("key authorization: decode token-part2: %w", err)
		}
		token = base64.RawURLEncoding.EncodeToString(append(p1, p2...))
	default:
		return "", fmt.Errorf("key authorization: unknown token join mode %d", int(mode))
	}
	return token + "." + thumbprint, nil
}

// ResponseDigest returns base64url(SHA-256(keyAuthorization)) without
// padding (43 characters): the value that goes into the response mail.
func ResponseDigest(keyAuthorization string) string {
	sum := sha256.Sum256([]byte(keyAuthorization))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// tokenIsAlphabet reports whether c is in the base64url alphabet
// (RFC 4648 §5), padding excluded.
func tokenIsAlphabet(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// tokenFirstNonAlphabet returns the index of the first byte of s outside
// the base64url alphabet, or -1.
func tokenFirstNonAlphabet(s string) int {
	for i := 0; i < len(s); i++ {
		if !tokenIsAlphabet(s[i]) {
			return i
		}
	}
	return -1
}

// tokenSplitPadding splits s into its data and its trailing '=' padding.
func tokenSplitPadding(s string) (data string, pad int) {
	data = strings.TrimRight(s, "=")
	return data, len(s) - len(data)
}

// tokenCheckPadded checks that s is base64url, optionally with correct
// '=' padding. It never puts s itself in the error.
func tokenCheckPadded(s string) error {
	data, pad := tokenSplitPadding(s)
	if data == "" {
		return errors.New("empty")
	}
	if i := tokenFirstNonAlphabet(data); i >= 0 {
		return fmt.Errorf("character %d (%q) is outside the base64url alphabet", i+1, rune(data[i]))
	}
	if len(data)%4 == 1 {
		return fmt.Errorf("%d base64url characters cannot encode whole octets", len(data))
	}
	if pad > 0 && (pad > 2 || (len(data)+pad)%4 != 0) {
		return fmt.Errorf("wrong '=' padding (%d characters then %d '=')", len(data), pad)
	}
	return nil
}

// tokenDecodeLenient decodes base64url with or without '=' padding. Unused
// bits in the last character are ignored, as they carry nothing.
func tokenDecodeLenient(s string) ([]byte, error) {
	if err := tokenCheckPadded(s); err != nil {
		return nil, err
	}
	data, _ := tokenSplitPadding(s)
	return base64.RawURLEncoding.DecodeString(data)
}

// tokenQuoteShort bounds untrusted text before it goes into an error.
func tokenQuoteShort(s string) string {
	const limit = 64
	if t := truncate(s, limit); len(t) < len(s) {
		return t + "..."
	}
	return s
}
