package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestObtainRememberedServers: without --imap and --smtp, obtain uses the
// servers remembered for the address, says so, and --rediscover looks
// again instead (here by SRV records, end to end).
func TestObtainRememberedServers(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	path, err := issuer.RememberedPath(env["ACMEMAIL_HOME"], "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	r := &issuer.RememberedServers{Email: "alice@example.test", IMAP: w.IMAPURL, IMAPSource: "SRV _imaps._tcp.example.test",
		SMTP: w.SMTPStartTLSURL, SMTPSource: "autoconfig https://autoconfig.example.test/mail/config-v1.1.xml", Found: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)}
	if err := issuer.SaveRemembered(path, r); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("remembered file: %v, %v", fi, err)
	}
	args := []string{"obtain", "--server", w.DirectoryURL, "--dns-resolver", w.DNSAddr, "--reply-settle", "0", "--mail-wait", "2s", "--agree-tos", "alice@example.test"}
	res := runCLI(t, env, args...)
	if res.code != 0 {
		t.Fatalf("obtain exit %d\n%s", res.code, res.stderr)
	}
	if want := "using the mail servers found for alice@example.test on 2026-11-30: IMAP " + w.IMAPURL + ", SMTP " + w.SMTPStartTLSURL; !strings.Contains(res.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
	}

	// --rediscover ignores the file and looks again: the sandbox's DNS
	// server publishes SRV records for example.test (target localhost), so
	// the servers are found there, and remembered instead.
	res = runCLI(t, env, append([]string{"obtain", "--rediscover", "--force"}, args[1:]...)...)
	if res.code != 0 {
		t.Fatalf("obtain --rediscover: exit %d\n%s", res.code, res.stderr)
	}
	_, imapPort, _ := net.SplitHostPort(strings.TrimPrefix(w.IMAPURL, "imaps://"))
	_, smtpPort, _ := net.SplitHostPort(strings.TrimPrefix(w.SMTPURL, "smtps://"))
	for _, want := range []string{
		"looking up the mail servers of alice@example.test",
		"found IMAP localhost:" + imapPort + " (tls) from SRV _imaps._tcp.example.test",
		"found SMTP localhost:" + smtpPort + " (tls) from SRV _submissions._tcp.example.test",
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	got, err := issuer.LoadRemembered(path)
	if err != nil || got.IMAP != "imaps://localhost:"+imapPort || got.SMTP != "smtps://localhost:"+smtpPort || got.IMAPSource != "SRV _imaps._tcp.example.test" {
		t.Errorf("remembered after --rediscover: %+v, %v", got, err)
	}
	if st := w.Stats(); st.CertificatesIssued != 2 {
		t.Errorf("certificates = %d, want 2", st.CertificatesIssued)
	}

	// A damaged file is reported, not silently replaced (for an address
	// whose certificate, and so its recorded servers, is gone).
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test")); err != nil {
		t.Fatal(err)
	}
	res = runCLI(t, env, args...)
	if res.code == 0 || !strings.Contains(res.stderr, filepath.Base(path)) || !strings.Contains(res.stderr, "--rediscover") {
		t.Errorf("obtain with a damaged file: exit %d\n%s", res.code, res.stderr)
	}
}
