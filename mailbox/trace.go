package mailbox

import (
	"bytes"
	"encoding/base64"
	"io"
	"slices"
	"strings"
	"sync"
)

// redactor is the io.Writer handed to go-imap and go-smtp as their debug
// writer. Those libraries write the raw protocol of both directions into
// one writer, passwords included. redactor buffers the stream into lines,
// replaces the arguments of authentication commands and the client's part
// of an authentication exchange with "[redacted]", and as a second line of
// defence replaces any remaining occurrence of the password (plain, quoted
// or base64-encoded as PLAIN and LOGIN send it).
//
// Write never fails: a broken trace must not break the mail connection.
type redactor struct {
	mu      sync.Mutex
	w       io.Writer
	smtp    bool
	secrets [][]byte
	buf     []byte

	secretLines int    // IMAP: client lines still to redact
	inAuth      bool   // SMTP: inside an AUTH exchange
	inData      bool   // SMTP: DATA content
	suppress    []byte // one line to drop (the synthetic SMTP greeting)
}

const maxTraceLine = 64 << 10

var redacted = []byte("[redacted]")

func newRedactor(w io.Writer, smtp bool, user, password string) *redactor {
	if w == nil {
		return nil
	}
	r := &redactor{w: w, smtp: smtp}
	add := func(s string) {
		if s != "" {
			r.secrets = append(r.secrets, []byte(s))
		}
	}
	if len(password) >= 4 {
		add(password)
		add(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(password))
	}
	if password != "" {
		add(base64.StdEncoding.EncodeToString([]byte(password)))
		add(base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password)))
	}
	return r
}

// addSecrets adds strings to mask wherever they appear, such as an OAuth
// token fetched for a new login. Short strings are ignored: masking them
// would garble the trace without protecting anything.
func (r *redactor) addSecrets(secrets ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if len(s) >= 4 && !slices.ContainsFunc(r.secrets, func(b []byte) bool { return string(b) == s }) {
			r.secrets = append(r.secrets, []byte(s))
		}
	}
}

// writer returns r as an io.Writer, or nil (not a typed nil) when tracing is
// off.
func (r *redactor) writer() io.Writer {
	if r == nil {
		return nil
	}
	return r
}

// reset forgets the protocol state at the start of a new connection.
func (r *redactor) reset() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.buf, r.secretLines, r.inAuth, r.inData, r.suppress = r.buf[:0], 0, false, false, nil
	r.mu.Unlock()
}

func (r *redactor) suppressLine(line string) {
	r.mu.Lock()
	r.suppress = []byte(line)
	r.mu.Unlock()
}

func (r *redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	start := 0
	for {
		i := bytes.IndexByte(r.buf[start:], '\n')
		if i < 0 {
			break
		}
		r.emit(r.buf[start : start+i+1])
		start += i + 1
	}
	if len(r.buf)-start > maxTraceLine {
		r.emit(r.buf[start:])
		start = len(r.buf)
	}
	r.buf = append(r.buf[:0], r.buf[start:]...)
	return len(p), nil
}

func (r *redactor) emit(line []byte) {
	if r.suppress != nil && bytes.Equal(line, r.suppress) {
		r.suppress = nil
		return
	}
	var out []byte
	if r.smtp {
		out = r.smtpLine(line)
	} else {
		out = r.imapLine(line)
	}
	for _, s := range r.secrets {
		out = bytes.ReplaceAll(out, s, redacted)
	}
	_, _ = r.w.Write(out) // tracing is best effort
}

func lineEnd(line []byte) []byte {
	if bytes.HasSuffix(line, []byte("\r\n")) {
		return []byte("\r\n")
	}
	if bytes.HasSuffix(line, []byte("\n")) {
		return []byte("\n")
	}
	return nil
}

// isIMAPTag reports whether t looks like a tag of go-imap's client ("T12").
func isIMAPTag(t []byte) bool {
	if len(t) < 2 || t[0] != 'T' {
		return false
	}
	for _, c := range t[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// imapLine redacts one IMAP line. go-imap traces what it writes after the
// write has gone out, while its reader goroutine traces what it reads, so a
// server's reply can appear in the trace before the command it answers.
// The rules therefore do not depend on replies: the arguments of LOGIN and
// AUTHENTICATE are cut, and the next client line is redacted when the
// command continues on it (a literal, or a SASL response).
func (r *redactor) imapLine(line []byte) []byte {
	body := bytes.TrimRight(line, "\r\n")
	if r.secretLines > 0 && !isIMAPServerLine(body) {
		if !bytes.HasSuffix(body, []byte("}")) { // a literal continues the command
			r.secretLines--
		}
		return append(append([]byte{}, redacted...), lineEnd(line)...)
	}
	fields := bytes.SplitN(body, []byte(" "), 4)
	if len(fields) < 2 || !isIMAPTag(fields[0]) {
		return line
	}
	switch strings.ToUpper(string(fields[1])) {
	case "LOGIN":
		if bytes.HasSuffix(body, []byte("}")) {
			r.secretLines = 1
		}
		out := append(append([]byte{}, fields[0]...), " LOGIN [redacted]"...)
		return append(out, lineEnd(line)...)
	case "AUTHENTICATE":
		out := append(append([]byte{}, fields[0]...), " AUTHENTICATE"...)
		if len(fields) > 2 {
			out = append(append(out, ' '), fields[2]...)
		}
		if len(fields) > 3 {
			out = append(out, " [redacted]"...)
		} else {
			r.secretLines = 1
		}
		return append(out, lineEnd(line)...)
	}
	return line
}

// isIMAPServerLine reports whether line is an untagged response, a
// continuation request or a tagged status response.
func isIMAPServerLine(line []byte) bool {
	if bytes.HasPrefix(line, []byte("* ")) || bytes.HasPrefix(line, []byte("+ ")) || bytes.Equal(line, []byte("+")) {
		return true
	}
	fields := bytes.SplitN(line, []byte(" "), 3)
	if len(fields) < 2 || !isIMAPTag(fields[0]) {
		return false
	}
	switch strings.ToUpper(string(fields[1])) {
	case "OK", "NO", "BAD":
		return true
	}
	return false
}

// isSMTPReply reports whether line starts like a server reply ("250-", "334 ").
func isSMTPReply(line []byte) bool {
	return len(line) >= 4 && isDigit(line[0]) && isDigit(line[1]) && isDigit(line[2]) && (line[3] == ' ' || line[3] == '-')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (r *redactor) smtpLine(line []byte) []byte {
	body := bytes.TrimRight(line, "\r\n")
	if r.inData {
		if bytes.Equal(body, []byte(".")) {
			r.inData = false
		}
		return line
	}
	if r.inAuth {
		if isSMTPReply(body) {
			if body[3] == ' ' && !bytes.HasPrefix(body, []byte("334")) {
				r.inAuth = false
			}
			return line
		}
		return append(append([]byte{}, redacted...), lineEnd(line)...)
	}
	if bytes.HasPrefix(body, []byte("354")) && len(body) >= 4 && body[3] == ' ' {
		r.inData = true
		return line
	}
	fields := bytes.SplitN(body, []byte(" "), 3)
	if strings.EqualFold(string(fields[0]), "AUTH") {
		r.inAuth = true
		out := []byte("AUTH")
		if len(fields) > 1 {
			out = append(append(out, ' '), fields[1]...)
		}
		if len(fields) > 2 {
			out = append(out, " [redacted]"...)
		}
		return append(out, lineEnd(line)...)
	}
	return line
}
