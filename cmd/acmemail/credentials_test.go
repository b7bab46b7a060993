package main

import (
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/cmd/internal/secret"
	"github.com/acmemail/acmemail/cmd/internal/secret/secrettest"
)

// Tests never prompt: a test run from a terminal must not wait for input.
func init() { secret.TTYPath = filepath.Join(os.TempDir(), "acmemail-test-no-tty", "tty") }

func writeTestSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLogin(t *testing.T) {
	kr := &secrettest.Keyring{}
	secrettest.Use(t, kr)
	env := map[string]string{"ACMEMAIL_PASSWORD": "stored-pw-1"}
	r := runCLI(t, env, "login", "alice@Example.test")
	if r.code != 0 || !strings.Contains(r.stderr, `stored the mail password for alice@example.test in the OS keyring (service "acmemail", account "alice@example.test")`) {
		t.Fatalf("login: exit %d\n%s", r.code, r.stderr)
	}
	if kr.Entries["acmemail/alice@example.test"] != "stored-pw-1" {
		t.Errorf("keyring = %v", kr.Entries)
	}
	r = runCLI(t, nil, "login", "--smtp", "--password-command", "echo smtp-pw", "alice@example.test")
	if r.code != 0 || kr.Entries["acmemail/smtp:alice@example.test"] != "smtp-pw" {
		t.Fatalf("login --smtp: exit %d, keyring %v\n%s", r.code, kr.Entries, r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, "smtp-pw") {
		t.Errorf("the password appears in the output")
	}
	// obtain-side lookup finds it.
	src := &secret.Sources{Getenv: func(string) string { return "" }}
	imap, smtp, err := src.MailLogin(t.Context(), &issuer.Profile{Email: "alice@example.test", AuthMech: "auto"}, secret.Recorded{})
	if err != nil {
		t.Fatal(err)
	}
	if imap.Password != "stored-pw-1" || smtp.Password != "smtp-pw" {
		t.Errorf("credentials from the keyring = %q, %q", imap.Password, smtp.Password)
	}
	r = runCLI(t, nil, "login", "--delete", "alice@example.test")
	if r.code != 0 || len(kr.Entries) != 1 {
		t.Fatalf("login --delete: exit %d, keyring %v\n%s", r.code, kr.Entries, r.stderr)
	}
	if r := runCLI(t, nil, "login", "--delete", "alice@example.test"); r.code == 0 || !strings.Contains(r.stderr, "holds no mail password") {
		t.Errorf("second delete: exit %d\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, nil, "login", "alice@example.test"); r.code != exitUsage || !strings.Contains(r.stderr, "no terminal") {
		t.Errorf("login without a password and a terminal: exit %d\n%s", r.code, r.stderr)
	}
}

// TestLoginNoKeyring: without a working keyring, login fails and says so;
// it never pretends to have stored anything.
func TestLoginNoKeyring(t *testing.T) {
	for _, tt := range []struct {
		name string
		kr   *secrettest.Keyring
		want string
	}{
		{"none", &secrettest.Keyring{Err: errors.Join(secret.ErrNoKeyring, errors.New(`exec: "dbus-launch": executable file not found`))}, "cannot store the mail password for alice@example.test: no OS keyring is available"},
		{"forgetful", &secrettest.Keyring{Forget: true}, "the OS keyring did not keep the mail password"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			secrettest.Use(t, tt.kr)
			r := runCLI(t, map[string]string{"ACMEMAIL_PASSWORD": "pw"}, "login", "alice@example.test")
			if r.code != exitError || !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "hint: give the password with --password-command") {
				t.Errorf("exit %d, want %d and %q with a hint:\n%s", r.code, exitError, tt.want, r.stderr)
			}
			if strings.Contains(r.stderr, "stored") {
				t.Errorf("login claims success:\n%s", r.stderr)
			}
		})
	}
}

// secretForms returns s and the encodings in which a protocol could carry
// it: base64 alone, in an AUTH PLAIN response, in OAUTHBEARER and XOAUTH2
// initial responses.
func secretForms(user, s string) []string {
	b := func(v string) string { return base64.StdEncoding.EncodeToString([]byte(v)) }
	return []string{s, b(s), b("\x00" + user + "\x00" + s), b("n,a=" + user + ",\x01auth=Bearer " + s + "\x01\x01"), b("user=" + user + "\x01auth=Bearer " + s + "\x01\x01")}
}

// TestSecretsNeverInOutput runs obtain at -vv (logs and the raw IMAP and
// SMTP protocol trace) with a distinctive password from each source, and
// an OAuth token, and checks that none appears anywhere on stdout or
// stderr, in any encoding a protocol uses.
func TestSecretsNeverInOutput(t *testing.T) {
	secrettest.NoKeyring(t)
	const pw = "Zebra-Quartz-9931-pw"
	const tok = "ya29.Distinct-Token-7749"
	const alice = "alice@example.test"
	newWorld := func(t *testing.T, opt sandbox.Options) (*sandbox.World, map[string]string) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		w, err := sandbox.Start(ctx, opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		if err := w.AddUser(alice, pw); err != nil {
			t.Fatal(err)
		}
		if opt.OAuth != sandbox.OAuthOff {
			if err := w.AddOAuthToken(alice, tok); err != nil {
				t.Fatal(err)
			}
		}
		dir := t.TempDir()
		roots := filepath.Join(dir, "roots.pem")
		if err := os.WriteFile(roots, w.TLSRootsPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		return w, map[string]string{"ACMEMAIL_HOME": filepath.Join(dir, "home"), "ACMEMAIL_CA_ROOTS": roots, "ACMEMAIL_P12_PASSWORD": "test"}
	}
	pwFile := writeTestSecret(t, pw+"\n")
	tests := []struct {
		name     string
		opt      sandbox.Options
		env      map[string]string
		args     []string
		starttls bool
		trace    []string // must appear in the trace, so that the test can fail
	}{
		{"ACMEMAIL_PASSWORD", sandbox.Options{}, map[string]string{"ACMEMAIL_PASSWORD": pw}, nil, false, []string{"imap| ", "LOGIN [redacted]", "smtp| AUTH PLAIN [redacted]"}},
		{"--password-file", sandbox.Options{}, nil, []string{"--password-file", pwFile}, false, []string{"LOGIN [redacted]"}},
		{"--password-command", sandbox.Options{}, nil, []string{"--password-command", "echo " + pw}, false, []string{"LOGIN [redacted]"}},
		{"STARTTLS", sandbox.Options{}, map[string]string{"ACMEMAIL_PASSWORD": pw}, nil, true, []string{"smtp| STARTTLS", "smtp| AUTH PLAIN [redacted]"}},
		{"--oauth-token-command", sandbox.Options{OAuth: sandbox.OAuthOnly}, nil, []string{"--oauth-token-command", "echo " + tok}, false, []string{"AUTHENTICATE OAUTHBEARER [redacted]", "smtp| AUTH OAUTHBEARER [redacted]"}},
		{"XOAUTH2", sandbox.Options{OAuth: sandbox.OAuthOnly}, nil, []string{"--oauth-token-command", "echo " + tok, "--auth-mech", "xoauth2"}, false, []string{"AUTHENTICATE XOAUTH2 [redacted]", "smtp| AUTH XOAUTH2 [redacted]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, env := newWorld(t, tt.opt)
			for k, v := range tt.env {
				env[k] = v
			}
			extra := append([]string{"-vv", "--json"}, tt.args...)
			if tt.starttls {
				extra = append(extra, "--imap", w.IMAPStartTLSURL, "--smtp", w.SMTPStartTLSURL)
			}
			r := runCLI(t, env, obtainArgs(w, extra...)...)
			if r.code != 0 {
				t.Fatalf("obtain exit %d\n%s", r.code, r.stderr)
			}
			out := r.stdout + r.stderr
			for _, s := range append(secretForms(alice, pw), secretForms(alice, tok)...) {
				if strings.Contains(out, s) {
					t.Errorf("the output contains a secret (%q)", s)
				}
			}
			for _, want := range tt.trace {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("the -vv output lacks %q (is the protocol trace on?)", want)
				}
			}
			if !strings.Contains(r.stderr, "level=DEBUG") {
				t.Errorf("no debug logs at -vv")
			}
			// Nor in the state directory (which records where the login
			// comes from for renew), unless the command line held it.
			if !strings.Contains(strings.Join(tt.args, " "), pw) {
				secretNotInState(t, env["ACMEMAIL_HOME"], pw)
			}
			// Nor in what show says renew repeats (the recorded commands
			// and paths), unless the command line held it.
			if args := strings.Join(tt.args, " "); !strings.Contains(args, pw) && !strings.Contains(args, tok) {
				for _, show := range [][]string{{"show", alice}, {"show", "--json", alice}, {"list", "--json"}} {
					r := runCLI(t, env, show...)
					if r.code != 0 || !strings.Contains(r.stdout, "renew") {
						t.Fatalf("%q: exit %d\n%s%s", show, r.code, r.stdout, r.stderr)
					}
					for _, s := range append(secretForms(alice, pw), secretForms(alice, tok)...) {
						if strings.Contains(r.stdout+r.stderr, s) {
							t.Errorf("%q prints a secret (%q)", show, s)
						}
					}
				}
			}
		})
	}

	// A refused password and a refused token, on the error path.
	for _, tt := range []struct {
		name   string
		opt    sandbox.Options
		args   []string
		secret string
	}{
		{"refused password", sandbox.Options{}, []string{"--password-command", "echo Wrong-Distinct-Pw-555"}, "Wrong-Distinct-Pw-555"},
		{"refused token", sandbox.Options{OAuth: sandbox.OAuthOnly}, []string{"--oauth-token-command", "echo ya29.Wrong-Token-556"}, "ya29.Wrong-Token-556"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, env := newWorld(t, tt.opt)
			r := runCLI(t, env, obtainArgs(w, append([]string{"-vv"}, tt.args...)...)...)
			if r.code != exitMailAuth {
				t.Fatalf("obtain exit %d, want %d\n%s", r.code, exitMailAuth, r.stderr)
			}
			for _, s := range secretForms(alice, tt.secret) {
				if strings.Contains(r.stdout+r.stderr, s) {
					t.Errorf("the output contains the refused secret (%q)", s)
				}
			}
		})
	}

	// The in-process sandbox takes the password or token the test gives,
	// and its own logs are in the output too.
	for _, tt := range []struct {
		name  string
		args  []string
		trace string
	}{
		{"in-process sandbox", []string{"--password-command", "echo " + pw}, "LOGIN [redacted]"},
		{"in-process sandbox, OAuth only", []string{"--sandbox-oauth", "only", "--oauth-token-command", "echo " + tok}, "AUTHENTICATE OAUTHBEARER [redacted]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"ACMEMAIL_HOME": t.TempDir(), "ACMEMAIL_P12_PASSWORD": "test"}
			r := runCLI(t, env, append(append([]string{"obtain", "-vv", "--server", "sandbox"}, tt.args...), alice)...)
			if r.code != 0 {
				t.Fatalf("obtain exit %d\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, "component=sandbox") || !strings.Contains(r.stderr, tt.trace) {
				t.Errorf("want sandbox logs and %q in the -vv output", tt.trace)
			}
			for _, s := range append(secretForms(alice, pw), secretForms(alice, tok)...) {
				if strings.Contains(r.stdout+r.stderr, s) {
					t.Errorf("the output contains a secret (%q)", s)
				}
			}
		})
	}
}

// TestObtainOAuthBearerOnly: against a sandbox that refuses every password,
// obtain logs in to IMAP and SMTP with OAUTHBEARER, the token coming from
// --oauth-token-command, and gets the certificate.
func TestObtainOAuthBearerOnly(t *testing.T) {
	secrettest.NoKeyring(t)
	w, env := world(t, sandbox.Options{OAuth: sandbox.OAuthOnly})
	const tok = "sandbox-oauth-token-1"
	if err := w.AddOAuthToken("alice@example.test", tok); err != nil {
		t.Fatal(err)
	}
	tokFile := writeTestSecret(t, tok+"\n")
	delete(env, "ACMEMAIL_PASSWORD")
	r := runCLI(t, env, obtainArgs(w, "--oauth-token-command", "cat "+tokFile)...)
	if r.code != 0 {
		t.Fatalf("obtain exit %d\n%s", r.code, r.stderr)
	}
	st := w.Stats()
	if st.CertificatesIssued != 1 {
		t.Errorf("certificates issued = %d, want 1", st.CertificatesIssued)
	}
	if st.Logins["imap OAUTHBEARER"] < 1 || st.Logins["smtp OAUTHBEARER"] < 1 {
		t.Errorf("logins = %v, want IMAP and SMTP with OAUTHBEARER", st.Logins)
	}
	for k := range st.Logins {
		if !strings.HasSuffix(k, " OAUTHBEARER") {
			t.Errorf("a login with another mechanism succeeded: %v", st.Logins)
		}
	}

	// A password is refused (exit 3) before the CA is contacted, with the
	// hint; so is a wrong token.
	env["ACMEMAIL_PASSWORD"] = "alice-secret-pw"
	if r := runCLI(t, env, obtainArgs(w, "--force")...); r.code != exitMailAuth {
		t.Errorf("obtain with a password against an OAuth-only server: exit %d, want %d\n%s", r.code, exitMailAuth, r.stderr)
	}
	r = runCLI(t, env, obtainArgs(w, "--force", "--oauth-token-command", "echo expired-token-42")...)
	if r.code != exitMailAuth || !strings.Contains(r.stderr, "invalid or expired (invalid_token)") {
		t.Errorf("obtain with a wrong token: exit %d, want %d and the server's invalid_token\n%s", r.code, exitMailAuth, r.stderr)
	}
	if st := w.Stats(); st.Orders != 1 {
		t.Errorf("orders = %d, want 1 (failed logins must not reach the CA)", st.Orders)
	}
}

// TestObtainSandboxOAuth: --server sandbox --sandbox-oauth only works with
// nothing to configure.
func TestObtainSandboxOAuth(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ACMEMAIL_HOME": t.TempDir(), "ACMEMAIL_P12_PASSWORD": "test"}
	r := runCLI(t, env, "obtain", "--server", "sandbox", "--sandbox-oauth", "only", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, env, "obtain", "--server", "sandbox", "--force", "--oauth-token-command", "echo t0ken", "alice@example.test"); r.code != exitUsage || !strings.Contains(r.stderr, "needs --sandbox-oauth") {
		t.Errorf("token command with a password-only sandbox: exit %d\n%s", r.code, r.stderr)
	}
}

// secretNotInState fails if any file under the state directory holds
// secret in plain text.
func secretNotInState(t *testing.T, home, secret string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		if data, err := os.ReadFile(p); err != nil {
			return err
		} else if strings.Contains(string(data), secret) {
			t.Errorf("%s holds a secret", p)
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Errorf("walk the state directory: %d files, %v", n, err)
	}
}
