package secret_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/cmd/internal/secret"
	"github.com/acmemail/acmemail/cmd/internal/secret/secrettest"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

// login says where alice's login comes from, as the flags do.
type login struct {
	passwordFile, passwordCommand         string
	smtpUser                              string
	smtpPasswordFile, smtpPasswordCommand string
	oauthTokenCommand, authMech           string
}

func (l login) profile() *issuer.Profile {
	authMech := l.authMech
	if authMech == "" {
		authMech = "auto"
	}
	return &issuer.Profile{Email: "alice@example.test", SMTPUser: l.smtpUser, AuthMech: authMech, Login: issuer.Login{
		PasswordCommand: l.passwordCommand, PasswordFile: l.passwordFile, OAuthTokenCommand: l.oauthTokenCommand,
		SMTPPasswordCommand: l.smtpPasswordCommand, SMTPPasswordFile: l.smtpPasswordFile,
	}}
}

// sources are the secret sources of a test run with env as its
// environment; what secret commands print on stderr goes to the buffer.
func sources(env map[string]string) (*secret.Sources, *bytes.Buffer) {
	var stderr bytes.Buffer
	return &secret.Sources{Getenv: func(k string) string { return env[k] }, Stderr: &stderr}, &stderr
}

func writeTestSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// render is an error with its hints, as the CLI prints them.
func render(err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "error: %s\n", err)
	var he *issuer.HintError
	for e := err; errors.As(e, &he); e = he.Err {
		for _, h := range he.Hints {
			fmt.Fprintf(&b, "hint: %s\n", h)
		}
	}
	return b.String()
}

func TestMailPasswordSources(t *testing.T) {
	kr := &secrettest.Keyring{Entries: map[string]string{"acmemail/alice@example.test": "from-keyring", "acmemail/smtp:alice@example.test": "smtp-from-keyring"}}
	secrettest.Use(t, kr)
	file := writeTestSecret(t, "from-file\nsecond line\n")
	tests := []struct {
		name     string
		login    login
		env      map[string]string
		imap     string
		smtp     string
		smtpUser string
	}{
		{"command beats env and keyring", login{passwordCommand: "echo from-command; echo second"}, map[string]string{"ACMEMAIL_PASSWORD": "from-env"}, "from-command", "from-command", "alice@example.test"},
		{"file beats env", login{passwordFile: file}, map[string]string{"ACMEMAIL_PASSWORD": "from-env"}, "from-file", "from-file", "alice@example.test"},
		{"keyring, with its SMTP entry", login{}, nil, "from-keyring", "smtp-from-keyring", "alice@example.test"},
		{"env beats keyring", login{}, map[string]string{"ACMEMAIL_PASSWORD": "from-env", "ACMEMAIL_SMTP_PASSWORD": "smtp-from-env"}, "from-env", "smtp-from-env", "alice@example.test"},
		{"keyring", login{smtpUser: "alice-smtp"}, nil, "from-keyring", "smtp-from-keyring", "alice-smtp"},
		{"separate smtp command", login{smtpPasswordCommand: "printf 'smtp-cmd\\r\\n'", smtpUser: "alice-smtp"}, map[string]string{"ACMEMAIL_PASSWORD": "from-env"}, "from-env", "smtp-cmd", "alice-smtp"},
		{"separate smtp file", login{smtpPasswordFile: file}, map[string]string{"ACMEMAIL_PASSWORD": "from-env"}, "from-env", "from-file", "alice@example.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, _ := sources(tt.env)
			imap, smtp, err := src.MailLogin(t.Context(), tt.login.profile(), secret.Recorded{})
			if err != nil {
				t.Fatalf("MailLogin() = %v", err)
			}
			if imap.Password != tt.imap || smtp.Password != tt.smtp || smtp.Username != tt.smtpUser || imap.Username != "alice@example.test" {
				t.Errorf("credentials = %s/%s, %s/%s; want alice@example.test/%s, %s/%s", imap.Username, imap.Password, smtp.Username, smtp.Password, tt.imap, tt.smtpUser, tt.smtp)
			}
		})
	}

	// Without a separate SMTP source, SMTP uses the mail password; and the
	// keyring is not asked at all when the password came from elsewhere (a
	// locked keyring would delay every cron run by its timeout).
	kr = &secrettest.Keyring{Entries: map[string]string{"acmemail/smtp:alice@example.test": "smtp-from-keyring"}}
	secrettest.Use(t, kr)
	src, _ := sources(map[string]string{"ACMEMAIL_PASSWORD": "from-env"})
	_, smtp, err := src.MailLogin(t.Context(), login{}.profile(), secret.Recorded{})
	if err != nil {
		t.Fatal(err)
	}
	if smtp.Password != "from-env" {
		t.Errorf("SMTP password = %q, want the mail password", smtp.Password)
	}
	if kr.Gets() != 0 {
		t.Errorf("the keyring was asked %d times although ACMEMAIL_PASSWORD was set", kr.Gets())
	}
}

func TestMailPasswordErrors(t *testing.T) {
	tests := []struct {
		name    string
		login   login
		keyring *secrettest.Keyring
		want    []string // in the error and hints
		stderr  string   // passed through from the command
	}{
		{"command fails", login{passwordCommand: "echo the-secret; echo 'vault is sealed' >&2; exit 3"}, &secrettest.Keyring{},
			[]string{"--password-command (for the mail password for alice@example.test) failed: exit status 3", "its error output, if any, is above"}, "vault is sealed"},
		{"command prints nothing", login{passwordCommand: "true"}, &secrettest.Keyring{}, []string{"printed nothing on its first line"}, ""},
		{"command and file", login{passwordCommand: "echo x", passwordFile: "/nonexistent"}, &secrettest.Keyring{}, []string{"--password-command and --password-file both give"}, ""},
		{"missing file", login{passwordFile: "/nonexistent/pw"}, &secrettest.Keyring{}, []string{"read the mail password for alice@example.test from --password-file"}, ""},
		{"no keyring, no terminal", login{}, &secrettest.Keyring{Err: errors.Join(secret.ErrNoKeyring, errors.New("no D-Bus session"))},
			[]string{"no terminal to ask on", "no OS keyring is available", "--password-command", "acmemail login alice@example.test"}, ""},
		{"not in the keyring, no terminal", login{}, &secrettest.Keyring{},
			[]string{"no terminal to ask on", "the OS keyring has no entry for it"}, ""},
		{"oauth mechanism without token", login{authMech: "xoauth2"}, &secrettest.Keyring{}, []string{"needs an OAuth2 access token", "--oauth-token-command"}, ""},
		{"password mechanism with token", login{authMech: "plain", oauthTokenCommand: "echo t"}, &secrettest.Keyring{}, []string{"needs a password"}, ""},
		{"unknown mechanism", login{authMech: "cram-md5"}, &secrettest.Keyring{}, []string{"--auth-mech", "unknown authentication mechanism"}, ""},
		{"token command fails", login{oauthTokenCommand: "exit 1"}, &secrettest.Keyring{}, []string{"--oauth-token-command (for the OAuth2 access token for alice@example.test) failed"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrettest.Use(t, tt.keyring)
			src, stderr := sources(nil)
			_, _, err := src.MailLogin(t.Context(), tt.login.profile(), secret.Recorded{})
			if err == nil {
				t.Fatal("MailLogin() succeeded")
			}
			out := render(err)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("error output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "the-secret") {
				t.Errorf("the command's output appears in the error:\n%s", out)
			}
			if tt.stderr != "" && !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("the command's stderr was not passed through: %q", stderr.String())
			}
		})
	}
}

// TestMailLoginRecorded: an error about a source recorded with the
// certificate says so, and what to give renew instead.
func TestMailLoginRecorded(t *testing.T) {
	secrettest.NoKeyring(t)
	src, _ := sources(nil)
	p := login{passwordFile: "/nonexistent/pw"}.profile()
	_, _, err := src.MailLogin(t.Context(), p, secret.Recorded{Mail: true})
	out := render(err)
	for _, w := range []string{"from --password-file (recorded)", "renew used the --password-file recorded with the certificate", "give renew --password-command, --password-file or ACMEMAIL_PASSWORD"} {
		if !strings.Contains(out, w) {
			t.Errorf("error output lacks %q:\n%s", w, out)
		}
	}
	var ue *issuer.UsageError
	if !errors.As(err, &ue) {
		t.Errorf("error %v is not a usage error", err)
	}

	// Run.ForAddress marks only the sources the profile has.
	run := &secret.Run{Sources: src}
	_, _, err = run.ForAddress(secret.Recorded{Mail: true, SMTP: true}).MailLogin(t.Context(), p)
	if out := render(err); !strings.Contains(out, "renew used the --password-file recorded") {
		t.Errorf("ForAddress: error output lacks the recorded hint:\n%s", out)
	}
	_, _, err = run.ForAddress(secret.Recorded{}).MailLogin(t.Context(), p)
	if out := render(err); strings.Contains(out, "recorded") {
		t.Errorf("not recorded, but the error says so:\n%s", out)
	}
}

func TestSecretCommandEnvironment(t *testing.T) {
	secrettest.Use(t, &secrettest.Keyring{})
	src, _ := sources(nil)
	imap, _, err := src.MailLogin(t.Context(), login{passwordCommand: `echo "pw-for-$ACMEMAIL_EMAIL"`}.profile(), secret.Recorded{})
	if err != nil {
		t.Fatal(err)
	}
	if imap.Password != "pw-for-alice@example.test" {
		t.Errorf("password = %q, want the command to see ACMEMAIL_EMAIL", imap.Password)
	}
}

func TestOAuthTokenCommand(t *testing.T) {
	secrettest.Use(t, &secrettest.Keyring{})
	counter := filepath.Join(t.TempDir(), "n")
	// Each run prints a new token: token-1, token-2, ...
	cmd := `n=$(cat "` + counter + `" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "` + counter + `"; echo token-$n`
	src, _ := sources(map[string]string{"ACMEMAIL_PASSWORD": "unused"})
	imap, smtp, err := src.MailLogin(t.Context(), login{oauthTokenCommand: cmd, authMech: "oauthbearer"}.profile(), secret.Recorded{})
	if err != nil {
		t.Fatal(err)
	}
	if imap.OAuthToken == nil || smtp.OAuthToken == nil || imap.Password != "" || imap.Mechanism != mailbox.MechOAuthBearer {
		t.Fatalf("credentials = %+v, want a token source, no password, OAUTHBEARER", imap)
	}
	for i, want := range []string{"token-1", "token-2", "token-3"} {
		got, err := imap.OAuthToken(context.Background())
		if err != nil || got != want {
			t.Errorf("token %d = %q, %v; want %q (the first from the check at load time, then a fresh one per login)", i, got, err, want)
		}
	}
}

// TestRunSecrets: the PKCS#12 password is read once per run; an --also
// mailbox's password comes from its command or file, with the flag in
// errors.
func TestRunSecrets(t *testing.T) {
	env := map[string]string{"ACMEMAIL_P12_PASSWORD": "p12-first"}
	src, _ := sources(env)
	run := &secret.Run{Sources: src}
	p := login{}.profile()
	for _, want := range []string{"p12-first", "p12-first"} {
		if pw, err := run.P12Password(t.Context(), p); err != nil || pw != want {
			t.Errorf("P12Password = %q, %v; want %q", pw, err, want)
		}
		env["ACMEMAIL_P12_PASSWORD"] = "p12-changed" // not read again
	}
	if pw, err := run.ForAddress(secret.Recorded{}).P12Password(t.Context(), p); err != nil || pw != "p12-first" {
		t.Errorf("ForAddress(...).P12Password = %q, %v; want the run's", pw, err)
	}

	file := writeTestSecret(t, "bob-file\n")
	for _, tt := range []struct {
		name string
		also issuer.Also
		want string // the password, or in the error
	}{
		{"command", issuer.Also{Email: "bob@example.test", User: "bob", PasswordCommand: `echo "cmd-$ACMEMAIL_EMAIL-$ACMEMAIL_USER"`}, "cmd-bob@example.test-bob"},
		{"file", issuer.Also{Email: "bob@example.test", User: "bob", PasswordFile: file}, "bob-file"},
		{"missing file", issuer.Also{Email: "bob@example.test", User: "bob", PasswordFile: "/nonexistent/pw"}, "read the mail password for bob from --also-password-file"},
		{"nothing, no terminal", issuer.Also{Email: "bob@example.test", User: "bob"}, "give obtain --also-password-file bob@example.test=FILE or --also-password-command bob@example.test=CMD"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pw, err := run.AlsoPassword(t.Context(), p, tt.also)
			if err != nil {
				pw = render(err)
			}
			if !strings.Contains(pw, tt.want) {
				t.Errorf("AlsoPassword = %q, want %q", pw, tt.want)
			}
		})
	}
	// The sandbox's own mailboxes need nothing.
	run.SandboxAlso = map[string]string{"bob@example.test": "sandbox-pw"}
	if pw, err := run.AlsoPassword(t.Context(), p, issuer.Also{Email: "Bob@example.test", User: "bob"}); err != nil || pw != "sandbox-pw" {
		t.Errorf("AlsoPassword (sandbox) = %q, %v", pw, err)
	}
}

// TestKeyringOlderSpelling: an older acmemail stored the keyring entry
// under the address as typed, in NFD here; the recorded profile, read with
// the address normalized, still finds it (and logs in as recorded).
func TestKeyringOlderSpelling(t *testing.T) {
	const nfd, nfc = "jo\u0308rg@example.test", "j\u00f6rg@example.test"
	kr := &secrettest.Keyring{Entries: map[string]string{"acmemail/" + nfd: "older-entry"}}
	secrettest.Use(t, kr)
	p, err := issuer.ProfileOf(keystore.CertMeta{Email: nfd, Profile: json.RawMessage(`{"version":1,"email":"` + nfd + `"}`)})
	if err != nil || p.Email != nfc {
		t.Fatalf("ProfileOf = %+q, %v", p.Email, err)
	}
	src, _ := sources(nil)
	imap, _, err := src.MailLogin(t.Context(), &p, secret.Recorded{})
	if err != nil || imap.Password != "older-entry" || imap.Username != nfd {
		t.Errorf("MailLogin = %+q/%q, %v; want the older entry, as %+q", imap.Username, imap.Password, err, nfd)
	}
}
