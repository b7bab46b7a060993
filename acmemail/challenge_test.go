package acmemail

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// challengeTestMail joins header lines with CRLF and adds a body.
func challengeTestMail(headers ...string) []byte {
	return []byte(strings.Join(headers, "\r\n") + "\r\n\r\nbody\r\n")
}

// challengeSame compares two ChallengeMails, Date by instant.
func challengeSame(got, want *ChallengeMail) bool {
	if !got.Date.Equal(want.Date) {
		return false
	}
	g, w := *got, *want
	g.Date, w.Date = time.Time{}, time.Time{}
	return reflect.DeepEqual(g, w)
}

func TestParseChallengeMailFixtures(t *testing.T) {
	tests := []struct {
		file    string
		want    *ChallengeMail
		wantErr error  // errors.Is target, if set
		errText string // substring of the error, if set
	}{
		{
			file: "rfc8823-example.eml",
			want: &ChallengeMail{
				From:             "acme-generator@example.org",
				To:               []string{"alexey@example.com"},
				MessageID:        "<A2299BB.FF7788@example.org>",
				Subject:          "ACME: LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME=",
				TokenPart1:       "LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME=",
				AutoSubmitted:    "auto-generated; type=acme",
				HasAutoSubmitted: true,
				Date:             time.Date(2020, 12, 5, 9, 8, 55, 0, time.UTC),
			},
		},
		{
			file: "castle-22.eml",
			want: &ChallengeMail{
				From:             "acme-challenge+abc123@castle.example",
				To:               []string{"alice@example.com"},
				Cc:               []string{"audit@example.com"},
				ReplyTo:          []string{"replies@castle.example", "backup@castle.example"},
				MessageID:        "<c1a2b3@castle.example>",
				Subject:          "ACME: V4nE8NhYh6edBpfQTg5qqQ",
				TokenPart1:       "V4nE8NhYh6edBpfQTg5qqQ",
				AutoSubmitted:    "auto-generated; type=acme",
				HasAutoSubmitted: true,
				Date:             time.Date(2025, 3, 3, 9, 15, 0, 0, time.UTC),
			},
		},
		{
			file: "a2c-32.eml",
			want: &ChallengeMail{
				From:       "acme@a2c.example",
				To:         []string{"bob@example.net"},
				Subject:    "ACME: ISQOrdkX2ontSQnaRaClQDmFLQdQr1a6",
				TokenPart1: "ISQOrdkX2ontSQnaRaClQDmFLQdQr1a6",
			},
		},
		{
			file: "secsy-43.eml",
			want: &ChallengeMail{
				From:             "ca@pki.example",
				Sender:           "mailer@pki.example",
				To:               []string{"carol@example.org"},
				MessageID:        "<20250304230001.42@pki.example>",
				Subject:          "ACME: 6an4NWTGrHyWZgZI0mxW6TM0AVwJVV46ehOfCllLc88",
				TokenPart1:       "6an4NWTGrHyWZgZI0mxW6TM0AVwJVV46ehOfCllLc88",
				AutoSubmitted:    "auto-generated",
				HasAutoSubmitted: true,
				Date:             time.Date(2025, 3, 4, 23, 0, 1, 0, time.UTC),
			},
		},
		{
			file: "encoded-utf8-b.eml",
			want: &ChallengeMail{
				From:             "ca@ca.example",
				To:               []string{"dave@example.com"},
				MessageID:        "<enc-b@ca.example>",
				Subject:          "ACME: 6an4NWTGrHyWZgZI0mxW6TM0AVwJVV46ehOfCllLc88",
				TokenPart1:       "6an4NWTGrHyWZgZI0mxW6TM0AVwJVV46ehOfCllLc88",
				AutoSubmitted:    "auto-generated; type=acme",
				HasAutoSubmitted: true,
			},
		},
		{
			file: "encoded-ascii-q.eml",
			want: &ChallengeMail{
				From:             "ca@ca.example",
				To:               []string{"dave@example.com"},
				MessageID:        "<enc-q@ca.example>",
				Subject:          "ACME: LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME=",
				TokenPart1:       "LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME=",
				AutoSubmitted:    "auto-generated; type=acme",
				HasAutoSubmitted: true,
			},
		},
		{
			file: "folded-lf.eml",
			want: &ChallengeMail{
				From:             "ca@ca.example",
				To:               []string{"erin@example.com"},
				MessageID:        "<fold@ca.example>",
				Subject:          "ACME: LgYemJLy3F1LDkiJ rdIGbEzyFJyOyf6vB dyZ1TG3sME =",
				TokenPart1:       "LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME=",
				AutoSubmitted:    "auto-generated; type=acme",
				HasAutoSubmitted: true,
			},
		},
		{file: "reply-re.eml", wantErr: ErrReplySubject},
		{file: "not-challenge.eml", wantErr: ErrNotChallenge},
		{file: "dup-from.eml", errText: "more than one From"},
		{file: "dup-subject.eml", errText: "more than one Subject"},
		{file: "multi-from.eml", errText: "2 addresses, want exactly one"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "mail", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseChallengeMail(raw)
			if tt.want != nil {
				if err != nil {
					t.Fatalf("ParseChallengeMail(%s) error: %v", tt.file, err)
				}
				if !challengeSame(got, tt.want) {
					t.Errorf("ParseChallengeMail(%s)\n got %+v\nwant %+v", tt.file, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseChallengeMail(%s) = %+v, want an error", tt.file, got)
			}
			if got != nil {
				t.Errorf("ParseChallengeMail(%s) returned %+v with an error", tt.file, got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("ParseChallengeMail(%s) error = %v, want one wrapping %v", tt.file, err, tt.wantErr)
			}
			if tt.errText != "" && !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("ParseChallengeMail(%s) error = %q, want it to contain %q", tt.file, err, tt.errText)
			}
		})
	}
}

func TestParseChallengeMail(t *testing.T) {
	const (
		tok     = "V4nE8NhYh6edBpfQTg5qqQ"
		subject = "Subject: ACME: " + tok
		from    = "From: ca@ca.example"
		to      = "To: alice@example.com"
	)
	base := func(extra ...string) []byte {
		return challengeTestMail(append([]string{from, to, subject}, extra...)...)
	}
	tests := []struct {
		name    string
		raw     []byte
		check   func(t *testing.T, ch *ChallengeMail)
		wantErr error
		errText string
	}{
		{
			name: "display names and domain case",
			raw: challengeTestMail(`From: "The CA" <Acme-Gen@CA.Example>`, "To: Alice <Alice@Example.COM>", subject,
				"Reply-To: =?UTF-8?Q?R=C3=A9ponses?= <Replies@CA.example>"),
			check: func(t *testing.T, ch *ChallengeMail) {
				if ch.From != "Acme-Gen@ca.example" {
					t.Errorf("From = %q, want %q", ch.From, "Acme-Gen@ca.example")
				}
				if want := []string{"Alice@example.com"}; !reflect.DeepEqual(ch.To, want) {
					t.Errorf("To = %q, want %q", ch.To, want)
				}
				if want := []string{"Replies@ca.example"}; !reflect.DeepEqual(ch.ReplyTo, want) {
					t.Errorf("ReplyTo = %q, want %q", ch.ReplyTo, want)
				}
			},
		},
		{
			name: "display name in an unknown charset is passed through",
			raw:  challengeTestMail("From: =?KOI8-R?B?9MXT1A==?= <ca@ca.example>", to, subject),
			check: func(t *testing.T, ch *ChallengeMail) {
				if ch.From != "ca@ca.example" {
					t.Errorf("From = %q, want %q", ch.From, "ca@ca.example")
				}
			},
		},
		{
			name: "missing Message-ID, Date and Auto-Submitted",
			raw:  base(),
			check: func(t *testing.T, ch *ChallengeMail) {
				if ch.MessageID != "" || !ch.Date.IsZero() || ch.HasAutoSubmitted || ch.AutoSubmitted != "" {
					t.Errorf("got MessageID %q, Date %v, HasAutoSubmitted %v, AutoSubmitted %q; want all empty",
						ch.MessageID, ch.Date, ch.HasAutoSubmitted, ch.AutoSubmitted)
				}
				if ch.Sender != "" || ch.Cc != nil || ch.ReplyTo != nil {
					t.Errorf("got Sender %q, Cc %q, ReplyTo %q; want none", ch.Sender, ch.Cc, ch.ReplyTo)
				}
			},
		},
		{
			name: "Message-ID with comment and folding",
			raw:  base("Message-ID: (generated)", "  <abc.def@ca.example> (x)"),
			check: func(t *testing.T, ch *ChallengeMail) {
				if ch.MessageID != "<abc.def@ca.example>" {
					t.Errorf("MessageID = %q, want %q", ch.MessageID, "<abc.def@ca.example>")
				}
			},
		},
		{
			name: "Message-ID without brackets is bracketed",
			raw:  base("Message-ID: abc@ca.example"),
			check: func(t *testing.T, ch *ChallengeMail) {
				if ch.MessageID != "<abc@ca.example>" {
					t.Errorf("MessageID = %q, want %q", ch.MessageID, "<abc@ca.example>")
				}
			},
		},
		{
			name: "unusable Message-ID is dropped",
			raw:  base("Message-ID: not an id"),
			check: func(t *testing.T, ch *ChallengeMail) {
				if ch.MessageID != "" {
					t.Errorf("MessageID = %q, want empty", ch.MessageID)
				}
			},
		},
		{
			name: "unparseable Date is zero",
			raw:  base("Date: yesterday"),
			check: func(t *testing.T, ch *ChallengeMail) {
				if !ch.Date.IsZero() {
					t.Errorf("Date = %v, want zero", ch.Date)
				}
			},
		},
		{
			name: "empty group as To",
			raw:  challengeTestMail(from, "To: undisclosed-recipients:;", subject),
			check: func(t *testing.T, ch *ChallengeMail) {
				if len(ch.To) != 0 {
					t.Errorf("To = %q, want none", ch.To)
				}
			},
		},
		{
			name: "several To and Cc addresses",
			raw:  base("Cc: a@x.example, B <b@X.example>", "To-Not: ignored"),
			check: func(t *testing.T, ch *ChallengeMail) {
				if want := []string{"a@x.example", "b@x.example"}; !reflect.DeepEqual(ch.Cc, want) {
					t.Errorf("Cc = %q, want %q", ch.Cc, want)
				}
			},
		},
		{
			name: "unparseable Sender and Cc are left empty",
			raw:  base("Sender: a@x.example, b@x.example", "Cc: (comment) d@e.example"),
			check: func(t *testing.T, ch *ChallengeMail) {
				if ch.Sender != "" || ch.Cc != nil {
					t.Errorf("Sender %q, Cc %q; want both empty", ch.Sender, ch.Cc)
				}
			},
		},
		{
			name: "lowercase field names",
			raw:  challengeTestMail("from: ca@ca.example", "to: alice@example.com", "subject: ACME: "+tok, "auto-submitted: auto-generated"),
			check: func(t *testing.T, ch *ChallengeMail) {
				if ch.TokenPart1 != tok || ch.From != "ca@ca.example" || !ch.HasAutoSubmitted {
					t.Errorf("got %+v", ch)
				}
			},
		},
		{
			name: "ISO-8859-1 encoded-word is decoded by the standard decoder",
			raw:  challengeTestMail(from, to, "Subject: =?ISO-8859-1?Q?ACME:_"+tok+"?="),
			check: func(t *testing.T, ch *ChallengeMail) {
				if ch.TokenPart1 != tok {
					t.Errorf("TokenPart1 = %q, want %q", ch.TokenPart1, tok)
				}
			},
		},
		{
			name: "header only, no body, no final empty line",
			raw:  []byte(from + "\r\n" + to + "\r\n" + subject),
			check: func(t *testing.T, ch *ChallengeMail) {
				if ch.TokenPart1 != tok {
					t.Errorf("TokenPart1 = %q, want %q", ch.TokenPart1, tok)
				}
			},
		},
		{
			name:    "Subject in the body does not count",
			raw:     []byte(from + "\r\n" + to + "\r\nSubject: hello\r\n\r\n" + subject + "\r\n"),
			wantErr: ErrNotChallenge,
		},
		{name: "Re prefix", raw: challengeTestMail(from, to, "Subject: Re: ACME: "+tok), wantErr: ErrReplySubject},
		{name: "RE prefix", raw: challengeTestMail(from, to, "Subject: RE: ACME: "+tok), wantErr: ErrReplySubject},
		{name: "Fwd prefix", raw: challengeTestMail(from, to, "Subject: Fwd: ACME: "+tok), wantErr: ErrReplySubject},
		{name: "encoded Re prefix", raw: challengeTestMail(from, to, "Subject: =?UTF-8?Q?AW:_ACME:_"+tok+"?="), wantErr: ErrReplySubject},
		{name: "no Subject", raw: challengeTestMail(from, to), wantErr: ErrNotChallenge},
		{name: "empty message", raw: nil, wantErr: ErrNotChallenge},
		{name: "no ACME in Subject", raw: challengeTestMail(from, to, "Subject: hello"), wantErr: ErrNotChallenge},
		{name: "duplicate From", raw: base("From: other@ca.example"), errText: "more than one From"},
		{name: "duplicate Subject", raw: base("Subject: ACME: x6I65YvEk6xC4KV0QMvdJw"), errText: "more than one Subject"},
		{name: "duplicate Subject differing in case", raw: base("SUBJECT: hello"), errText: "more than one Subject"},
		{name: "duplicate To", raw: base("To: bob@example.com"), errText: "more than one To"},
		{name: "duplicate Reply-To", raw: base("Reply-To: a@x.example", "Reply-To: b@x.example"), errText: "more than one Reply-To"},
		{name: "duplicate Message-ID", raw: base("Message-ID: <a@x>", "Message-Id: <b@x>"), errText: "more than one Message-Id"},
		{name: "two From addresses", raw: challengeTestMail("From: ca@ca.example, Evil <evil@evil.example>", to, subject), errText: "2 addresses"},
		{name: "From group", raw: challengeTestMail("From: cas: a@ca.example, b@ca.example;", to, subject), errText: "2 addresses"},
		{name: "no From", raw: challengeTestMail(to, subject), errText: "no From"},
		{name: "empty From", raw: challengeTestMail("From:", to, subject), errText: "no address"},
		{name: "malformed From", raw: challengeTestMail("From: not an address", to, subject), errText: "From"},
		{name: "malformed To", raw: challengeTestMail(from, "To: alice@", subject), errText: "To"},
		{name: "malformed Reply-To", raw: base("Reply-To: <>"), errText: "Reply-To"},
		{name: "disallowed charset in Subject", raw: challengeTestMail(from, to, "Subject: =?KOI8-R?Q?ACME:_"+tok+"?="), errText: "charset"},
		{name: "short token", raw: challengeTestMail(from, to, "Subject: ACME: V4nE8NhYh6edBpfQTg5q"), errText: "128"},
		{name: "malformed header line", raw: challengeTestMail(from, "this is not a header", subject), errText: "malformed"},
		{name: "header starts with a space", raw: challengeTestMail(" "+from, to, subject), errText: "malformed"},
		{
			name:    "oversized message",
			raw:     append(base(), make([]byte, maxMailSize)...),
			errText: "bytes, more than",
		},
		{
			name:    "oversized header section",
			raw:     base("X-Long: " + strings.Repeat("a", maxHeaderSize)),
			errText: "header section is longer",
		},
		{
			name:    "oversized Subject",
			raw:     challengeTestMail(from, to, "Subject: ACME: "+strings.Repeat("a\r\n ", maxFieldSize/3)),
			errText: "longer than",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseChallengeMail(tt.raw)
			if tt.check != nil {
				if err != nil {
					t.Fatalf("ParseChallengeMail error: %v", err)
				}
				tt.check(t, got)
				return
			}
			if err == nil {
				t.Fatalf("ParseChallengeMail = %+v, want an error", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("ParseChallengeMail error = %v, want one wrapping %v", err, tt.wantErr)
			}
			if tt.errText != "" && !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("ParseChallengeMail error = %q, want it to contain %q", err, tt.errText)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error is %d bytes long, want a short one", len(err.Error()))
			}
		})
	}
}

func TestParseSubjectToken(t *testing.T) {
	const (
		t22 = "V4nE8NhYh6edBpfQTg5qqQ"
		t32 = "ISQOrdkX2ontSQnaRaClQDmFLQdQr1a6"
		t43 = "6an4NWTGrHyWZgZI0mxW6TM0AVwJVV46ehOfCllLc88"
		t44 = "LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME=" // RFC 8823 example
	)
	tests := []struct {
		subject string
		want    string
		wantErr error
		errText string
	}{
		{subject: "ACME: " + t22, want: t22},
		{subject: "ACME: " + t32, want: t32},
		{subject: "ACME: " + t43, want: t43},
		{subject: "ACME: " + t44, want: t44},
		{subject: "ACME: " + t22 + "==", want: t22 + "=="},
		{subject: "ACME:" + t22, want: t22},
		{subject: "ACME:\t\t" + t22 + "  ", want: t22},
		{subject: "  ACME: " + t22, want: t22},
		{subject: "ACME: LgYemJLy3F1LDkiJ rdIGbEzyFJyOyf6vB\r\n dyZ1TG3sME =", want: t44},
		{subject: "ACME: V4nE 8NhY\th6ed\nBpfQ Tg5q qQ", want: t22},
		{subject: "ACME: " + t43[:21] + "-_" + t43[23:], want: t43[:21] + "-_" + t43[23:]},

		{subject: "Re: ACME: " + t22, wantErr: ErrReplySubject},
		{subject: "RE: ACME: " + t22, wantErr: ErrReplySubject},
		{subject: "re:ACME: " + t22, wantErr: ErrReplySubject},
		{subject: "Fwd: ACME: " + t22, wantErr: ErrReplySubject},
		{subject: "AW: ACME: " + t22, wantErr: ErrReplySubject},
		{subject: "[SPAM] ACME: " + t22, wantErr: ErrReplySubject},
		{subject: "Re: ACME: not even a token!", wantErr: ErrReplySubject},

		{subject: "", wantErr: ErrNotChallenge},
		{subject: "Hello", wantErr: ErrNotChallenge},
		{subject: "acme: " + t22, wantErr: ErrNotChallenge},
		{subject: "ACME " + t22, wantErr: ErrNotChallenge},

		{subject: "ACME:", errText: "no token-part1"},
		{subject: "ACME:   \t ", errText: "no token-part1"},
		{subject: "ACME: " + t22[:20], errText: "120 bits"},
		{subject: "ACME: " + t22[:21], errText: "whole octets"},
		{subject: "ACME: abcd", errText: "bits"},
		{subject: "ACME: " + t22 + "=", errText: "padding"},
		{subject: "ACME: " + t43 + "==", errText: "padding"},
		{subject: "ACME: " + t22 + "===", errText: "padding"},
		{subject: "ACME: " + t32 + "a", errText: "whole octets"},
		{subject: "ACME: " + t22 + "!", errText: "alphabet"},
		{subject: "ACME: " + t22[:10] + "+/" + t22[12:], errText: "alphabet"},
		{subject: "ACME: " + t22[:10] + "=" + t22[10:], errText: "alphabet"},
		{subject: "ACME:\u00a0" + t22, errText: "alphabet"},
		{subject: "ACME: " + t22 + " (please reply)", errText: "alphabet"},
		{subject: "ACME: ACME: " + t22, errText: "alphabet"},
		{subject: "ACME: " + strings.Repeat("A", 600), errText: "longer than"},
		{subject: "ACME: " + strings.Repeat("A ", 5000), errText: "longer than"},
	}
	for _, tt := range tests {
		got, err := ParseSubjectToken(tt.subject)
		if tt.want != "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseSubjectToken(%q) = %q, %v; want %q", tt.subject, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseSubjectToken(%q) = %q, want an error", tt.subject, got)
			continue
		}
		if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("ParseSubjectToken(%q) error = %v, want one wrapping %v", tt.subject, err, tt.wantErr)
		}
		if tt.wantErr == nil && (errors.Is(err, ErrNotChallenge) || errors.Is(err, ErrReplySubject)) {
			t.Errorf("ParseSubjectToken(%q) error = %v, want a malformed-token error", tt.subject, err)
		}
		if tt.errText != "" && !strings.Contains(err.Error(), tt.errText) {
			t.Errorf("ParseSubjectToken(%q) error = %q, want it to contain %q", tt.subject, err, tt.errText)
		}
	}
}
