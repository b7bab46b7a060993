package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestObtainTwoAddresses: one certificate for two addresses, one order
// with two email identifiers, each challenge answered once: when the
// second address is an alias delivered into the same mailbox, and when it
// has a mailbox (and submission login) of its own.
func TestObtainTwoAddresses(t *testing.T) {
	t.Parallel()
	t.Run("alias", func(t *testing.T) {
		t.Parallel()
		w, env := world(t, sandbox.Options{})
		if err := w.AddAlias("alice@example.org", "alice@example.test"); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, env, obtainArgs(w, "--also", "alice@example.org", "--json")...)
		checkTwoAddresses(t, w, r, []string{"alice@example.test", "alice@example.org"})
	})
	t.Run("own-mailbox", func(t *testing.T) {
		t.Parallel()
		w, env := world(t, sandbox.Options{MailTiming: sandbox.MailAfterChallenge})
		if err := w.AddUser("bob@example.org", "bob-secret-pw"); err != nil {
			t.Fatal(err)
		}
		pwFile := filepath.Join(t.TempDir(), "bob.pw")
		if err := os.WriteFile(pwFile, []byte("bob-secret-pw\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, env, obtainArgs(w, "--mail-wait", "200ms", "--also", "bob@example.org",
			"--also-imap", "bob@example.org="+w.IMAPStartTLSURL, "--also-smtp", "bob@example.org="+w.SMTPStartTLSURL,
			"--also-password-file", "bob@example.org="+pwFile, "--json")...)
		checkTwoAddresses(t, w, r, []string{"alice@example.test", "bob@example.org"})
		// Each challenge went to its own mailbox; the sandbox lets a login
		// send only as itself, so the replies went out through both.
		for _, who := range []string{"alice@example.test", "bob@example.org"} {
			n := 0
			for _, m := range w.Inbox(who) {
				if strings.Contains(string(m), "Subject: ACME: ") {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s received %d challenge mails, want 1", who, n)
			}
		}
		if strings.Contains(r.stderr, "bob-secret-pw") {
			t.Error("the second mailbox's password appears in stderr")
		}
	})
	t.Run("in-process-sandbox", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"ACMEMAIL_HOME": t.TempDir(), "ACMEMAIL_P12_PASSWORD": "test"}
		r := runCLI(t, env, "obtain", "--server", "sandbox", "--also", "alice@example.org",
			"--also", "carol@example.net", "--also-imap", "carol@example.net=sandbox", "--json", "alice@example.test")
		if r.code != 0 {
			t.Fatalf("obtain: exit %d\nstderr:\n%s", r.code, r.stderr)
		}
		var res issuer.CertResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatal(err)
		}
		checkP12SANs(t, res.PKCS12, []string{"alice@example.test", "alice@example.org", "carol@example.net"})
	})
	t.Run("usage errors", func(t *testing.T) {
		env := map[string]string{"ACMEMAIL_HOME": t.TempDir(), "ACMEMAIL_P12_PASSWORD": "test"}
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--also", "alice@example.test"}, "already in the certificate"},
			{[]string{"--also", "not-an-address"}, "is not a mail address"},
			{[]string{"--also-imap", "bob@example.org=imaps://x:993"}, "is not an --also address"},
			{[]string{"--also", "bob@example.org", "--also-user", "bob@example.org=bob"}, "has no --also-imap"},
			{[]string{"--also", "bob@example.org", "--also-imap", "bob@example.org"}, "want ADDR=VALUE"},
			{[]string{"--also", "bob@example.org", "--also-imap", "bob@example.org=imaps://x:993", "--also-password-file", "bob@example.org=/f",
				"--also-password-command", "bob@example.org=pass bob"}, "use one"},
		} {
			r := runCLI(t, env, append(append([]string{"obtain", "--server", "sandbox"}, c.args...), "alice@example.test")...)
			if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
				t.Errorf("%q: exit %d, stderr %q; want %d and %q", c.args, r.code, r.stderr, exitUsage, c.want)
			}
		}
	})
}

func checkTwoAddresses(t *testing.T, w *sandbox.World, r cliResult, want []string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("obtain: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	var res issuer.CertResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	checkP12SANs(t, res.PKCS12, want)
	st := w.Stats()
	if st.Orders != 1 || st.Authorizations != 2 || st.RepliesReceived != 2 || st.CertificatesIssued != 1 {
		t.Errorf("sandbox: %d orders, %d authorizations, %d replies, %d certificates; want 1, 2, 2, 1 (rejected: %v)",
			st.Orders, st.Authorizations, st.RepliesReceived, st.CertificatesIssued, st.RejectedReasons)
	}
}

func checkP12SANs(t *testing.T, path string, want []string) {
	t.Helper()
	_, leaf, _, err := pkcs12.DecodeChain(readFile(t, path), "test")
	if err != nil {
		t.Fatalf("pkcs12.DecodeChain: %v", err)
	}
	sans, err := acmemail.CertificateEmails(leaf)
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Clone(sans.Emails)
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Errorf("the certificate's addresses = %q, want %q", sans.Emails, want)
	}
}
