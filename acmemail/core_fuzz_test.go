package acmemail

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Seeds come from f.Add below, testdata/mail/*.eml, and the corpus files in
// testdata/fuzz/<FuzzName>/, so that plain `go test` runs them all.

func FuzzParseChallengeMail(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "mail", "*.eml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("From: a@b\r\nTo: c@d\r\nSubject: ACME: V4nE8NhYh6edBpfQTg5qqQ\r\n\r\n"))
	f.Add([]byte("Subject: =?UTF-8?Q?ACME:_V4nE8NhYh6edBpfQTg5qqQ?=\nFrom: <a@b>\nReply-To: g:x@y,z@w;\nMessage-ID: <a@b>\n\n"))
	f.Add([]byte("Subject: ACME:\r\n\tV4nE8NhY\r\n h6edBpfQTg5qqQ==\r\nFrom: \"x\" <a@[1.2.3.4]>\r\nDate: Sat, 5 Dec 2020 10:08:55 +0100\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ch, err := ParseChallengeMail(raw)
		if err != nil {
			if ch != nil {
				t.Fatalf("ParseChallengeMail returned %+v with error %v", ch, err)
			}
			return
		}
		if again, err := ParseSubjectToken("ACME: " + ch.TokenPart1); err != nil || again != ch.TokenPart1 {
			t.Fatalf("TokenPart1 %q does not parse back: %q, %v", ch.TokenPart1, again, err)
		}
		if !strings.Contains(ch.From, "@") {
			t.Fatalf("From %q has no @", ch.From)
		}
		if ch.MessageID != "" && !challengeValidMsgID(ch.MessageID) {
			t.Fatalf("MessageID %q is not a valid id", ch.MessageID)
		}
		// Whatever parsed must give either an error or a well-formed reply.
		reply, to, err := ComposeReply(ch, "alice@example.com", replyTestDigest,
			ReplyOptions{Date: time.Unix(1e9, 0), MessageID: "<fuzz@example.com>"})
		if err != nil {
			return
		}
		if len(to) == 0 {
			t.Fatal("ComposeReply returned no recipients")
		}
		if err := replyCheckWire(reply, NeedsSMTPUTF8("alice@example.com", to)); err != nil {
			t.Fatalf("reply is malformed: %v\n%q", err, reply)
		}
		_, body, ok := bytes.Cut(reply, []byte("\r\n\r\n"))
		if !ok {
			t.Fatalf("reply has no body: %q", reply)
		}
		if d, err := ParseResponse(body); err != nil || d != replyTestDigest {
			t.Fatalf("ParseResponse(reply body) = %q, %v", d, err)
		}
	})
}

func FuzzParseSubjectToken(f *testing.F) {
	for _, s := range []string{
		"ACME: V4nE8NhYh6edBpfQTg5qqQ",
		"ACME: LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME=",
		"ACME: LgYemJLy3F1LDkiJ rdIGbEzyFJyOyf6vB\r\n dyZ1TG3sME =",
		"Re: ACME: V4nE8NhYh6edBpfQTg5qqQ",
		"ACME:ISQOrdkX2ontSQnaRaClQDmFLQdQr1a6==",
		"hello",
		"",
	} {
		f.Add(s)
	}
	const (
		tp2   = "x6I65YvEk6xC4KV0QMvdJw"
		thumb = "hC4xyXNn8ZDH4yrcp93Zj3qgQs7LyT_GUL45YD7IVMQ"
	)
	f.Fuzz(func(t *testing.T, subject string) {
		tok, err := ParseSubjectToken(subject)
		if err != nil {
			if tok != "" {
				t.Fatalf("ParseSubjectToken(%q) = %q with error %v", subject, tok, err)
			}
			return
		}
		data, pad := tokenSplitPadding(tok)
		if tokenFirstNonAlphabet(data) >= 0 || pad > 2 || len(data) < 22 || len(tok) > challengeMaxTokenLen {
			t.Fatalf("ParseSubjectToken(%q) = %q, which is not a valid token-part1", subject, tok)
		}
		if again, err := ParseSubjectToken("ACME: " + tok); err != nil || again != tok {
			t.Fatalf("token %q does not parse back: %q, %v", tok, again, err)
		}
		for _, mode := range []JoinMode{JoinString, JoinOctet} {
			ka, err := KeyAuthorization(tok, tp2, thumb, mode)
			if err != nil {
				t.Fatalf("KeyAuthorization(%q, %s): %v", tok, mode, err)
			}
			if d := ResponseDigest(ka); len(d) != replyDigestLen {
				t.Fatalf("digest %q has %d characters", d, len(d))
			}
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		"-----BEGIN ACME RESPONSE-----\r\n" + replyTestDigest + "\r\n-----END ACME RESPONSE-----\r\n",
		"-----BEGIN ACME RESPONSE-----\r\nLoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowy\r\njxAjEuX0=\r\n-----END ACME RESPONSE-----\r\n",
		"text\n-----BEGIN ACME RESPONSE-----\n x \n-----END ACME RESPONSE-----\n",
		"-----END ACME RESPONSE----------BEGIN ACME RESPONSE-----",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := ParseResponse(body)
		if err != nil {
			if d != "" {
				t.Fatalf("ParseResponse = %q with error %v", d, err)
			}
			return
		}
		if len(d) != replyDigestLen || tokenFirstNonAlphabet(d) >= 0 {
			t.Fatalf("ParseResponse = %q, which is not a 43-character base64url digest", d)
		}
		again, err := ParseResponse([]byte(ResponseBegin + "\r\n" + d + "\r\n" + ResponseEnd + "\r\n"))
		if err != nil || again != d {
			t.Fatalf("digest %q does not parse back: %q, %v", d, again, err)
		}
	})
}
