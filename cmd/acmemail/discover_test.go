package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestObtainRememberedServers: without --imap and --smtp, obtain uses the
// servers remembered for the address (as discovery leaves them), says so,
// and --rediscover looks again instead.
func TestObtainRememberedServers(t *testing.T) {
	w, env := world(t, sandbox.Options{})
	path, err := rememberedPath(func(k string) string { return env[k] }, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	r := &rememberedServers{Email: "alice@example.test", IMAP: w.IMAPURL, IMAPSource: "SRV _imaps._tcp.example.test",
		SMTP: w.SMTPStartTLSURL, SMTPSource: "autoconfig https://autoconfig.example.test/mail/config-v1.1.xml", Found: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)}
	if err := saveRemembered(path, r); err != nil {
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

	// --rediscover ignores the file; example.test has no mail servers, so
	// discovery fails with the hint to name them.
	res = runCLI(t, env, append([]string{"obtain", "--rediscover"}, args[1:]...)...)
	if res.code != exitUsage || !strings.Contains(res.stderr, "no mail server found") || !strings.Contains(res.stderr, "hint: give the servers: --imap") {
		t.Errorf("obtain --rediscover: exit %d\n%s", res.code, res.stderr)
	}
	if st := w.Stats(); st.Orders != 1 {
		t.Errorf("orders = %d, want 1", st.Orders)
	}

	// A damaged file is reported, not silently replaced.
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	res = runCLI(t, env, args...)
	if res.code == 0 || !strings.Contains(res.stderr, filepath.Base(path)) || !strings.Contains(res.stderr, "--rediscover") {
		t.Errorf("obtain with a damaged file: exit %d\n%s", res.code, res.stderr)
	}
}
