package acmemail

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Limits that bound the work a hostile mail can cause. They hold for every
// mail, and every MIME part of one, that the challenge checks
// ([ParseChallengeMail]) and the authenticity checks ([MailVerifier]) read.
const (
	// maxMailSize is the largest mail that is looked at. Challenge mails
	// are a few kilobytes.
	maxMailSize = 10 << 20
	// maxHeaderSize bounds the header section, counted from the start of
	// the mail to the end of the empty line that ends it (to the end of the
	// mail when there is none).
	maxHeaderSize = 256 << 10
	// maxHeaderFields bounds the number of header fields.
	maxHeaderFields = 1000
	// maxFieldSize bounds one unfolded header field value that is parsed
	// further (an address list, a Subject, a Date).
	maxFieldSize = 32 << 10
)

// errMalformedHeader is wrapped by the errors of [readHeader] for a header
// section that breaks RFC 5322's syntax.
var errMalformedHeader = errors.New("malformed header section")

// headerField is one header field: its name as written (without the
// white space some senders put before the colon) and its unfolded value.
type headerField struct {
	name, value string
}

// header is a header section, top field first, as acmemail's security
// checks see it. [readHeader] is the only parser of header sections in
// this package: the challenge checks, DKIM, S/MIME and
// Authentication-Results all read the same fields with it, so no field can
// be visible to one check and hidden from another (which would be a way
// around the checks for duplicate fields and for what a DKIM h= signs).
type header []headerField

// readHeader parses the header section at the start of raw (RFC 5322
// §2.2) and returns its fields and the body that follows the empty line
// ending it, or a nil body when raw has no such line.
//
// Lines end in CRLF or in a bare LF, as go-msgauth's DKIM verifier
// accepts both. A value is unfolded as a MUA shows it: the white space
// around each line break becomes one space, and the value is trimmed. A
// field name must be one or more printable ASCII characters (RFC 5322
// ftext); white space between it and the colon is dropped. The limits
// above are enforced: raw at most maxMailSize bytes, the header section at
// most maxHeaderSize bytes, at most maxHeaderFields fields.
func readHeader(raw []byte) (header, []byte, error) {
	if len(raw) > maxMailSize {
		return nil, nil, fmt.Errorf("the mail is %d bytes, more than the %d accepted", len(raw), maxMailSize)
	}
	var (
		h     header
		name  string   // the name of the field being read
		words []string // its value's lines, trimmed, the empty ones left out
		open  bool     // a field is being read
	)
	flush := func() error {
		if !open {
			return nil
		}
		if len(h) == maxHeaderFields {
			return fmt.Errorf("more than %d header fields", maxHeaderFields)
		}
		h = append(h, headerField{name: name, value: strings.TrimSpace(strings.Join(words, " "))})
		open, words = false, words[:0]
		return nil
	}
	for pos, n := 0, 1; ; n++ {
		if pos == len(raw) {
			if err := flush(); err != nil {
				return nil, nil, err
			}
			return h, nil, nil
		}
		line, end := raw[pos:], len(raw)
		i := bytes.IndexByte(line, '\n')
		if i >= 0 {
			line, end = line[:i], pos+i+1
		}
		if end > maxHeaderSize {
			return nil, nil, fmt.Errorf("header section is longer than %d bytes", maxHeaderSize)
		}
		pos = end
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			if err := flush(); err != nil {
				return nil, nil, err
			}
			if i < 0 { // a CR at the very end: no empty line, no body
				return h, nil, nil
			}
			return h, raw[end:], nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !open {
				return nil, nil, fmt.Errorf("%w: it starts with a continuation line (a line that begins with white space)", errMalformedHeader)
			}
			words = headerAppendLine(words, line)
			continue
		}
		if err := flush(); err != nil {
			return nil, nil, err
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return nil, nil, fmt.Errorf("%w: header line %d %q has no colon", errMalformedHeader, n, authQuote(string(line)))
		}
		k = bytes.TrimRight(k, " \t")
		if !headerValidName(k) {
			return nil, nil, fmt.Errorf("%w: header line %d has a malformed field name %q", errMalformedHeader, n, authQuote(string(k)))
		}
		name, open = string(k), true
		words = headerAppendLine(words, v)
	}
}

// headerAppendLine appends one line of a value to words, without the
// white space around it, unless nothing is left of it.
func headerAppendLine(words []string, line []byte) []string {
	if w := bytes.Trim(line, " \t"); len(w) > 0 {
		words = append(words, string(w))
	}
	return words
}

// headerValidName reports whether k is an RFC 5322 field-name: one or more
// printable US-ASCII characters other than the colon. A name outside this
// (with a space, a control or a non-ASCII byte) is one that other parsers
// could read differently; such a header section is refused.
func headerValidName(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	for _, c := range k {
		if c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// count returns how many fields are named name (case-insensitively).
func (h header) count(name string) int {
	n := 0
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			n++
		}
	}
	return n
}

// values returns the values of the fields named name, top first.
func (h header) values(name string) []string {
	var vs []string
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			vs = append(vs, f.value)
		}
	}
	return vs
}

// get returns the value of the topmost field named name, or "".
func (h header) get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			return f.value
		}
	}
	return ""
}

// value is get for a value that is parsed further: it is an error when
// the value is longer than maxFieldSize.
func (h header) value(name string) (string, error) {
	v := h.get(name)
	if len(v) > maxFieldSize {
		return "", fmt.Errorf("%s header field is longer than %d bytes", name, maxFieldSize)
	}
	return v, nil
}

// address parses the topmost field named name as exactly one mailbox and
// returns its addr-spec (see [parseOneAddress]).
func (h header) address(name string) (string, error) {
	v, err := h.value(name)
	if err != nil {
		return "", err
	}
	return parseOneAddress(v)
}

// addresses parses the topmost field named name as an address list and
// returns its addr-specs (see [parseAddressList]); none if it is absent
// or empty.
func (h header) addresses(name string) ([]string, error) {
	v, err := h.value(name)
	if err != nil {
		return nil, err
	}
	return parseAddressList(v)
}
