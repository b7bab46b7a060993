package mailbox

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestRedactor(t *testing.T) {
	const user, pass = "alice", "pässwörd-42"
	plainIR := b64("\x00" + user + "\x00" + pass)
	tests := []struct {
		name string
		smtp bool
		in   []string // chunks as the library writes them
		want string
	}{
		{
			name: "imap LOGIN quoted",
			in:   []string{"* OK ready\r\n", "T1 LOGIN \"alice\" \"pass\\\"word\"\r\n", "T1 OK done\r\n"},
			want: "* OK ready\r\nT1 LOGIN [redacted]\r\nT1 OK done\r\n",
		},
		{
			name: "imap LOGIN reply traced before the command",
			in:   []string{"T1 OK done\r\n", "T1 LOGIN alice hunter2\r\n", "T2 SELECT INBOX\r\n"},
			want: "T1 OK done\r\nT1 LOGIN [redacted]\r\nT2 SELECT INBOX\r\n",
		},
		{
			name: "imap LOGIN literals",
			in:   []string{"T1 LOGIN alice {13}\r\n", "+ Ready\r\n", pass + "\r\n", "T1 OK done\r\n", "T2 SELECT INBOX\r\n"},
			want: "T1 LOGIN [redacted]\r\n+ Ready\r\n[redacted]\r\nT1 OK done\r\nT2 SELECT INBOX\r\n",
		},
		{
			name: "imap LOGIN two literals",
			in:   []string{"T1 LOGIN {5}\r\n", "+ Ready\r\n", "alice {13}\r\n", "+ Ready\r\n", "xyz\r\n", "T1 OK done\r\n"},
			want: "T1 LOGIN [redacted]\r\n+ Ready\r\n[redacted]\r\n+ Ready\r\n[redacted]\r\nT1 OK done\r\n",
		},
		{
			name: "imap AUTHENTICATE with initial response",
			in:   []string{"T1 AUTHENTICATE PLAIN " + plainIR + "\r\n", "T1 OK done\r\n"},
			want: "T1 AUTHENTICATE PLAIN [redacted]\r\nT1 OK done\r\n",
		},
		{
			name: "imap AUTHENTICATE with continuation",
			in:   []string{"T1 AUTHENTICATE PLAIN\r\n", "+ \r\n", plainIR + "\r\n", "T1 OK done\r\n", "T2 NOOP\r\n"},
			want: "T1 AUTHENTICATE PLAIN\r\n+ \r\n[redacted]\r\nT1 OK done\r\nT2 NOOP\r\n",
		},
		{
			name: "imap split writes",
			in:   []string{"T1 LOG", "IN alice hun", "ter2\r", "\nT1 OK\r\n"},
			want: "T1 LOGIN [redacted]\r\nT1 OK\r\n",
		},
		{
			name: "imap password in a message is masked",
			in:   []string{"* 1 FETCH (BODY[] {20}\r\n", "my password: " + pass + "\r\n"},
			want: "* 1 FETCH (BODY[] {20}\r\nmy password: [redacted]\r\n",
		},
		{
			name: "smtp AUTH PLAIN",
			smtp: true,
			in:   []string{"250 AUTH PLAIN\r\n", "AUTH PLAIN " + plainIR + "\r\n", "235 2.0.0 ok\r\n", "MAIL FROM:<a@b>\r\n"},
			want: "250 AUTH PLAIN\r\nAUTH PLAIN [redacted]\r\n235 2.0.0 ok\r\nMAIL FROM:<a@b>\r\n",
		},
		{
			name: "smtp AUTH LOGIN",
			smtp: true,
			in:   []string{"AUTH LOGIN " + b64(user) + "\r\n", "334 UGFzc3dvcmQ6\r\n", b64("other") + "\r\n", "535 5.7.8 no\r\n", "QUIT\r\n"},
			want: "AUTH LOGIN [redacted]\r\n334 UGFzc3dvcmQ6\r\n[redacted]\r\n535 5.7.8 no\r\nQUIT\r\n",
		},
		{
			name: "smtp AUTH in a message body is kept",
			smtp: true,
			in:   []string{"DATA\r\n", "354 go ahead\r\n", "AUTH is a word\r\n", ".\r\n", "250 ok\r\n", "AUTH PLAIN xyz\r\n"},
			want: "DATA\r\n354 go ahead\r\nAUTH is a word\r\n.\r\n250 ok\r\nAUTH PLAIN [redacted]\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			r := newRedactor(&out, tt.smtp, user, pass)
			for _, chunk := range tt.in {
				if n, err := r.Write([]byte(chunk)); n != len(chunk) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
				}
			}
			if got := out.String(); got != tt.want {
				t.Errorf("trace = %q, want %q", got, tt.want)
			}
			for _, secret := range []string{pass, plainIR, b64(pass), "hunter2", "xyz", b64("other")} {
				if strings.Contains(out.String(), secret) {
					t.Errorf("trace contains %q: %q", secret, out.String())
				}
			}
		})
	}
}

func TestRedactorNil(t *testing.T) {
	r := newRedactor(nil, false, "u", "p")
	if r.writer() != nil {
		t.Errorf("writer() of a disabled redactor = %v, want nil", r.writer())
	}
	r.reset() // must not panic
}

func TestRedactorLongLine(t *testing.T) {
	var out bytes.Buffer
	r := newRedactor(&out, false, "alice", "hunter22")
	long := strings.Repeat("x", maxTraceLine+10)
	r.Write([]byte(long))
	if out.Len() != len(long) {
		t.Errorf("a line longer than %d bytes was buffered, not flushed: %d bytes out", maxTraceLine, out.Len())
	}
}

// TestRedactorOAuth: the token travels inside base64 initial responses of
// OAUTHBEARER and XOAUTH2; the arguments are cut, and the token and its
// encodings are masked wherever else they appear (for example echoed in a
// server's error text).
func TestRedactorOAuth(t *testing.T) {
	const user, tok = "alice@example.org", "ya29.a0-token-value"
	bearer := b64("n,a=" + user + ",\x01auth=Bearer " + tok + "\x01\x01")
	xoauth := b64("user=" + user + "\x01auth=Bearer " + tok + "\x01\x01")
	errJSON := b64(`{"status":"invalid_token"}`)
	tests := []struct {
		name string
		smtp bool
		in   []string
		want string
	}{
		{
			name: "imap OAUTHBEARER refused",
			in:   []string{"T1 AUTHENTICATE OAUTHBEARER " + bearer + "\r\n", "+ " + errJSON + "\r\n", "AQ==\r\n", "T1 NO [AUTHENTICATIONFAILED] bad token " + tok + "\r\n"},
			want: "T1 AUTHENTICATE OAUTHBEARER [redacted]\r\n+ " + errJSON + "\r\nAQ==\r\nT1 NO [AUTHENTICATIONFAILED] bad token [redacted]\r\n",
		},
		{
			name: "imap XOAUTH2 without SASL-IR",
			in:   []string{"T1 AUTHENTICATE XOAUTH2\r\n", "+ \r\n", xoauth + "\r\n", "T1 OK\r\n"},
			want: "T1 AUTHENTICATE XOAUTH2\r\n+ \r\n[redacted]\r\nT1 OK\r\n",
		},
		{
			name: "smtp XOAUTH2 refused",
			smtp: true,
			in:   []string{"AUTH XOAUTH2 " + xoauth + "\r\n", "334 " + errJSON + "\r\n", "\r\n", "535 5.7.8 no\r\n", "QUIT\r\n"},
			want: "AUTH XOAUTH2 [redacted]\r\n334 " + errJSON + "\r\n[redacted]\r\n535 5.7.8 no\r\nQUIT\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			r := newRedactor(&out, tt.smtp, user, "")
			r.addSecrets(tok, bearer, xoauth, "ab")
			for _, chunk := range tt.in {
				r.Write([]byte(chunk))
			}
			if got := out.String(); got != tt.want {
				t.Errorf("trace = %q, want %q", got, tt.want)
			}
			for _, secret := range []string{tok, bearer, xoauth} {
				if strings.Contains(out.String(), secret) {
					t.Errorf("trace contains %q", secret)
				}
			}
		})
	}
}
