package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/cmd/internal/secret/secrettest"
)

// challengesIn counts the challenge mails in a sandbox mailbox.
func challengesIn(w *sandbox.World, who string) int {
	n := 0
	for _, m := range w.Inbox(who) {
		if strings.Contains(string(m), "Subject: ACME: ") {
			n++
		}
	}
	return n
}

// metaJSON is the certificate's meta.json, as text and decoded.
func metaJSON(t *testing.T, env map[string]string) (string, map[string]any) {
	t.Helper()
	p := filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test", "meta.json")
	data := readFile(t, p)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return string(data), m
}

// TestRenewAlsoOwnMailbox: a certificate for an --also address whose
// challenge arrives in a mailbox of its own, with its own submission
// server, renews: renew reads that address's challenge from its mailbox
// (not the primary one) and replies through its server, with the password
// from the file (~/ expanded) or the command obtain was given, recorded
// by path or as the command, never the password.
func TestRenewAlsoOwnMailbox(t *testing.T) {
	t.Parallel()
	const bob, bobPW = "bob@example.org", "Bob-Distinct-Pw-4471"
	for _, how := range []string{"file", "command"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			w, env := world(t, sandbox.Options{MailTiming: sandbox.MailAfterChallenge})
			if err := w.AddUser(bob, bobPW); err != nil {
				t.Fatal(err)
			}
			home := t.TempDir()
			env["HOME"] = home
			pwFile := filepath.Join(home, "bob.pw")
			if err := os.WriteFile(pwFile, []byte(bobPW+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			source, wantFile, wantCommand := []string{"--also-password-file", bob + "=~/bob.pw"}, pwFile, ""
			if how == "command" {
				wantCommand = "cat '" + pwFile + "'"
				source, wantFile = []string{"--also-password-command", bob + "=" + wantCommand}, ""
			}
			mustObtain(t, env, w, append([]string{"--mail-wait", "200ms", "--also", bob,
				"--also-imap", bob + "=" + w.IMAPStartTLSURL, "--also-smtp", bob + "=" + w.SMTPStartTLSURL,
				"--also-user", bob + "=" + bob}, source...)...)
			if a, b := challengesIn(w, "alice@example.test"), challengesIn(w, bob); a != 1 || b != 1 {
				t.Fatalf("after obtain: %d and %d challenge mails, want one in each mailbox", a, b)
			}
			text, _ := metaJSON(t, env)
			if strings.Contains(text, bobPW) || strings.Contains(text, "alice-secret-pw") {
				t.Fatal("meta.json holds a password")
			}
			meta, leaf1 := installed(t, env)
			if m := profileOf(t, meta).Also; len(m) != 1 || m[0].IMAP != w.IMAPStartTLSURL || m[0].SMTP != w.SMTPStartTLSURL ||
				m[0].User != bob || m[0].PasswordFile != wantFile || m[0].PasswordCommand != wantCommand {
				t.Fatalf("recorded mailboxes = %+v", m)
			}

			r := runCLI(t, env, "renew", "--force", "-v", "alice@example.test")
			if r.code != 0 {
				t.Fatalf("renew: exit %d\nstderr:\n%s", r.code, r.stderr)
			}
			_, leaf2 := installed(t, env)
			if leaf2.Equal(leaf1) || len(leaf2.EmailAddresses) != 2 {
				t.Fatalf("renewed certificate: replaced %v, addresses %q", !leaf2.Equal(leaf1), leaf2.EmailAddresses)
			}
			if a, b := challengesIn(w, "alice@example.test"), challengesIn(w, bob); a != 2 || b != 2 {
				t.Errorf("after renew: %d and %d challenge mails, want two in each mailbox", a, b)
			}
			if !strings.Contains(r.stderr, "for "+bob) {
				t.Errorf("renew -v does not say it watches bob's mailbox:\n%s", r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, bobPW) {
				t.Error("renew's output holds bob's password")
			}
			if st := w.Stats(); st.RepliesReceived != 4 || st.CertificatesIssued != 2 {
				t.Errorf("sandbox: %d replies, %d certificates; want 4 and 2 (rejected: %v)", st.RepliesReceived, st.CertificatesIssued, st.RejectedReasons)
			}
		})
	}
}

// TestRenewRecordedLogin: obtain's --password-command is recorded (the
// command, never its output), so renew with no password flag, variable
// or configuration logs in with it; a source given to renew wins over it
// (ACMEMAIL_PASSWORD for one run; a flag is recorded instead).
func TestRenewRecordedLogin(t *testing.T) {
	secrettest.NoKeyring(t)
	w, env := world(t, sandbox.Options{})
	delete(env, "ACMEMAIL_PASSWORD")
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "alice.pw")
	if err := os.WriteFile(pwFile, []byte("alice-secret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	command := "cat '" + pwFile + "'"
	mustObtain(t, env, w, "--password-command", command)
	text, _ := metaJSON(t, env)
	if strings.Contains(text, "alice-secret-pw") {
		t.Fatal("meta.json holds the password")
	}
	if meta, _ := installed(t, env); profileOf(t, meta).Login.PasswordCommand != command {
		t.Fatalf("recorded password command = %q, want %q", profileOf(t, meta).Login.PasswordCommand, command)
	}
	renew := func(extra ...string) cliResult {
		t.Helper()
		return runCLI(t, env, append(append([]string{"renew", "--force", "-v"}, extra...), "alice@example.test")...)
	}

	// 1. Nothing given: the recorded command.
	r := renew()
	if r.code != 0 || !strings.Contains(r.stdout, "renewed alice@example.test") {
		t.Fatalf("renew without a password source: exit %d\nstdout: %s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "--password-command (recorded)") {
		t.Errorf("renew -v does not say the password came from the recorded command:\n%s", r.stderr)
	}

	// 2. ACMEMAIL_PASSWORD given to renew wins (here: a wrong one, refused
	// by the server), and the recorded command stays recorded.
	env["ACMEMAIL_PASSWORD"] = "not-the-password"
	if r := renew(); r.code != exitSomeFailed || !strings.Contains(r.stderr, "authentication failed") {
		t.Errorf("renew with a wrong ACMEMAIL_PASSWORD: exit %d, want %d and a failed login\n%s", r.code, exitSomeFailed, r.stderr)
	}
	delete(env, "ACMEMAIL_PASSWORD")
	// 3. So does a flag given to renew.
	if r := renew("--password-command", "echo not-the-password"); r.code != exitSomeFailed || !strings.Contains(r.stderr, "authentication failed") {
		t.Errorf("renew --password-command (wrong): exit %d, want %d and a failed login\n%s", r.code, exitSomeFailed, r.stderr)
	}
	if meta, _ := installed(t, env); profileOf(t, meta).Login.PasswordCommand != command {
		t.Errorf("after failed renewals the recorded command is %q, want %q", profileOf(t, meta).Login.PasswordCommand, command)
	}

	// 4. A working source given to renew is used and recorded instead.
	r = renew("--password-file", pwFile)
	if r.code != 0 {
		t.Fatalf("renew --password-file: exit %d\n%s", r.code, r.stderr)
	}
	if meta, _ := installed(t, env); profileOf(t, meta).Login.PasswordFile != pwFile || profileOf(t, meta).Login.PasswordCommand != "" {
		t.Errorf("after renew --password-file: recorded file %q, command %q; want the file only", profileOf(t, meta).Login.PasswordFile, profileOf(t, meta).Login.PasswordCommand)
	}

	// 5. A recorded source that fails says it was recorded, and what to do.
	if err := os.Remove(pwFile); err != nil {
		t.Fatal(err)
	}
	r = renew()
	if r.code != exitSomeFailed || !strings.Contains(r.stderr, "recorded with the certificate") {
		t.Errorf("renew with a recorded password file that is gone: exit %d, want %d and a hint\n%s", r.code, exitSomeFailed, r.stderr)
	}
	if st := w.Stats(); st.CertificatesIssued != 3 {
		t.Errorf("certificates issued = %d, want 3 (obtain and two renewals)", st.CertificatesIssued)
	}
}

// TestRenewRecordedOAuth: obtain's --oauth-token-command is recorded, and
// renew logs in to a server that refuses passwords with a fresh token
// from it, given nothing.
func TestRenewRecordedOAuth(t *testing.T) {
	secrettest.NoKeyring(t)
	w, env := world(t, sandbox.Options{OAuth: sandbox.OAuthOnly})
	const tok = "ya29.Renew-Token-8812"
	if err := w.AddOAuthToken("alice@example.test", tok); err != nil {
		t.Fatal(err)
	}
	delete(env, "ACMEMAIL_PASSWORD")
	tokFile := writeTestSecret(t, tok+"\n")
	mustObtain(t, env, w, "--oauth-token-command", "cat "+tokFile)
	if text, _ := metaJSON(t, env); strings.Contains(text, tok) {
		t.Fatal("meta.json holds the token")
	}
	before := w.Stats().Logins["imap OAUTHBEARER"]
	r := runCLI(t, env, "renew", "--force", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("renew: exit %d\n%s", r.code, r.stderr)
	}
	if st := w.Stats(); st.CertificatesIssued != 2 || st.Logins["imap OAUTHBEARER"] <= before {
		t.Errorf("sandbox: %d certificates, OAUTHBEARER logins %d (before renew %d); want 2 and more", st.CertificatesIssued, st.Logins["imap OAUTHBEARER"], before)
	}
	if strings.Contains(r.stdout+r.stderr, tok) {
		t.Error("renew's output holds the token")
	}
}

// TestRenewStateBeforeLoginRecording: a certificate obtained by an
// acmemail that recorded neither the login sources nor the --also
// mailboxes renews as before: the password from the environment, every
// --also address read from the primary mailbox; and without a password
// given, the error says how to give one.
func TestRenewStateBeforeLoginRecording(t *testing.T) {
	secrettest.NoKeyring(t)
	w, env := world(t, sandbox.Options{})
	if err := w.AddAlias("alice@example.org", "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	mustObtain(t, env, w, "--also", "alice@example.org", "--password-command", "echo alice-secret-pw")
	// Make meta.json what an older acmemail wrote: no login sources, no
	// mailboxes of --also addresses.
	p := filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test", "meta.json")
	_, m := metaJSON(t, env)
	set := m["profile"].(map[string]any)
	if login, _ := set["login"].(map[string]any); login["password_command"] != "echo alice-secret-pw" {
		t.Fatalf("obtain did not record the command: %v", set)
	}
	// The settings of that time: the profile's, less what it adds.
	for _, k := range []string{"version", "email", "also", "login", "key_type", "usage", "split", "ca_roots", "p12_password_file"} {
		delete(set, k)
	}
	m["settings"] = set
	delete(m, "profile")
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(data, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}

	delete(env, "ACMEMAIL_PASSWORD")
	r := runCLI(t, env, "renew", "--force", "alice@example.test")
	if r.code != exitSomeFailed || !strings.Contains(r.stderr, "no terminal to ask on") || !strings.Contains(r.stderr, "--password-command") {
		t.Errorf("renew of old state with no password: exit %d, want %d and the hint\n%s", r.code, exitSomeFailed, r.stderr)
	}
	env["ACMEMAIL_PASSWORD"] = "alice-secret-pw"
	r = runCLI(t, env, "renew", "--force", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("renew of old state: exit %d\n%s", r.code, r.stderr)
	}
	meta, leaf := installed(t, env)
	if len(leaf.EmailAddresses) != 2 || meta.Also != "alice@example.org" {
		t.Errorf("renewed certificate names %q (also %q)", leaf.EmailAddresses, meta.Also)
	}
	if s := profileOf(t, meta); s.Login.HasMail() || len(s.Also) != 1 || s.Also[0].Own() {
		t.Errorf("renew recorded a login source or mailbox it was not given: %+v", s)
	}
	if n := challengesIn(w, "alice@example.test"); n != 4 {
		t.Errorf("the primary mailbox got %d challenge mails, want 4 (two addresses, twice)", n)
	}
}
