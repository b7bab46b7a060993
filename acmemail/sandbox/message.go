package sandbox

import (
	"bytes"
	"errors"
	"strings"
)

// headerField is one header field of a message, kept byte for byte.
type headerField struct {
	name string // as written, without the colon
	raw  []byte // the whole field, folded lines and line endings included
}

// value returns the unfolded field body without the name and colon.
func (f headerField) value() string {
	v := string(f.raw[len(f.name)+1:])
	v = strings.ReplaceAll(v, "\r\n", "")
	v = strings.ReplaceAll(v, "\n", "")
	return strings.TrimSpace(v)
}

var errNoHeader = errors.New("message has no header")

// splitMessage splits a raw RFC 5322 message into its header fields and
// body. Lines may end in CRLF or LF. A message without a blank line is all
// header.
func splitMessage(raw []byte) ([]headerField, []byte, error) {
	var fields []headerField
	rest := raw
	for len(rest) > 0 {
		end := bytes.IndexByte(rest, '\n')
		line := rest
		if end >= 0 {
			line = rest[:end+1]
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return fields, rest[len(line):], nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				return nil, nil, errors.New("message starts with a continuation line")
			}
			f := &fields[len(fields)-1]
			f.raw = raw[len(raw)-len(rest)-len(f.raw) : len(raw)-len(rest)+len(line)]
		} else {
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 {
				return nil, nil, errors.New("header line without a field name")
			}
			name := string(line[:colon])
			for i := 0; i < len(name); i++ {
				if c := name[i]; c <= ' ' || c >= 0x7f {
					return nil, nil, errors.New("invalid header field name")
				}
			}
			off := len(raw) - len(rest)
			fields = append(fields, headerField{name: name, raw: raw[off : off+len(line)]})
		}
		rest = rest[len(line):]
	}
	if len(fields) == 0 {
		return nil, nil, errNoHeader
	}
	return fields, nil, nil
}

// fieldsNamed returns the fields called name, compared without case.
func fieldsNamed(fields []headerField, name string) []headerField {
	var out []headerField
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			out = append(out, f)
		}
	}
	return out
}

// dkimHeaders are the fields a signature covers when present: the MUST and
// SHOULD lists of RFC 8823 §3.1 and §3.2, plus MIME-Version.
var dkimHeaders = []string{
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "In-Reply-To", "References",
	"Message-ID", "Auto-Submitted", "Content-Type", "Content-Transfer-Encoding", "MIME-Version",
	"Resent-Date", "Resent-From", "Resent-To", "Resent-Cc",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Subscribe", "List-Post", "List-Owner",
	"List-Archive", "List-Unsubscribe-Post",
}

// rfc8823Required are the fields RFC 8823 says h= MUST include.
var rfc8823Required = []string{
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "In-Reply-To", "References",
	"Message-ID", "Content-Type", "Content-Transfer-Encoding",
}

// replyRequired are the fields of rfc8823Required a reply's signature must
// cover when the reply has them. Like the real CAs, the sandbox does not
// insist on Message-ID, Content-Type and Content-Transfer-Encoding:
// OpenDKIM's default h= (RFC 6376 §5.4.1's recommended set) leaves them
// out, and a user cannot change how the provider signs.
var replyRequired = []string{
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "In-Reply-To", "References",
}

// singleFields may appear at most once (RFC 5322 §3.6).
var singleFields = []string{
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "In-Reply-To", "References", "Message-ID",
}

// signedHeaderKeys lists, for DKIM h=, each field of dkimHeaders once per
// occurrence in the message (as OpenDKIM does: present fields only).
func signedHeaderKeys(fields []headerField) []string {
	var keys []string
	for _, name := range dkimHeaders {
		for range fieldsNamed(fields, name) {
			keys = append(keys, name)
		}
	}
	return keys
}

// removeFields returns raw without the header fields for which drop
// reports true.
func removeFields(raw []byte, drop func(headerField) bool) []byte {
	fields, body, err := splitMessage(raw)
	if err != nil {
		return raw
	}
	var out bytes.Buffer
	removed := false
	for _, f := range fields {
		if drop(f) {
			removed = true
			continue
		}
		out.Write(f.raw)
	}
	if !removed {
		return raw
	}
	headerLen := len(raw) - len(body)
	// Keep the blank line that ended the header.
	end := 0
	for _, f := range fields {
		end += len(f.raw)
	}
	out.Write(raw[end:headerLen])
	out.Write(body)
	return out.Bytes()
}
