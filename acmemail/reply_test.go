package acmemail

import (
	"bytes"
	"errors"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The RFC 8823 example's string-join digest (testdata/token-join.json).
const replyTestDigest = "AjXW0h9_4YMP6Sv-9tKQNUrapI0us7ayBn0nCGOkUsk"

func replyTestChallenge(t *testing.T, file string) *ChallengeMail {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "mail", file))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := ParseChallengeMail(raw)
	if err != nil {
		t.Fatalf("ParseChallengeMail(%s): %v", file, err)
	}
	return ch
}

// replyCheckShape checks the rules every response mail must meet.
func replyCheckShape(t *testing.T, raw []byte) *mail.Message {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Error("the message does not end in CRLF")
	}
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			t.Fatalf("bare LF at offset %d", i)
		}
		if c == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
			t.Fatalf("bare CR at offset %d", i)
		}
		if c >= 0x80 {
			t.Fatalf("non-ASCII octet at offset %d", i)
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("mail.ReadMessage: %v", err)
	}
	for k := range msg.Header {
		if strings.HasPrefix(strings.ToLower(k), "list-") {
			t.Errorf("the reply has a %s header", k)
		}
	}
	for k, want := range map[string]string{
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=us-ascii",
		"Content-Transfer-Encoding": "7bit",
	} {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	// The reply's own Subject must never be taken for a challenge.
	if _, err := ParseSubjectToken(msg.Header.Get("Subject")); !errors.Is(err, ErrReplySubject) {
		t.Errorf("ParseSubjectToken(reply Subject) error = %v, want %v", err, ErrReplySubject)
	}
	return msg
}

func TestComposeReplyGolden(t *testing.T) {
	ch := replyTestChallenge(t, "rfc8823-example.eml")
	opt := ReplyOptions{
		Date:      time.Date(2020, 12, 5, 12, 1, 45, 0, time.FixedZone("", 3600)),
		MessageID: "<111-22222-3333333@example.com>",
	}
	raw, to, err := ComposeReply(ch, "alexey@example.com", replyTestDigest, opt)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"acme-generator@example.org"}; !reflect.DeepEqual(to, want) {
		t.Errorf("recipients = %q, want %q", to, want)
	}
	golden := filepath.Join("testdata", "reply.golden")
	if os.Getenv("ACMEMAIL_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, want) {
		t.Errorf("ComposeReply =\n%s\nwant (%s)\n%s", raw, golden, want)
	}

	msg := replyCheckShape(t, raw)
	for k, want := range map[string]string{
		"From":        "alexey@example.com",
		"To":          "acme-generator@example.org",
		"Subject":     "Re: ACME: LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME=",
		"In-Reply-To": "<A2299BB.FF7788@example.org>",
		"References":  "<A2299BB.FF7788@example.org>",
		"Message-Id":  "<111-22222-3333333@example.com>",
		"Date":        "Sat, 05 Dec 2020 12:01:45 +0100",
	} {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	body, _ := io.ReadAll(msg.Body)
	if want := "-----BEGIN ACME RESPONSE-----\r\n" + replyTestDigest + "\r\n-----END ACME RESPONSE-----\r\n"; string(body) != want {
		t.Errorf("body = %q, want %q", body, want)
	}
	if got, err := ParseResponse(body); err != nil || got != replyTestDigest {
		t.Errorf("ParseResponse(reply body) = %q, %v; want %q", got, err, replyTestDigest)
	}
}

func TestComposeReply(t *testing.T) {
	t.Run("Reply-To wins over From", func(t *testing.T) {
		ch := replyTestChallenge(t, "castle-22.eml")
		raw, to, err := ComposeReply(ch, "alice@example.com", replyTestDigest, ReplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"replies@castle.example", "backup@castle.example"}
		if !reflect.DeepEqual(to, want) {
			t.Errorf("recipients = %q, want %q", to, want)
		}
		msg := replyCheckShape(t, raw)
		got, err := msg.Header.AddressList("To")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Address != want[0] || got[1].Address != want[1] {
			t.Errorf("To = %v, want %q", got, want)
		}
		if got := msg.Header.Get("Subject"); got != "Re: ACME: V4nE8NhYh6edBpfQTg5qqQ" {
			t.Errorf("Subject = %q, want %q", got, "Re: ACME: V4nE8NhYh6edBpfQTg5qqQ")
		}
		// No Cc: the challenge's Cc is not copied.
		if got := msg.Header.Get("Cc"); got != "" {
			t.Errorf("Cc = %q, want none", got)
		}
	})

	t.Run("no Message-ID in the challenge", func(t *testing.T) {
		ch := replyTestChallenge(t, "a2c-32.eml")
		raw, to, err := ComposeReply(ch, "bob@example.net", replyTestDigest, ReplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"acme@a2c.example"}; !reflect.DeepEqual(to, want) {
			t.Errorf("recipients = %q, want %q", to, want)
		}
		msg := replyCheckShape(t, raw)
		for _, k := range []string{"In-Reply-To", "References"} {
			if _, ok := msg.Header[k]; ok {
				t.Errorf("the reply has %s, want none", k)
			}
		}
	})

	t.Run("generated Message-ID and Date", func(t *testing.T) {
		ch := replyTestChallenge(t, "rfc8823-example.eml")
		before := time.Now().Add(-time.Second)
		ids := make(map[string]bool)
		re := regexp.MustCompile(`^<[A-Z2-7]{26}\.acmemail@example\.com>$`)
		for range 3 {
			raw, _, err := ComposeReply(ch, "alexey@Example.COM", replyTestDigest, ReplyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			msg := replyCheckShape(t, raw)
			id := msg.Header.Get("Message-Id")
			if !re.MatchString(id) {
				t.Errorf("Message-ID = %q, want one matching %s", id, re)
			}
			ids[id] = true
			d, _ := msg.Header.Date()
			if d.Before(before) || d.After(time.Now().Add(time.Second)) {
				t.Errorf("Date = %v, want about now", d)
			}
		}
		if len(ids) != 3 {
			t.Errorf("3 replies got %d distinct Message-IDs, want 3", len(ids))
		}
	})

	t.Run("padded digest is sent unpadded", func(t *testing.T) {
		ch := replyTestChallenge(t, "rfc8823-example.eml")
		raw, _, err := ComposeReply(ch, "alexey@example.com", "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0=", ReplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(raw, []byte("\r\nLoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0\r\n")) {
			t.Errorf("the reply does not carry the unpadded digest on one line:\n%s", raw)
		}
	})

	t.Run("many recipients are folded", func(t *testing.T) {
		ch := replyTestChallenge(t, "rfc8823-example.eml")
		var want []string
		for _, c := range "abcdefghijkl" {
			want = append(want, "replies-"+strings.Repeat(string(c), 10)+"@ca.example")
		}
		ch.ReplyTo = append(append([]string{}, want...), "Replies-aaaaaaaaaa@CA.example") // a duplicate
		raw, to, err := ComposeReply(ch, "alexey@example.com", replyTestDigest, ReplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(to, want) {
			t.Errorf("recipients = %q, want %q", to, want)
		}
		for _, line := range strings.Split(string(raw), "\r\n") {
			if len(line) > 78 {
				t.Errorf("line of %d characters: %q", len(line), line)
			}
		}
		msg := replyCheckShape(t, raw)
		list, err := msg.Header.AddressList("To")
		if err != nil || len(list) != len(want) {
			t.Errorf("To parses as %d addresses (%v), want %d", len(list), err, len(want))
		}
	})
}

func TestComposeReplyErrors(t *testing.T) {
	good := func() *ChallengeMail {
		return &ChallengeMail{
			From:       "ca@ca.example",
			To:         []string{"alice@example.com"},
			MessageID:  "<x@ca.example>",
			TokenPart1: "V4nE8NhYh6edBpfQTg5qqQ",
		}
	}
	tests := []struct {
		name    string
		ch      func() *ChallengeMail
		from    string
		digest  string
		opt     ReplyOptions
		errText string
	}{
		{name: "nil challenge", ch: func() *ChallengeMail { return nil }, errText: "no challenge"},
		{name: "from with CRLF", from: "alice@example.com\r\nBcc: eve@evil.example", errText: "From address"},
		{name: "from with LF", from: "alice@example.com\nBcc: eve@evil.example", errText: "From address"},
		{name: "from with display name", from: "Alice <alice@example.com>", errText: "From address"},
		{name: "empty from", from: "", errText: "empty address"},
		{name: "from without @", from: "alice", errText: "has no @"},
		{name: "non-ASCII domain", from: "alice@exämple.com", errText: "write the domain in A-labels (alice@xn--exmple-cua.com)"},
		{name: "non-ASCII local part with a space", from: "jür gen@example.com", errText: "dot-atom"},
		{name: "non-ASCII local part with a control", from: "jür\u0085gen@example.com", errText: "dot-atom"},
		{name: "invalid UTF-8 local part", from: "j\xfcrgen@example.com", errText: "UTF-8"},
		{name: "quoted local part", from: `"a b"@example.com`, errText: "dot-atom"},
		{name: "bad domain", from: "alice@-example.com", errText: "not a host name"},
		{name: "digest with CRLF", digest: replyTestDigest[:20] + "\r\nBcc: x" + replyTestDigest[27:], errText: "digest"},
		{name: "digest too short", digest: replyTestDigest[:42], errText: "digest"},
		{name: "digest not base64url", digest: "+" + replyTestDigest[1:], errText: "digest"},
		{
			name:    "token-part1 with CRLF",
			ch:      func() *ChallengeMail { c := good(); c.TokenPart1 += "\r\nBcc: eve@evil.example"; return c },
			errText: "token-part1",
		},
		{
			name:    "empty token-part1",
			ch:      func() *ChallengeMail { c := good(); c.TokenPart1 = ""; return c },
			errText: "token-part1",
		},
		{
			name:    "huge token-part1",
			ch:      func() *ChallengeMail { c := good(); c.TokenPart1 = strings.Repeat("A", 1000); return c },
			errText: "longer than",
		},
		{
			name:    "Message-ID with CRLF",
			ch:      func() *ChallengeMail { c := good(); c.MessageID = "<x@ca.example>\r\nBcc: eve@evil.example"; return c },
			errText: "Message-ID",
		},
		{
			name: "recipient with CRLF",
			ch: func() *ChallengeMail {
				c := good()
				c.ReplyTo = []string{"r@ca.example\r\nBcc: eve@evil.example"}
				return c
			},
			errText: "recipient",
		},
		{
			name:    "recipient with display name",
			ch:      func() *ChallengeMail { c := good(); c.From = "CA <ca@ca.example>"; return c },
			errText: "recipient",
		},
		{
			name:    "no recipient",
			ch:      func() *ChallengeMail { c := good(); c.From = ""; return c },
			errText: "neither Reply-To nor From",
		},
		{name: "option Message-ID with LF", opt: ReplyOptions{MessageID: "<a@b>\nBcc: eve@evil.example"}, errText: "MessageID"},
		{name: "option Message-ID without brackets", opt: ReplyOptions{MessageID: "a@b"}, errText: "MessageID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := good()
			if tt.ch != nil {
				ch = tt.ch()
			}
			from := tt.from
			if from == "" && !strings.Contains(tt.name, "empty from") {
				from = "alice@example.com"
			}
			digest := tt.digest
			if digest == "" {
				digest = replyTestDigest
			}
			raw, to, err := ComposeReply(ch, from, digest, tt.opt)
			if err == nil {
				t.Fatalf("ComposeReply succeeded:\n%s\nwant an error", raw)
			}
			if raw != nil || to != nil {
				t.Errorf("ComposeReply returned a message with the error %v", err)
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("error = %q, want it to contain %q", err, tt.errText)
			}
		})
	}
}

func TestParseResponse(t *testing.T) {
	const d = replyTestDigest
	tests := []struct {
		name    string
		body    string
		want    string
		errText string
	}{
		{name: "one line", body: "-----BEGIN ACME RESPONSE-----\r\n" + d + "\r\n-----END ACME RESPONSE-----\r\n", want: d},
		{
			name: "RFC 8823 example, split and padded",
			body: "-----BEGIN ACME RESPONSE-----\r\nLoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowy\r\njxAjEuX0=\r\n-----END ACME RESPONSE-----\r\n",
			want: "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0",
		},
		{
			name: "text around, LF endings, indentation",
			body: "Hello,\n\nhere it is:\n  -----BEGIN ACME RESPONSE-----\n  " + d[:10] + "\n\t" + d[10:30] + " " + d[30:] + "\n  -----END ACME RESPONSE-----\n\n-- \nAlice\n",
			want: d,
		},
		{name: "no line breaks at all", body: "-----BEGIN ACME RESPONSE-----" + d + "-----END ACME RESPONSE-----", want: d},
		{
			name: "first block wins",
			body: "-----BEGIN ACME RESPONSE-----\r\n" + d + "\r\n-----END ACME RESPONSE-----\r\n-----BEGIN ACME RESPONSE-----\r\nxx\r\n-----END ACME RESPONSE-----\r\n",
			want: d,
		},
		{name: "empty body", body: "", errText: "no -----BEGIN"},
		{name: "no BEGIN", body: d + "\r\n-----END ACME RESPONSE-----\r\n", errText: "no -----BEGIN"},
		{name: "no END", body: "-----BEGIN ACME RESPONSE-----\r\n" + d + "\r\n", errText: "no -----END"},
		{name: "END before BEGIN", body: "-----END ACME RESPONSE-----\r\n-----BEGIN ACME RESPONSE-----\r\n" + d + "\r\n", errText: "no -----END"},
		{name: "empty block", body: "-----BEGIN ACME RESPONSE-----\r\n\r\n-----END ACME RESPONSE-----\r\n", errText: "empty"},
		{name: "only padding", body: "-----BEGIN ACME RESPONSE-----\r\n==\r\n-----END ACME RESPONSE-----\r\n", errText: "empty"},
		{name: "standard base64", body: "-----BEGIN ACME RESPONSE-----\r\n+" + d[1:] + "\r\n-----END ACME RESPONSE-----\r\n", errText: "alphabet"},
		{name: "padding inside", body: "-----BEGIN ACME RESPONSE-----\r\n" + d[:20] + "=" + d[20:] + "\r\n-----END ACME RESPONSE-----\r\n", errText: "alphabet"},
		{name: "too short", body: "-----BEGIN ACME RESPONSE-----\r\n" + d[:42] + "\r\n-----END ACME RESPONSE-----\r\n", errText: "42 base64url characters"},
		{name: "too long", body: "-----BEGIN ACME RESPONSE-----\r\n" + d + "A\r\n-----END ACME RESPONSE-----\r\n", errText: "44 base64url characters"},
		{name: "huge block", body: "-----BEGIN ACME RESPONSE-----\r\n" + strings.Repeat(" ", 5000) + d + "\r\n-----END ACME RESPONSE-----\r\n", errText: "longer than"},
	}
	for _, tt := range tests {
		got, err := ParseResponse([]byte(tt.body))
		if tt.want != "" {
			if err != nil || got != tt.want {
				t.Errorf("%s: ParseResponse = %q, %v; want %q", tt.name, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: ParseResponse = %q, want an error", tt.name, got)
			continue
		}
		if !strings.Contains(err.Error(), tt.errText) {
			t.Errorf("%s: error = %q, want it to contain %q", tt.name, err, tt.errText)
		}
	}
}

// TestComposeReplyInternationalized: an address with a non-ASCII local part
// (RFC 6531) goes into From as UTF-8 (RFC 6532); the body stays 7-bit and
// the message needs SMTPUTF8.
func TestComposeReplyInternationalized(t *testing.T) {
	ch := &ChallengeMail{From: "ca@ca.example", To: []string{"jürgen@xn--bcher-kva.example"}, MessageID: "<x@ca.example>", TokenPart1: "V4nE8NhYh6edBpfQTg5qqQ"}
	raw, to, err := ComposeReply(ch, "jürgen@xn--bcher-kva.example", replyTestDigest, ReplyOptions{Date: time.Unix(1e9, 0), MessageID: "<r@xn--bcher-kva.example>"})
	if err != nil {
		t.Fatalf("ComposeReply: %v", err)
	}
	if !strings.Contains(string(raw), "\r\nFrom: jürgen@xn--bcher-kva.example\r\n") {
		t.Errorf("no UTF-8 From header in:\n%s", raw)
	}
	_, body, _ := strings.Cut(string(raw), "\r\n\r\n")
	for i := 0; i < len(body); i++ {
		if body[i] >= 0x80 {
			t.Fatalf("the body is not 7-bit: %q", body)
		}
	}
	if !NeedsSMTPUTF8("jürgen@xn--bcher-kva.example", to) || NeedsSMTPUTF8("a@example.com", []string{"b@example.com"}) {
		t.Error("NeedsSMTPUTF8 is wrong")
	}
	// A UTF-8 recipient (Reply-To) is accepted too.
	ch.ReplyTo = []string{"zertifikat@xn--bcher-kva.example", "стоп@example.com"}
	if _, to, err := ComposeReply(ch, "alice@example.com", replyTestDigest, ReplyOptions{}); err != nil || len(to) != 2 {
		t.Errorf("ComposeReply to a UTF-8 Reply-To = %v, %v", to, err)
	}
}
