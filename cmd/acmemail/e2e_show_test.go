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

// showResult decodes show --json.
func showJSON(t *testing.T, env map[string]string) certInfo {
	t.Helper()
	r := runCLI(t, env, "show", "--json", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("show --json: exit %d\n%s", r.code, r.stderr)
	}
	var ci certInfo
	if err := json.Unmarshal([]byte(r.stdout), &ci); err != nil {
		t.Fatalf("show --json is not JSON: %v\n%s", err, r.stdout)
	}
	return ci
}

// showBlock is the "renew repeats:" block of show's text output, a map
// from label to value.
func showBlock(t *testing.T, env map[string]string) (string, map[string][]string) {
	t.Helper()
	r := runCLI(t, env, "show", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("show: exit %d\n%s", r.code, r.stderr)
	}
	_, block, ok := strings.Cut(r.stdout, "\nrenew repeats:\n")
	if !ok {
		t.Fatalf("show has no \"renew repeats:\" block:\n%s", r.stdout)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(strings.TrimRight(block, "\n"), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":  ")
		if !ok {
			t.Fatalf("show: %q in the renew block is not \"label:  value\"", line)
		}
		rows[k] = append(rows[k], strings.TrimSpace(v))
	}
	return r.stdout, rows
}

// TestShowRenewSettings: show tells what renew will do, from what obtain
// recorded: the mail servers and logins, where the mail password comes
// from (the command, never what it prints), the --also address's own
// mailbox and its password's source, the deploy hook, the key and the
// PKCS#12 file; in the text and in --json. A recorded file that is gone
// is a warning, and state without the records says nothing is recorded.
func TestShowRenewSettings(t *testing.T) {
	secrettest.NoKeyring(t)
	const bob, bobPW = "bob@example.org", "Bob-Show-Pw-5521"
	w, env := world(t, sandbox.Options{MailTiming: sandbox.MailAfterChallenge})
	if err := w.AddUser(bob, bobPW); err != nil {
		t.Fatal(err)
	}
	delete(env, "ACMEMAIL_PASSWORD")
	dir := t.TempDir()
	alicePW := filepath.Join(dir, "alice.pw")
	bobFile := filepath.Join(dir, "bob.pw")
	for p, pw := range map[string]string{alicePW: "alice-secret-pw", bobFile: bobPW} {
		if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	command := "cat '" + alicePW + "'"
	hook := "echo deployed >&2"
	mustObtain(t, env, w, "--mail-wait", "200ms", "--key-type", "p256", "--password-command", command, "--deploy-hook", hook,
		"--also", bob, "--also-imap", bob+"="+w.IMAPStartTLSURL, "--also-smtp", bob+"="+w.SMTPStartTLSURL,
		"--also-password-file", bob+"="+bobFile)

	text, rows := showBlock(t, env)
	for _, secret := range []string{"alice-secret-pw", bobPW} {
		if strings.Contains(text, secret) {
			t.Errorf("show prints a password (%q):\n%s", secret, text)
		}
	}
	want := map[string]string{
		"server":           w.DirectoryURL,
		"IMAP":             w.IMAPURL + ", login alice@example.test, folder INBOX",
		"SMTP":             w.SMTPURL,
		"mail login":       "password command: " + command,
		"also " + bob:      "own mailbox " + w.IMAPStartTLSURL + ", login " + bob + "; SMTP " + w.SMTPStartTLSURL + "; password file: " + bobFile,
		"deploy hook":      hook,
		"key":              "a new p256 key (renew --reuse-key keeps the current one), usage both",
		"PKCS#12 password": "never recorded: ACMEMAIL_P12_PASSWORD or renew --p12-password-file (cron has no terminal to ask on)",
	}
	for k, v := range want {
		if got := rows[k]; len(got) != 1 || got[0] != v {
			t.Errorf("show: %s: %q, want %q\n%s", k, got, v, text)
		}
	}
	if got := rows["PKCS#12"]; len(got) != 1 || !strings.HasPrefix(got[0], "modern profile, written to ") || !strings.Contains(got[0], "cert.p12") {
		t.Errorf("show: PKCS#12: %q\n%s", got, text)
	}
	for _, k := range []string{"warning", "renew skips it", "SMTP login", "recorded"} {
		if rows[k] != nil {
			t.Errorf("show: unexpected %s: %q\n%s", k, rows[k], text)
		}
	}

	ci := showJSON(t, env)
	p := ci.Renew
	if p == nil {
		t.Fatalf("show --json has no renew object")
	}
	if !p.Recorded || p.Skip != "" || p.Server != w.DirectoryURL || p.IMAP != w.IMAPURL || p.SMTP != w.SMTPURL ||
		p.User != "alice@example.test" || p.Mailbox != "INBOX" || p.DeployHook != hook || p.KeyType != "p256" ||
		p.Usage != "both" || p.P12Profile != "modern" || p.PKCS12 != ci.Files.PKCS12 || len(p.Warnings) != 0 {
		t.Errorf("show --json renew = %+v", *p)
	}
	if p.Login == nil || *p.Login != (loginPlan{Source: "password-command", Command: command}) || p.SMTPLogin != nil {
		t.Errorf("show --json renew.login = %+v, smtp_login %+v", p.Login, p.SMTPLogin)
	}
	if len(p.Also) != 1 || p.Also[0].Email != bob || p.Also[0].Mailbox != "own" || p.Also[0].IMAP != w.IMAPStartTLSURL ||
		p.Also[0].SMTP != w.SMTPStartTLSURL || p.Also[0].User != bob || p.Also[0].Login == nil ||
		*p.Also[0].Login != (loginPlan{Source: "password-file", File: bobFile}) {
		t.Errorf("show --json renew.also = %+v", p.Also)
	}
	// The field names are those documented (show --help).
	r := runCLI(t, env, "show", "--json", "alice@example.test")
	for _, k := range []string{`"renew":{"recorded":true,`, `"login":{"source":"password-command","command":`, `"also":[{"email":"` + bob + `","mailbox":"own",`, `"deploy_hook":`} {
		if !strings.Contains(r.stdout, k) {
			t.Errorf("show --json lacks %s:\n%s", k, r.stdout)
		}
	}
	// list --json carries it too; list's text stays one line per certificate.
	if r := runCLI(t, env, "list", "--json"); !strings.Contains(r.stdout, `"renew":{"recorded":true,`) {
		t.Errorf("list --json has no renew object:\n%s", r.stdout)
	}
	if r := runCLI(t, env, "list"); strings.Count(r.stdout, "\n") != 2 {
		t.Errorf("list prints more than a header and one line:\n%s", r.stdout)
	}

	// A recorded file that is gone: renew would fail; show warns.
	if err := os.Remove(bobFile); err != nil {
		t.Fatal(err)
	}
	if _, rows := showBlock(t, env); len(rows["warning"]) != 1 || !strings.Contains(rows["warning"][0], bobFile+" does not exist") {
		t.Errorf("show after the --also-password-file was removed: warnings %q", rows["warning"])
	}

	// State from an acmemail that recorded no login sources and no
	// --also mailboxes: nothing recorded, and what renew does instead.
	metaPath := filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test", "meta.json")
	rewrite := func(edit func(m map[string]any)) {
		t.Helper()
		_, m := metaJSON(t, env)
		edit(m)
		data, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(metaPath, append(data, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rewrite(func(m map[string]any) {
		set := m["profile"].(map[string]any)
		delete(set, "login")
		delete(set, "deploy_hook")
		also := set["also"].([]any)
		for i, a := range also {
			also[i] = map[string]any{"email": a.(map[string]any)["email"]}
		}
	})
	text, rows = showBlock(t, env)
	if got := rows["mail login"]; len(got) != 1 || !strings.HasPrefix(got[0], "nothing recorded: ACMEMAIL_PASSWORD, else the OS keyring") {
		t.Errorf("show of state without login sources: mail login %q\n%s", got, text)
	}
	if got := rows["also "+bob]; len(got) != 1 || got[0] != "read from the primary mailbox" {
		t.Errorf("show of state without --also mailboxes: %q\n%s", got, text)
	}
	if rows["deploy hook"] != nil || len(rows["warning"]) != 1 || !strings.Contains(rows["warning"][0], "no source of the mail password is recorded") {
		t.Errorf("show of state without login sources: hook %q, warnings %q\n%s", rows["deploy hook"], rows["warning"], text)
	}
	if p := showJSON(t, env).Renew; p == nil || p.Login == nil || p.Login.Source != "not-recorded" || p.Also[0].Mailbox != "primary" {
		t.Errorf("show --json of state without login sources: renew = %+v", p)
	}

	// The configuration file's table for the address gives renew a
	// password file (so renew logs in after all), a deploy hook and the
	// PKCS#12 password's file: show has them, with their lines.
	cfgFile := filepath.Join(dir, "config.toml")
	cfg := "[defaults]\ntimeout = \"5m\"\n\n[identity.\"alice@example.test\"]\npassword-file = \"" + alicePW + "\"\ndeploy-hook = \"echo from-config\"\np12-password-file = \"" + filepath.Join(dir, "p12.pw") + "\"\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env["ACMEMAIL_CONFIG"] = cfgFile
	text, rows = showBlock(t, env)
	for k, v := range map[string]string{
		"mail login":       "password file: " + alicePW + " (" + cfgFile + ":5)",
		"deploy hook":      "echo from-config (" + cfgFile + ":6)",
		"PKCS#12 password": "password file: " + filepath.Join(dir, "p12.pw") + " (" + cfgFile + ":7)",
		"config file":      "--timeout 5m0s (" + cfgFile + ":2)",
	} {
		if got := rows[k]; len(got) != 1 || got[0] != v {
			t.Errorf("show with a configuration file: %s: %q, want %q\n%s", k, got, v, text)
		}
	}
	// The login warning is gone; the missing PKCS#12 password file is one.
	if w := rows["warning"]; len(w) != 1 || !strings.Contains(w[0], "p12.pw does not exist") {
		t.Errorf("show with a configuration file: warnings %q", w)
	}
	if p := showJSON(t, env).Renew; p == nil || p.Login == nil || *p.Login != (loginPlan{Source: "password-file", File: alicePW, From: cfgFile + ":5"}) ||
		p.DeployHook != "echo from-config" || len(p.Config) != 4 {
		t.Errorf("show --json with a configuration file: renew = %+v", p)
	}
	delete(env, "ACMEMAIL_CONFIG")

	// Older still: no settings at all.
	rewrite(func(m map[string]any) { delete(m, "profile"); delete(m, "settings") })
	text, rows = showBlock(t, env)
	if got := rows["recorded"]; len(got) != 1 || got[0] != "nothing" || len(rows["warning"]) != 1 || !strings.Contains(rows["warning"][0], "renew fails for it") {
		t.Errorf("show of state without settings:\n%s", text)
	}
	if rows["IMAP"] != nil || rows["PKCS#12"] != nil || rows["mail login"] != nil {
		t.Errorf("show of state without settings invents settings:\n%s", text)
	}
	if p := showJSON(t, env).Renew; p == nil || p.Recorded || p.Login != nil {
		t.Errorf("show --json of state without settings: renew = %+v", p)
	}
}
