package sandbox

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"unicode"
)

const (
	beginResponse = "-----BEGIN ACME RESPONSE-----"
	endResponse   = "-----END ACME RESPONSE-----"
	maxReplyBody  = 1 << 20
)

// reply is a response email as the CA reads it, before it is matched to a
// challenge.
type reply struct {
	from    string   // the single From addr-spec, domain lowercased
	subject string   // decoded, unfolded
	msgIDs  []string // In-Reply-To and References message ids, "<...>"
	digest  string   // the response digest, whitespace removed; "" if none
	noBlock string   // why digest is empty
	dkim    dkimResult
	fatal   string // why the message cannot be a reply at all
}

// parseReply reads raw as an RFC 8823 §3.2 response and checks its DKIM
// signature against the From domain. It never fails; problems are recorded
// in the result.
func parseReply(raw []byte, lookup func(string) ([]string, error)) *reply {
	r := &reply{}
	fields, _, err := splitMessage(raw)
	if err != nil {
		r.fatal = "the message header is malformed: " + err.Error()
		return r
	}
	for _, name := range singleFields {
		if n := len(fieldsNamed(fields, name)); n > 1 {
			r.fatal = fmt.Sprintf("the message has %d %s fields", n, name)
			return r
		}
	}
	for _, f := range fields {
		if len(f.name) > 5 && strings.EqualFold(f.name[:5], "List-") {
			r.fatal = "the message has a " + f.name + " field; RFC 8823 §3.2 forbids List-* fields in responses"
			return r
		}
	}
	froms := fieldsNamed(fields, "From")
	if len(froms) == 0 {
		r.fatal = "the message has no From field"
		return r
	}
	list, err := mail.ParseAddressList(froms[0].value())
	if err != nil || len(list) != 1 {
		r.fatal = "the From field must hold exactly one address"
		return r
	}
	from, prob := canonicalAddress(list[0].Address)
	if prob != nil {
		r.fatal = "the From address is not usable: " + prob.Detail
		return r
	}
	r.from = from
	if s := fieldsNamed(fields, "Subject"); len(s) == 1 {
		dec := new(mime.WordDecoder)
		subj, err := dec.DecodeHeader(s[0].value())
		if err != nil {
			r.fatal = "cannot decode the Subject: " + err.Error()
			return r
		}
		r.subject = subj
	}
	for _, name := range []string{"In-Reply-To", "References"} {
		for _, f := range fieldsNamed(fields, name) {
			r.msgIDs = append(r.msgIDs, messageIDs(f.value())...)
		}
	}

	_, domain := splitAddress(from)
	r.dkim = verifyDKIM(raw, domain, replyRequired, lookup)

	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		r.fatal = "cannot read the message: " + err.Error()
		return r
	}
	text, reason := plainText(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, true)
	if reason != "" {
		r.noBlock = reason
		return r
	}
	r.digest, r.noBlock = extractDigest(text)
	return r
}

// messageIDs returns the "<...>" message ids of an In-Reply-To or References
// field.
func messageIDs(v string) []string {
	var ids []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return ids
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return ids
		}
		ids = append(ids, v[i:i+j+1])
		v = v[i+j+1:]
	}
}

// plainText returns the decoded text/plain content of a body whose media
// type is text/plain, or multipart/alternative with a text/plain part
// (RFC 8823 §3.2 item 7). A reason is returned instead when there is none.
func plainText(contentType, cte string, body io.Reader, top bool) ([]byte, string) {
	mt := "text/plain"
	var params map[string]string
	if strings.TrimSpace(contentType) != "" {
		var err error
		mt, params, err = mime.ParseMediaType(contentType)
		if err != nil {
			return nil, "the Content-Type field is malformed: " + err.Error()
		}
	}
	switch {
	case mt == "text/plain":
		dec, err := decodeTransfer(cte, body)
		if err != nil {
			return nil, err.Error()
		}
		b, err := io.ReadAll(io.LimitReader(dec, maxReplyBody))
		if err != nil {
			return nil, "cannot decode the text/plain part: " + err.Error()
		}
		return b, ""
	case mt == "multipart/alternative" && top:
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil, "the multipart/alternative reply has no text/plain part"
			}
			if err != nil {
				return nil, "cannot read the multipart/alternative body: " + err.Error()
			}
			pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			if p.Header.Get("Content-Type") == "" || pt == "text/plain" {
				return plainText(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, false)
			}
		}
	}
	return nil, "the reply is " + mt + "; RFC 8823 §3.2 wants text/plain, or multipart/alternative with a text/plain part"
}

func decodeTransfer(cte string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return r, nil
	case "quoted-printable":
		return quotedprintable.NewReader(r), nil
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &skipSpace{r: bufio.NewReader(r)}), nil
	}
	return nil, fmt.Errorf("unknown Content-Transfer-Encoding %q", cte)
}

// skipSpace drops whitespace, so base64 bodies with line breaks decode.
type skipSpace struct{ r *bufio.Reader }

func (s *skipSpace) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c, err := s.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		}
		p[n] = c
		n++
	}
	return n, nil
}

// extractDigest finds the response block and returns its content with all
// line breaks and whitespace removed (RFC 8823 §3.2: the receiver MUST
// ignore CRLFs inside the digest).
func extractDigest(text []byte) (string, string) {
	lines := strings.Split(string(text), "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == beginResponse {
			start = i + 1
			break
		}
	}
	if start < 0 {
		return "", "the text/plain part has no " + beginResponse + " line"
	}
	var b strings.Builder
	for _, l := range lines[start:] {
		if strings.TrimSpace(l) == endResponse {
			d := b.String()
			if d == "" {
				return "", "the ACME RESPONSE block is empty"
			}
			for _, c := range d {
				if !(c < 0x80 && (isBase64URL(byte(c)) || c == '=')) {
					return "", fmt.Sprintf("the ACME RESPONSE block contains %q, which is not base64url", c)
				}
			}
			return d, ""
		}
		b.WriteString(strings.Map(func(r rune) rune {
			if unicode.IsSpace(r) {
				return -1
			}
			return r
		}, l))
	}
	return "", "the ACME RESPONSE block has no " + endResponse + " line"
}

func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// subjectToken returns what follows the first "ACME:" in a decoded subject
// with all whitespace removed (RFC 8823 §3.2 item 1), or "".
func subjectToken(subject string) string {
	i := strings.Index(subject, "ACME:")
	if i < 0 {
		return ""
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, subject[i+len("ACME:"):])
}
