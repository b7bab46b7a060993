package acmemail

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// The lines that enclose the digest in a response mail (RFC 8823 §3.2).
const (
	ResponseBegin = "-----BEGIN ACME RESPONSE-----"
	ResponseEnd   = "-----END ACME RESPONSE-----"
)

// replyDigestLen is the length of an unpadded base64url SHA-256 digest.
const replyDigestLen = 43

// ReplyOptions are the parts of a response mail that are not derived from
// the challenge.
type ReplyOptions struct {
	// Date is the Date header; zero means now.
	Date time.Time
	// MessageID is the Message-ID header, "<...>"; "" generates a random
	// one at the domain of the From address.
	MessageID string
}

// ComposeReply builds the RFC 8823 §3.2 response mail to the challenge ch,
// from the address from (the identifier being validated), carrying digest
// (from [ResponseDigest]). It returns the raw message, CRLF line endings
// throughout, and the envelope recipients: all of the challenge's Reply-To
// addresses, else its From.
//
// The message has this shape, which every known server accepts:
//
//	Date, Message-ID, In-Reply-To and References (the challenge's
//	Message-ID; both omitted if it had none), From: <from>, To,
//	Subject: Re: ACME: <token-part1 as received>, MIME-Version: 1.0,
//	Content-Type: text/plain; charset=us-ascii, Content-Transfer-Encoding: 7bit,
//	and a body of the BEGIN line, the digest unpadded on one line, the END line.
//
// Every value is checked: CR, LF, other control characters and non-ASCII
// text are refused, so nothing can inject a header. An internationalized
// From or recipient (RFC 6531) is written as UTF-8 in the header (RFC
// 6532); the message must then be submitted with SMTPUTF8 (see
// [NeedsSMTPUTF8]).
func ComposeReply(ch *ChallengeMail, from, digest string, opt ReplyOptions) (raw []byte, to []string, err error) {
	if ch == nil {
		return nil, nil, errors.New("compose reply: no challenge")
	}
	if err := replyCheckAddress(from); err != nil {
		return nil, nil, fmt.Errorf("compose reply: From address: %w", err)
	}
	digest = strings.TrimRight(digest, "=")
	if len(digest) != replyDigestLen || tokenFirstNonAlphabet(digest) >= 0 {
		return nil, nil, fmt.Errorf("compose reply: the digest is not %d base64url characters", replyDigestLen)
	}
	if err := tokenCheckPadded(ch.TokenPart1); err != nil {
		return nil, nil, fmt.Errorf("compose reply: token-part1: %w", err)
	}
	if len(ch.TokenPart1) > challengeMaxTokenLen {
		return nil, nil, fmt.Errorf("compose reply: token-part1 is longer than %d characters", challengeMaxTokenLen)
	}

	rcpts := ch.ReplyTo
	if len(rcpts) == 0 {
		if ch.From == "" {
			return nil, nil, errors.New("compose reply: the challenge has neither Reply-To nor From")
		}
		rcpts = []string{ch.From}
	}
	seen := make(map[string]bool)
	for _, a := range rcpts {
		if err := replyCheckAddress(a); err != nil {
			return nil, nil, fmt.Errorf("compose reply: recipient: %w", err)
		}
		if k := strings.ToLower(a); !seen[k] {
			seen[k] = true
			to = append(to, a)
		}
	}

	if ch.MessageID != "" && !challengeValidMsgID(ch.MessageID) {
		return nil, nil, errors.New("compose reply: the challenge's Message-ID is not a valid \"<...>\" id")
	}
	msgID := opt.MessageID
	if msgID == "" {
		domain := from[strings.LastIndexByte(from, '@')+1:]
		msgID = "<" + rand.Text() + ".acmemail@" + strings.ToLower(domain) + ">"
	} else if !challengeValidMsgID(msgID) {
		return nil, nil, errors.New("compose reply: ReplyOptions.MessageID is not a valid \"<...>\" id")
	}
	date := opt.Date
	if date.IsZero() {
		date = time.Now()
	}

	var b bytes.Buffer
	hdr := func(k, v string) {
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteString("\r\n")
	}
	hdr("Date", date.Format(time.RFC1123Z))
	hdr("Message-ID", msgID)
	if ch.MessageID != "" {
		hdr("In-Reply-To", ch.MessageID)
		hdr("References", ch.MessageID)
	}
	hdr("From", from)
	hdr("To", replyFoldList(len("To: "), to))
	hdr("Subject", "Re: ACME: "+ch.TokenPart1)
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=us-ascii")
	hdr("Content-Transfer-Encoding", "7bit")
	b.WriteString("\r\n")
	b.WriteString(ResponseBegin + "\r\n")
	b.WriteString(digest + "\r\n")
	b.WriteString(ResponseEnd + "\r\n")

	// Belt and braces: every value above was checked, but make sure.
	if err := replyCheckWire(b.Bytes(), NeedsSMTPUTF8(from, to)); err != nil {
		return nil, nil, fmt.Errorf("compose reply: %w", err)
	}
	return b.Bytes(), to, nil
}

// replyFoldList joins addresses with ", ", folding before a line would
// pass 78 characters. used is what the line already holds.
func replyFoldList(used int, addrs []string) string {
	var b strings.Builder
	n := used
	for i, a := range addrs {
		if i > 0 {
			if n+2+len(a) > 78 {
				b.WriteString(",\r\n ")
				n = 1
			} else {
				b.WriteString(", ")
				n += 2
			}
		}
		b.WriteString(a)
		n += len(a)
	}
	return b.String()
}

// replyCheckWire checks that msg is 7-bit text with CRLF line endings only,
// no line longer than 998 octets, and no header line that does not look
// like a field or a continuation. With utf8Header, header lines may also
// hold UTF-8 (RFC 6532, for internationalized addresses); the body stays
// 7-bit.
func replyCheckWire(msg []byte, utf8Header bool) error {
	inHeader := true
	for len(msg) > 0 {
		i := bytes.Index(msg, []byte("\r\n"))
		if i < 0 {
			return errors.New("unterminated line")
		}
		line := msg[:i]
		msg = msg[i+2:]
		if len(line) > 998 {
			return errors.New("line longer than 998 octets")
		}
		if inHeader && utf8Header && !utf8.Valid(line) {
			return errors.New("invalid UTF-8 in a header line")
		}
		for _, c := range line {
			if c >= 0x80 && inHeader && utf8Header {
				continue
			}
			if c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7f {
				return errors.New("control or non-ASCII character in the message")
			}
		}
		if inHeader {
			if len(line) == 0 {
				inHeader = false
				continue
			}
			if line[0] != ' ' && line[0] != '\t' && bytes.IndexByte(line, ':') <= 0 {
				return errors.New("malformed header line")
			}
		}
	}
	return nil
}

// ParseResponse extracts the digest from the text body of a response mail:
// the text between the first BEGIN ACME RESPONSE line and the END line
// after it, with all whitespace (the digest may be split over lines) and
// trailing '=' padding removed. The digest must be 43 base64url characters
// (a SHA-256 value). Text before and after the block is ignored.
func ParseResponse(body []byte) (string, error) {
	i := bytes.Index(body, []byte(ResponseBegin))
	if i < 0 {
		return "", errors.New("parse response: no " + ResponseBegin + " line")
	}
	rest := body[i+len(ResponseBegin):]
	j := bytes.Index(rest, []byte(ResponseEnd))
	if j < 0 {
		return "", errors.New("parse response: no " + ResponseEnd + " line after the BEGIN line")
	}
	block := rest[:j]
	if len(block) > 4096 {
		return "", errors.New("parse response: the response block is longer than 4096 octets")
	}
	d := make([]byte, 0, replyDigestLen+2)
	for _, c := range block {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		d = append(d, c)
	}
	digest := strings.TrimRight(string(d), "=")
	if digest == "" {
		return "", errors.New("parse response: the response block is empty")
	}
	if k := tokenFirstNonAlphabet(digest); k >= 0 {
		return "", fmt.Errorf("parse response: the digest has a character outside the base64url alphabet at position %d", k+1)
	}
	if len(digest) != replyDigestLen {
		return "", fmt.Errorf("parse response: the digest has %d base64url characters, want %d", len(digest), replyDigestLen)
	}
	if _, err := base64.RawURLEncoding.DecodeString(digest); err != nil {
		return "", fmt.Errorf("parse response: decode the digest: %w", err)
	}
	return digest, nil
}

// replyCheckAddress checks an address for the reply's header and
// envelope: an ASCII addr-spec ([addrSpecCheckASCII]), or one with an
// internationalized (RFC 6531) local part and an A-label domain, already
// normalized ([NormalizeAddress]).
func replyCheckAddress(addr string) error {
	if !addrHasNonASCII(addr) {
		return addrSpecCheckASCII(addr)
	}
	n, err := NormalizeAddress(addr)
	if err != nil {
		return err
	}
	if n != addr && !strings.EqualFold(n, addr) {
		return fmt.Errorf("%q: write the domain in A-labels (%s)", tokenQuoteShort(addr), n)
	}
	return nil
}

// NeedsSMTPUTF8 reports whether mail from from to the recipients needs the
// SMTPUTF8 extension (RFC 6531): one of the addresses is non-ASCII.
func NeedsSMTPUTF8(from string, to []string) bool {
	if addrHasNonASCII(from) {
		return true
	}
	for _, a := range to {
		if addrHasNonASCII(a) {
			return true
		}
	}
	return false
}

// addrSpecCheckASCII checks that addr is an all-ASCII addr-spec with a
// dot-atom local part and a host-name domain: the only form acmemail
// writes into headers and CSRs.
func addrSpecCheckASCII(addr string) error {
	at := strings.LastIndexByte(addr, '@')
	if addr == "" {
		return errors.New("empty address")
	}
	if at < 0 {
		return fmt.Errorf("%q has no @", tokenQuoteShort(addr))
	}
	local, domain := addr[:at], addr[at+1:]
	if addrHasNonASCII(local) {
		return fmt.Errorf("%q: internationalized local parts are not supported yet", tokenQuoteShort(addr))
	}
	if addrHasNonASCII(domain) {
		return fmt.Errorf("%q: internationalized domain names are not supported yet; use the A-label (xn--) form", tokenQuoteShort(addr))
	}
	if len(addr) > 254 {
		return fmt.Errorf("%q is longer than 254 characters", tokenQuoteShort(addr))
	}
	if !addrIsDotAtom(local) || len(local) > 64 {
		return fmt.Errorf("%q: the local part is not a plain dot-atom (quoted local parts are not supported)", tokenQuoteShort(addr))
	}
	if !addrIsHostName(domain) {
		return fmt.Errorf("%q: the domain is not a host name", tokenQuoteShort(addr))
	}
	return nil
}

func addrHasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// addrIsDotAtom reports whether s is an RFC 5322 dot-atom-text.
func addrIsDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// addrIsHostName reports whether s is a DNS host name (LDH labels of 1 to
// 63 characters, no leading or trailing hyphen, at most 253 characters).
func addrIsHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
