package mailbox_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/mailbox"
)

func ep(host string, port int, sec mailbox.Security) mailbox.Endpoint {
	return mailbox.Endpoint{Host: host, Port: port, Security: sec}
}

func TestParseIMAPURL(t *testing.T) {
	tests := []struct {
		in   string
		want mailbox.Endpoint
	}{
		{"imaps://mail.example.org", ep("mail.example.org", 993, mailbox.TLS)},
		{"imaps://mail.example.org:10993", ep("mail.example.org", 10993, mailbox.TLS)},
		{"IMAPS://Mail.Example.org/", ep("Mail.Example.org", 993, mailbox.TLS)},
		{"imap://mail.example.org", ep("mail.example.org", 143, mailbox.StartTLS)},
		{"imap://mail.example.org:1143", ep("mail.example.org", 1143, mailbox.StartTLS)},
		{"imap+insecure://127.0.0.1:1143", ep("127.0.0.1", 1143, mailbox.Insecure)},
		{"imap+insecure://localhost", ep("localhost", 143, mailbox.Insecure)},
		{"mail.example.org:993", ep("mail.example.org", 993, mailbox.TLS)},
		{"mail.example.org:143", ep("mail.example.org", 143, mailbox.StartTLS)},
		{"mail.example.org:1143", ep("mail.example.org", 1143, mailbox.StartTLS)},
		{"mail.example.org", ep("mail.example.org", 993, mailbox.TLS)},
		{"  mail.example.org:993\n", ep("mail.example.org", 993, mailbox.TLS)},
		{"192.0.2.7:993", ep("192.0.2.7", 993, mailbox.TLS)},
		{"[2001:db8::1]:993", ep("2001:db8::1", 993, mailbox.TLS)},
		{"[::1]:143", ep("::1", 143, mailbox.StartTLS)},
		{"[::1]", ep("::1", 993, mailbox.TLS)},
		{"::1", ep("::1", 993, mailbox.TLS)},
		{"imaps://[2001:db8::1]", ep("2001:db8::1", 993, mailbox.TLS)},
		{"imap://[::1]:1143", ep("::1", 1143, mailbox.StartTLS)},
		{"mail_1.example.org.:993", ep("mail_1.example.org.", 993, mailbox.TLS)},
	}
	for _, tt := range tests {
		got, err := mailbox.ParseIMAPURL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseIMAPURL(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSMTPURL(t *testing.T) {
	tests := []struct {
		in   string
		want mailbox.Endpoint
	}{
		{"smtps://mail.example.org", ep("mail.example.org", 465, mailbox.TLS)},
		{"smtp://mail.example.org", ep("mail.example.org", 587, mailbox.StartTLS)},
		{"smtp://mail.example.org:2525", ep("mail.example.org", 2525, mailbox.StartTLS)},
		{"smtp+insecure://127.0.0.1:2525", ep("127.0.0.1", 2525, mailbox.Insecure)},
		{"mail.example.org:465", ep("mail.example.org", 465, mailbox.TLS)},
		{"mail.example.org:587", ep("mail.example.org", 587, mailbox.StartTLS)},
		{"mail.example.org", ep("mail.example.org", 465, mailbox.TLS)},
		{"[::1]:587", ep("::1", 587, mailbox.StartTLS)},
		{"smtps://[::1]", ep("::1", 465, mailbox.TLS)},
	}
	for _, tt := range tests {
		got, err := mailbox.ParseSMTPURL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSMTPURL(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		smtp bool
		in   string
		want string // substring of the error
	}{
		{false, "", "empty address"},
		{false, "   ", "empty address"},
		{false, "https://mail.example.org", `unknown scheme "https"`},
		{false, "smtps://mail.example.org", `unknown scheme "smtps"`},
		{true, "imaps://mail.example.org", `unknown scheme "imaps"`},
		{false, "imaps://", "missing host"},
		{false, "imaps://:993", "missing host"},
		{false, "imaps://alice:hunter22@mail.example.org", "user names and passwords are not accepted"},
		{false, "alice:hunter22@mail.example.org:993", "not a host"},
		{false, "imaps://mail.example.org/INBOX", "mailbox"},
		{false, "imaps://mail.example.org?insecure=1", "imap+insecure://"},
		{false, "imaps://mail.example.org#x", "fragment"},
		{false, "mail.example.org:0", "out of range"},
		{false, "mail.example.org:65536", "out of range"},
		{false, "mail.example.org:99999999", "invalid port"},
		{false, "mail.example.org:-1", "invalid port"},
		{false, "mail.example.org:", "empty port"},
		{false, "mail.example.org:imap", "invalid port"},
		{false, "2001:db8::1:993x", "brackets"},
		{false, "[2001:db8::1", "missing ']'"},
		{false, "[192.0.2.1]:993", "not an IPv6 address"},
		{false, "[::1]x", "unexpected text"},
		{false, "[fe80::1%25eth0]:993", "zones"},
		{false, "fe80::1%eth0", "zones"},
		{false, "mail..example.org", "invalid host name"},
		{false, "mail example.org", "invalid character"},
		{false, "mäil.example.org", "punycode"},
		{false, "imap://mail.example.org:993", "use imaps://mail.example.org:993"},
		{false, "imaps://mail.example.org:143", "use imap://mail.example.org:143"},
		{true, "smtp://mail.example.org:465", "use smtps://mail.example.org:465"},
		{true, "smtps://mail.example.org:587", "use smtp://mail.example.org:587"},
		{true, "smtps://mail.example.org:25", "expects STARTTLS"},
	}
	for _, tt := range tests {
		parse, name := mailbox.ParseIMAPURL, "ParseIMAPURL"
		if tt.smtp {
			parse, name = mailbox.ParseSMTPURL, "ParseSMTPURL"
		}
		got, err := parse(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s(%q) = %v, %v; want an error containing %q", name, tt.in, got, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter22") {
			t.Errorf("%s(%q) error shows the password: %v", name, tt.in, err)
		}
	}
}

func TestEndpointString(t *testing.T) {
	e := ep("::1", 993, mailbox.TLS)
	if got, want := e.Address(), "[::1]:993"; got != want {
		t.Errorf("Address() = %q, want %q", got, want)
	}
	if got, want := e.String(), "[::1]:993 (tls)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for sec, want := range map[mailbox.Security]string{mailbox.TLS: "tls", mailbox.StartTLS: "starttls", mailbox.Insecure: "insecure", 7: "Security(7)"} {
		if got := sec.String(); got != want {
			t.Errorf("Security(%d).String() = %q, want %q", int(sec), got, want)
		}
	}
}

// urlOf formats e in the URL syntax the parsers accept.
func urlOf(e mailbox.Endpoint, imap bool) string {
	schemes := map[mailbox.Security]string{mailbox.TLS: "smtps", mailbox.StartTLS: "smtp", mailbox.Insecure: "smtp+insecure"}
	if imap {
		schemes = map[mailbox.Security]string{mailbox.TLS: "imaps", mailbox.StartTLS: "imap", mailbox.Insecure: "imap+insecure"}
	}
	return schemes[e.Security] + "://" + net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

func fuzzParser(f *testing.F, parse func(string) (mailbox.Endpoint, error), imap bool, seeds []string) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := parse(s)
		if err != nil {
			// The part before the last '@' may be a password: never echo it.
			if at := strings.LastIndex(s, "@"); at > 0 {
				secret := s[:at]
				if i := strings.Index(secret, "://"); i >= 0 {
					secret = secret[i+3:]
				}
				if len(secret) >= 8 && strings.Contains(err.Error(), secret) && !strings.Contains(strconv.Quote(s[at:]), secret) {
					t.Errorf("error %q echoes %q", err, secret)
				}
			}
			return
		}
		if e.Host == "" || e.Port < 1 || e.Port > 65535 {
			t.Fatalf("parse(%q) = %+v: invalid endpoint", s, e)
		}
		if e.Security != mailbox.TLS && e.Security != mailbox.StartTLS && e.Security != mailbox.Insecure {
			t.Fatalf("parse(%q) = %+v: invalid security", s, e)
		}
		u := urlOf(e, imap)
		e2, err := parse(u)
		if err != nil || e2 != e {
			t.Fatalf("parse(%q) = %+v, but parse(%q) = %+v, %v", s, e, u, e2, err)
		}
		if e.Security != mailbox.Insecure {
			e3, err := parse(e.Address())
			if err != nil || e3.Host != e.Host || e3.Port != e.Port {
				t.Fatalf("parse(%q) = %+v, but parse(%q) = %+v, %v", s, e, e.Address(), e3, err)
			}
		}
	})
}

func FuzzParseIMAPURL(f *testing.F) {
	fuzzParser(f, mailbox.ParseIMAPURL, true, []string{
		"imaps://mail.example.org", "imap://mail.example.org:1143", "imap+insecure://127.0.0.1:1143",
		"mail.example.org:993", "[::1]:143", "::1", "imaps://u:p@h", "imaps://h/INBOX", "imaps://h?insecure=1",
		"[fe80::1%25eth0]:993", "h:", ":1", "[", "imaps://[::ffff:127.0.0.1]:993",
	})
}

func FuzzParseSMTPURL(f *testing.F) {
	fuzzParser(f, mailbox.ParseSMTPURL, false, []string{
		"smtps://mail.example.org", "smtp://mail.example.org:2525", "smtp+insecure://127.0.0.1:2525",
		"mail.example.org:465", "[::1]:587", "::1", "smtp://u:p@h", "smtp://h/x", "smtps://h:25",
	})
}
