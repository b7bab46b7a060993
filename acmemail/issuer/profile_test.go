package issuer

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// TestProfileOfSettings: a meta.json written before profiles existed (by
// acmemail obtain of that time, testdata/meta-settings.json) is read as
// the profile it describes.
func TestProfileOfSettings(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "meta-settings.json"))
	if err != nil {
		t.Fatal(err)
	}
	var meta keystore.CertMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	p, err := ProfileOf(meta)
	if err != nil {
		t.Fatal(err)
	}
	want := Profile{
		Version: ProfileVersion, Email: "alice@example.test", Also: []Also{{Email: "bob@example.test"}},
		Server: "sandbox", Contact: []string{"mailto:alice@example.test"}, IMAP: "imaps://127.0.0.1:33737", SMTP: "smtps://127.0.0.1:39999",
		Mailbox: "INBOX", AuthMech: "auto", Login: Login{PasswordCommand: "echo pw"},
		KeyType: keystore.KeyP256, Usage: "both", P12Profile: "legacy", DeployHook: "echo deployed",
		MailWait: Duration(5 * time.Second), ReplySettle: Duration(time.Second),
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("ProfileOf =\n %+v, want\n %+v", p, want)
	}
	// Recorded again, it reads back as is.
	meta.Profile, meta.Settings = p.encode(), nil
	back, err := ProfileOf(meta)
	if err != nil || !reflect.DeepEqual(back, p) {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, p)
	}
}

// TestProfileOfRefuses: nothing recorded, a newer version, garbage.
func TestProfileOfRefuses(t *testing.T) {
	if _, err := ProfileOf(keystore.CertMeta{Email: "a@b"}); err == nil || !errorsIs(err, ErrNotRecorded) {
		t.Errorf("nothing recorded: %v, want ErrNotRecorded", err)
	}
	if _, err := ProfileOf(keystore.CertMeta{Email: "a@b", Profile: json.RawMessage(`{"version": 99}`)}); err == nil {
		t.Error("a newer profile version was read")
	}
	if _, err := ProfileOf(keystore.CertMeta{Email: "a@b", Profile: json.RawMessage(`{"mail_wait": "soon"}`)}); err == nil {
		t.Error("a broken duration was read")
	}
}

// TestWithDefaults: the defaults, paths made absolute, per-server reply
// settle, an own --also mailbox filled from the primary; and applying it
// twice changes nothing.
func TestWithDefaults(t *testing.T) {
	p := Profile{Email: "a@example.com", ReplySettle: -1, IssuerRoots: "rel/roots.pem",
		SMTP: "smtps://smtp.example.com", Also: []Also{{Email: "b@example.com", IMAP: "imaps://imap.example.org", PasswordFile: "pw"}, {Email: "c@example.com", User: "dropped"}}}
	d := p.WithDefaults()
	if d.Server != "castle" || d.Mailbox != "INBOX" || d.AuthMech != "auto" || d.KeyType != keystore.KeyRSA2048 || d.Usage != "both" ||
		d.P12Profile != "modern" || d.MailWait.D() != acmemail.DefaultMailWait || d.ReplySettle.D() != DefaultReplySettle {
		t.Errorf("defaults: %+v", d)
	}
	if !filepath.IsAbs(d.IssuerRoots) || !filepath.IsAbs(d.Also[0].PasswordFile) {
		t.Errorf("paths not absolute: %q, %q", d.IssuerRoots, d.Also[0].PasswordFile)
	}
	if d.Also[0].SMTP != p.SMTP || d.Also[0].User != "b@example.com" || d.Also[1] != (Also{Email: "c@example.com"}) {
		t.Errorf("also: %+v", d.Also)
	}
	if p.Also[0].SMTP != "" {
		t.Error("WithDefaults changed its receiver's Also")
	}
	if again := d.WithDefaults(); !reflect.DeepEqual(again, d) {
		t.Errorf("twice:\n %+v\n %+v", again, d)
	}
	sb := Profile{Server: "sandbox", ReplySettle: -1}.WithDefaults()
	if sb.ReplySettle != 0 {
		t.Errorf("sandbox reply settle %v, want 0", sb.ReplySettle)
	}
}

// TestCheck: each setting no run could use is named.
func TestCheck(t *testing.T) {
	ok := NewProfile("a@example.com")
	if err := ok.Check(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for setting, edit := range map[string]func(*Profile){
		"key_type":     func(p *Profile) { p.KeyType = "ed25519" },
		"usage":        func(p *Profile) { p.Usage = "both-ways" },
		"p12_profile":  func(p *Profile) { p.P12Profile = "ancient" },
		"split":        func(p *Profile) { p.Split, p.Usage = true, "sign" },
		"join":         func(p *Profile) { p.Join = "glue" },
		"auth_mech":    func(p *Profile) { p.AuthMech = "cram-md5" },
		"dns_resolver": func(p *Profile) { p.DNSResolver = "192.0.2.53" },
		"also": func(p *Profile) {
			p.Also = []Also{{Email: "b@x", IMAP: "imaps://x", PasswordFile: "/f", PasswordCommand: "c"}}
		},
	} {
		p := ok
		edit(&p)
		var se *SettingError
		if err := p.Check(); !errorsAs(err, &se) || se.Setting != setting {
			t.Errorf("%s: Check() = %v", setting, err)
		}
	}
}

// TestRenewing: what renew was given wins over what obtain recorded, the
// mail login and the separate submission password each on its own; a
// password given itself is used but its recorded source kept; a recorded
// mechanism that does not fit the given kind of secret is dropped.
func TestRenewing(t *testing.T) {
	rec := Profile{Email: "alice@example.com", SMTPUser: "alice-smtp", AuthMech: "plain",
		Login: Login{PasswordCommand: "pass show mail", SMTPPasswordFile: "/etc/acmemail/smtp.pw"}}.WithDefaults()
	type result struct {
		useMail, useSMTP, recMail, recSMTP Login
		smtpUser, mech                     string
	}
	mail := func(cmd, file, tok string) Login {
		return Login{PasswordCommand: cmd, PasswordFile: file, OAuthTokenCommand: tok}
	}
	smtp := func(file string) Login { return Login{SMTPPasswordFile: file} }
	recMail, recSMTP := mail("pass show mail", "", ""), smtp("/etc/acmemail/smtp.pw")
	tests := []struct {
		name  string
		given Given
		want  result
	}{
		{"nothing given", Given{}, result{recMail, recSMTP, recMail, recSMTP, "alice-smtp", "plain"}},
		{"a password file given", Given{Login: Login{PasswordFile: "/x"}}, result{mail("", "/x", ""), recSMTP, mail("", "/x", ""), recSMTP, "alice-smtp", "plain"}},
		{"ACMEMAIL_PASSWORD given", Given{MailPassword: true}, result{Login{}, recSMTP, recMail, recSMTP, "alice-smtp", "plain"}},
		{"ACMEMAIL_SMTP_PASSWORD given", Given{SMTPPassword: true}, result{recMail, Login{}, recMail, recSMTP, "alice-smtp", "plain"}},
		{"a token given instead of the password", Given{Login: Login{OAuthTokenCommand: "oama access"}}, result{mail("", "", "oama access"), recSMTP, mail("", "", "oama access"), recSMTP, "alice-smtp", "auto"}},
		{"a mechanism given", Given{AuthMech: "login"}, result{recMail, recSMTP, recMail, recSMTP, "alice-smtp", "login"}},
		{"another submission login", Given{SMTPUser: "other"}, result{recMail, Login{}, recMail, Login{}, "other", "plain"}},
		{"the same submission login", Given{SMTPUser: "alice-smtp"}, result{recMail, recSMTP, recMail, recSMTP, "alice-smtp", "plain"}},
	}
	split := func(l Login) (Login, Login) {
		return mail(l.PasswordCommand, l.PasswordFile, l.OAuthTokenCommand), smtp(l.SMTPPasswordFile)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			use, record := rec.Renewing(tt.given)
			var got result
			got.useMail, got.useSMTP = split(use.Login)
			got.recMail, got.recSMTP = split(record.Login)
			got.smtpUser, got.mech = use.SMTPUser, use.AuthMech
			if got != tt.want {
				t.Errorf("Renewing(%+v) =\n %+v, want\n %+v", tt.given, got, tt.want)
			}
		})
	}
	// A recorded token mechanism is dropped for a password given to renew,
	// kept when nothing is given.
	tok := Profile{Email: "alice@example.com", AuthMech: "xoauth2", Login: Login{OAuthTokenCommand: "oama access"}}.WithDefaults()
	if use, _ := tok.Renewing(Given{MailPassword: true}); use.AuthMech != "auto" || use.Login.OAuthTokenCommand != "" {
		t.Errorf("with ACMEMAIL_PASSWORD: %+v", use)
	}
	if use, _ := tok.Renewing(Given{}); use.AuthMech != "xoauth2" || use.Login.OAuthTokenCommand != "oama access" {
		t.Errorf("with nothing given: %+v", use)
	}
	// Nothing given: what renew uses and records is what obtain recorded.
	if use, record := rec.Renewing(Given{}); !reflect.DeepEqual(use, rec) || !reflect.DeepEqual(record, rec) {
		t.Errorf("nothing given changed the profile:\n %+v\n %+v\n %+v", rec, use, record)
	}
}

// TestDiff lists exactly the settings that differ.
func TestDiff(t *testing.T) {
	a := NewProfile("a@example.com")
	b := a
	b.DeployHook, b.KeyType = "systemctl reload x", keystore.KeyP384
	got := Diff(a, b)
	if len(got) != 2 || got[0].Setting != "deploy_hook" || got[0].Old != "" || got[0].New != `"systemctl reload x"` || got[1].Setting != "key_type" {
		t.Errorf("Diff = %+v", got)
	}
	if d := Diff(a, a); len(d) != 0 {
		t.Errorf("Diff of equal profiles = %+v", d)
	}
}

func errorsIs(err, target error) bool     { return errors.Is(err, target) }
func errorsAs(err error, target any) bool { return errors.As(err, target) }

// TestProfileOfNFD: an older acmemail recorded the addresses as typed, in
// NFD here. The profile has them normalized, as the command line has them
// now, so that a renewal orders the address as it is known; the mail
// login that was the address itself keeps the spelling the mail server
// accepted.
func TestProfileOfNFD(t *testing.T) {
	const nfd, nfc = "jo\u0308rg@Example.TEST", "j\u00f6rg@example.test"
	const alsoNFD, alsoNFC = "be\u0301a@example.test", "b\u00e9a@example.test"
	for _, tc := range []struct {
		name string
		meta keystore.CertMeta
	}{
		{"profile", keystore.CertMeta{Email: nfd, Profile: json.RawMessage(`{"version":1,"email":"` + nfd + `","also":[{"email":"` + alsoNFD + `","imap":"imaps://imap.example.test"}]}`)}},
		{"settings", keystore.CertMeta{Email: nfd, Also: alsoNFD, Settings: &keystore.Settings{Server: "castle", AlsoMailboxes: []keystore.AlsoMailbox{{Email: alsoNFD, IMAP: "imaps://imap.example.test"}}}}},
	} {
		p, err := ProfileOf(tc.meta)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if p.Email != nfc || p.User != nfd || len(p.Also) != 1 || p.Also[0].Email != alsoNFC || p.Also[0].User != alsoNFD {
			t.Errorf("%s: ProfileOf = email %+q, user %+q, also %+q; want %+q, login %+q, also %+q with login %+q", tc.name, p.Email, p.User, p.Also, nfc, nfd, alsoNFC, alsoNFD)
		}
	}
	// A profile recorded in the normalized form reads back unchanged.
	p := NewProfile(nfc)
	back, err := ProfileOf(keystore.CertMeta{Email: nfc, Profile: p.encode()})
	if err != nil || !reflect.DeepEqual(back, p) {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, p)
	}
}
