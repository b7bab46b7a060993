package acmemail

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"
)

// Errors returned (wrapped) by [ParseSubjectToken] and [ParseChallengeMail]
// for mail that must be ignored without a reply.
var (
	// ErrNotChallenge: the Subject has no "ACME:", so the mail is not an
	// RFC 8823 challenge at all.
	ErrNotChallenge = errors.New("not a challenge mail")
	// ErrReplySubject: the Subject has text before "ACME:" (such as "Re:"),
	// so it is a reply, a forward or a tagged copy, not a challenge
	// (RFC 8823 §3 step 5).
	ErrReplySubject = errors.New("subject has text before \"ACME:\" (a reply prefix)")
)

// Limits of the challenge Subject (the limits of the mail and its header
// are in header.go).
const (
	// challengeMaxTokenLen bounds token-part1 (base64url characters).
	challengeMaxTokenLen = 512
	// challengeMinTokenOctets is RFC 8823's 128-bit minimum for token-part1.
	challengeMinTokenOctets = 16
)

// ChallengeMail is a parsed RFC 8823 challenge mail (not yet authenticated).
// Addresses are addr-specs ("local@domain", no display name) with the
// domain lowercased; the local part is kept as sent.
type ChallengeMail struct {
	From             string    // the single From addr-spec
	Sender           string    // "" if absent (or unparseable: Sender is informational)
	To               []string  // addr-specs
	Cc               []string  // informational: nil if absent or unparseable
	ReplyTo          []string  // addr-specs; the reply goes to these if any
	MessageID        string    // "<...>" as in the header, trimmed; "" if absent or unusable
	Subject          string    // decoded (RFC 2047), unfolded
	TokenPart1       string    // whitespace removed, '=' padding kept as received
	AutoSubmitted    string    // raw header value, trimmed
	HasAutoSubmitted bool      // an Auto-Submitted header is present
	Date             time.Time // zero if absent or unparseable
}

// challengeSingletons are the header fields RFC 5322 §3.6 allows at most
// once. A duplicate is rejected: a MUA shows one copy, DKIM signs another.
var challengeSingletons = []string{
	"From", "Sender", "Reply-To", "To", "Cc", "Subject",
	"Message-Id", "Date", "Auto-Submitted",
}

// challengeSubjectDecoder decodes RFC 2047 encoded-words in the Subject.
// RFC 8823 allows only UTF-8 and US-ASCII. (mime.WordDecoder also decodes
// ISO-8859-1 by itself; that is harmless, the token is ASCII.)
var challengeSubjectDecoder = &mime.WordDecoder{
	CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
		cs, _, _ := strings.Cut(charset, "*") // RFC 2231 language suffix
		switch strings.ToLower(cs) {
		case "utf-8", "utf8", "us-ascii", "ascii":
			return r, nil
		}
		return nil, fmt.Errorf("charset %q is not allowed (RFC 8823 allows UTF-8 and US-ASCII)", tokenQuoteShort(charset))
	},
}

// ParseChallengeMail parses the header of a raw RFC 5322 message as an
// RFC 8823 challenge mail. It checks form only: the caller must still
// authenticate the mail (DKIM or S/MIME) and match From, To and
// Auto-Submitted against the pending challenge.
//
// Errors wrap [ErrNotChallenge] when the Subject has no "ACME:" and
// [ErrReplySubject] when text precedes it; other errors mean a mail that
// claims to be a challenge but is malformed. Duplicate From, Subject (or
// other single-instance) header fields and a From with more than one
// address are errors.
func ParseChallengeMail(raw []byte) (*ChallengeMail, error) {
	h, _, err := readHeader(raw)
	if err != nil {
		return nil, fmt.Errorf("parse challenge mail: %w", err)
	}
	for _, k := range challengeSingletons {
		if n := h.count(k); n > 1 {
			return nil, fmt.Errorf("parse challenge mail: more than one %s header field (%d)", k, n)
		}
	}

	// The Subject first, so that ordinary mail is told apart quickly.
	if h.count("Subject") == 0 {
		return nil, fmt.Errorf("parse challenge mail: %w: no Subject header field", ErrNotChallenge)
	}
	rawSubject, err := h.value("Subject")
	if err != nil {
		return nil, fmt.Errorf("parse challenge mail: %w", err)
	}
	subject, err := challengeSubjectDecoder.DecodeHeader(rawSubject)
	if err != nil {
		return nil, fmt.Errorf("parse challenge mail: decode Subject: %w", err)
	}
	tp1, err := ParseSubjectToken(subject)
	if err != nil {
		return nil, fmt.Errorf("parse challenge mail: %w", err)
	}
	ch := &ChallengeMail{Subject: subject, TokenPart1: tp1}

	if h.count("From") == 0 {
		return nil, errors.New("parse challenge mail: no From header field")
	}
	if ch.From, err = h.address("From"); err != nil {
		return nil, fmt.Errorf("parse challenge mail: From: %w", err)
	}
	// Sender and Cc are informational: one that does not parse is left
	// empty rather than making the whole challenge unusable.
	ch.Sender, _ = h.address("Sender")
	ch.Cc, _ = h.addresses("Cc")
	if ch.To, err = h.addresses("To"); err != nil {
		return nil, fmt.Errorf("parse challenge mail: To: %w", err)
	}
	if ch.ReplyTo, err = h.addresses("Reply-To"); err != nil {
		return nil, fmt.Errorf("parse challenge mail: Reply-To: %w", err)
	}

	v, err := h.value("Message-Id")
	if err != nil {
		return nil, fmt.Errorf("parse challenge mail: %w", err)
	}
	ch.MessageID = challengeMessageID(v)

	if h.count("Auto-Submitted") > 0 {
		ch.HasAutoSubmitted = true
		if ch.AutoSubmitted, err = h.value("Auto-Submitted"); err != nil {
			return nil, fmt.Errorf("parse challenge mail: %w", err)
		}
	}
	if v, err := h.value("Date"); err == nil && v != "" {
		if d, err := mail.ParseDate(v); err == nil {
			ch.Date = d
		}
	}
	return ch, nil
}

// challengeMessageID returns the first "<id>" of a Message-ID value, or ""
// when there is none usable. A bare "left@right" without brackets (seen
// from sloppy generators) is bracketed.
func challengeMessageID(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return ""
		}
		id := v[i : i+j+1]
		if !challengeValidMsgID(id) {
			return ""
		}
		return id
	}
	if strings.ContainsAny(v, " \t()>\"") || !strings.Contains(v, "@") {
		return ""
	}
	if id := "<" + v + ">"; challengeValidMsgID(id) {
		return id
	}
	return ""
}

// challengeValidMsgID reports whether id is "<...>" with 1 to 900 printable
// ASCII characters (no '<', '>' or space) inside, so that it can be copied
// into In-Reply-To and References safely.
func challengeValidMsgID(id string) bool {
	if len(id) < 3 || len(id) > 902 || id[0] != '<' || id[len(id)-1] != '>' {
		return false
	}
	for i := 1; i < len(id)-1; i++ {
		c := id[i]
		if c <= ' ' || c >= 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

// ParseSubjectToken extracts token-part1 from a decoded, unfolded Subject
// of the form "ACME: <token-part1>" (RFC 8823 §3.1): all whitespace in the
// token is removed, trailing '=' padding is kept as received, the other
// characters must be base64url, and the token must carry at least 128 bits.
//
// A Subject without "ACME:" gives an error wrapping [ErrNotChallenge]; one
// with any text before "ACME:" ("Re:", "Fwd:", "[SPAM]") gives one wrapping
// [ErrReplySubject]. The whitespace after the colon may be missing.
func ParseSubjectToken(subject string) (string, error) {
	i := strings.Index(subject, "ACME:")
	if i < 0 {
		return "", fmt.Errorf("%w: the subject has no \"ACME:\"", ErrNotChallenge)
	}
	if prefix := strings.TrimSpace(subject[:i]); prefix != "" {
		return "", fmt.Errorf("%w: %q", ErrReplySubject, tokenQuoteShort(strings.ToValidUTF8(prefix, "?")))
	}
	rest := subject[i+len("ACME:"):]
	if len(rest) > 4*challengeMaxTokenLen {
		return "", fmt.Errorf("challenge subject: token-part1 is longer than %d characters", challengeMaxTokenLen)
	}
	tok := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, rest)
	if tok == "" {
		return "", errors.New("challenge subject: no token-part1 after \"ACME:\"")
	}
	if len(tok) > challengeMaxTokenLen {
		return "", fmt.Errorf("challenge subject: token-part1 is longer than %d characters", challengeMaxTokenLen)
	}
	data, _ := tokenSplitPadding(tok)
	if i := tokenFirstNonAlphabet(data); i >= 0 {
		return "", fmt.Errorf("challenge subject: token-part1 has a character outside the base64url alphabet at position %d", i+1)
	}
	if err := tokenCheckPadded(tok); err != nil {
		return "", fmt.Errorf("challenge subject: token-part1: %w", err)
	}
	if n := len(data) * 6 / 8; n < challengeMinTokenOctets {
		return "", fmt.Errorf("challenge subject: token-part1 carries %d bits, RFC 8823 requires at least 128", len(data)*6)
	}
	return tok, nil
}
