//go:build realmail

// doctor, obtain --manual and obtain --pipe with acmemail respond against
// the real Postfix, Dovecot and OpenDKIM of .ci/realmail.sh (see
// realmail_test.go).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmemail/acmemail/cmd/internal/secret"
	"github.com/acmemail/acmemail/mailbox"
)

// runBinary runs the built acmemail with the real world's roots and state
// directory home, stdin from stdin.
func (r *realWorld) runBinary(t *testing.T, home string, stdin []byte, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.env["ACMEMAIL"], args...)
	cmd.Env = append(os.Environ(), "ACMEMAIL_HOME="+home, "ACMEMAIL_CA_ROOTS="+r.roots, "ACMEMAIL_P12_PASSWORD=realmail-test")
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := runResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("run acmemail %s: %v", args[0], err)
	}
	t.Logf("acmemail %s: exit status %d", strings.Join(args, " "), res.code)
	return res
}

// background is an acmemail run in the background, stdin from the test,
// stderr line by line.
type background struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout bytes.Buffer
	mu     sync.Mutex
	stderr bytes.Buffer
	lines  chan string
}

func (r *realWorld) startBinary(t *testing.T, home string, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, r.env["ACMEMAIL"], args...)
	cmd.Env = append(os.Environ(), "ACMEMAIL_HOME="+home, "ACMEMAIL_CA_ROOTS="+r.roots, "ACMEMAIL_P12_PASSWORD=realmail-test")
	b := &background{cmd: cmd, lines: make(chan string, 1000)}
	cmd.Stdout = &b.stdout
	var err error
	if b.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			b.mu.Lock()
			b.stderr.WriteString(sc.Text() + "\n")
			b.mu.Unlock()
			select {
			case b.lines <- sc.Text():
			default:
			}
		}
		close(b.lines)
	}()
	t.Cleanup(func() {
		cancel()
		b.stdin.Close()
		cmd.Wait()
	})
	return b
}

func (b *background) stderrText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stderr.String()
}

func (b *background) waitLine(t *testing.T, s string) {
	t.Helper()
	for line := range b.lines {
		if strings.Contains(line, s) {
			return
		}
	}
	t.Fatalf("acmemail ended without printing %q; stderr:\n%s", s, b.stderrText())
}

func (b *background) waitReply(t *testing.T) string {
	t.Helper()
	b.waitLine(t, replyBegin)
	var sb strings.Builder
	for line := range b.lines {
		if line == replyEnd {
			return sb.String()
		}
		sb.WriteString(line + "\n")
	}
	t.Fatalf("no end of the reply; stderr:\n%s", b.stderrText())
	return ""
}

func (b *background) wait(t *testing.T) runResult {
	t.Helper()
	err := b.cmd.Wait()
	for range b.lines { // stderr is complete once lines is closed
	}
	res := runResult{stdout: b.stdout.String(), stderr: b.stderrText()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("acmemail: %v", err)
	}
	return res
}

// mua is the user's mail program: it watches the INBOX over IMAP and
// submits over SMTP with the user's own login.
type mua struct {
	email string
	creds mailbox.Credentials
	w     *mailbox.Watcher
	tls   *x509.CertPool
	smtp  string
}

func (r *realWorld) newMUA(t *testing.T, email string) *mua {
	t.Helper()
	pw, err := secret.ReadFile(r.password(email))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := os.ReadFile(r.roots)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(roots)
	ep, err := mailbox.ParseIMAPURL(r.env["IMAP"])
	if err != nil {
		t.Fatal(err)
	}
	m := &mua{email: email, creds: mailbox.Credentials{Username: email, Password: pw}, tls: pool, smtp: r.env["SMTP"]}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if m.w, err = mailbox.Watch(ctx, mailbox.IMAPConfig{Endpoint: ep, Credentials: m.creds, TLSConfig: tlsConfig(pool)}); err != nil {
		t.Fatalf("the test's mail program cannot watch %s: %v", email, err)
	}
	t.Cleanup(func() { m.w.Close() })
	return m
}

// challenge returns the next challenge mail, as a mail program's "save
// as" or an MDA gives it: LF line ends.
func (m *mua) challenge(t *testing.T) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		raw, err := m.w.Next(ctx)
		if err != nil {
			t.Fatalf("no challenge mail for %s: %v", m.email, err)
		}
		if bytes.Contains(raw, []byte("\nSubject: ACME: ")) {
			return bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
		}
	}
}

// send submits a printed reply through the real submission server, where
// OpenDKIM signs it.
func (m *mua) send(t *testing.T, reply string) {
	t.Helper()
	var to []string
	for _, line := range strings.Split(reply, "\n") {
		if v, ok := strings.CutPrefix(line, "To: "); ok {
			to = append(to, strings.TrimSpace(v))
		}
	}
	ep, err := mailbox.ParseSMTPURL(m.smtp)
	if err != nil {
		t.Fatal(err)
	}
	s := mailbox.NewSender(mailbox.SMTPConfig{Endpoint: ep, Credentials: m.creds, TLSConfig: tlsConfig(m.tls)})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Send(ctx, m.email, to, []byte(strings.ReplaceAll(reply, "\n", "\r\n"))); err != nil {
		t.Fatalf("submit the reply: %v", err)
	}
}

func TestRealMailDoctor(t *testing.T) {
	r := loadRealWorld(t)
	r.startSandbox(t)
	const email = "alice@example.com"
	doctor := func(t *testing.T, extra ...string) (runResult, map[string]doctorCheck) {
		args := append([]string{"doctor", "-v", "--server", r.dirURL, "--imap", r.env["IMAP"], "--smtp", r.env["SMTP"], "--json"}, extra...)
		res := r.runBinary(t, t.TempDir(), nil, append(args, email)...)
		var checks []doctorCheck
		if err := json.Unmarshal([]byte(res.stdout), &checks); err != nil {
			t.Fatalf("stdout is not the JSON checks: %v\n%s\nstderr:\n%s", err, res.stdout, res.stderr)
		}
		by := map[string]doctorCheck{}
		for _, c := range checks {
			by[c.Name] = c
			t.Logf("%-12s %-4s %s %s", c.Name, c.Status, c.Detail, c.Fix)
		}
		return res, by
	}

	// Postfix submission with OpenDKIM signing, Dovecot with IDLE and
	// UIDPLUS: everything passes; the CA, known by URL only, is a warning.
	t.Run("pass", func(t *testing.T) {
		before := len(r.maildirMessages(t, email))
		res, c := doctor(t, "--password-file", r.password(email), "--dns-resolver", r.env["DNS"])
		if res.code != 0 {
			t.Fatalf("exit status %d, want 0; stderr:\n%s", res.code, res.stderr)
		}
		for _, name := range []string{"imap-login", "imap-idle", "smtp-login", "ca-directory"} {
			if c[name].Status != "pass" {
				t.Errorf("%s = %+v, want pass", name, c[name])
			}
		}
		// OpenDKIM's default h= leaves out Message-ID and the Content-*
		// fields of the reply-shaped test message: verified, with a warning.
		if d := c["dkim"]; d.Status != "warn" || !strings.Contains(d.Detail, "Message-ID") || !strings.Contains(d.Fix, "SignHeaders") {
			t.Errorf("dkim = %+v, want a warning about the fields h= leaves out", d)
		}
		if c["ca-email"].Status != "warn" {
			t.Errorf("ca-email = %+v, want warn", c["ca-email"])
		}
		if d := c["dkim"].Detail; !strings.Contains(d, "d=example.com") || !strings.Contains(d, "the test message was deleted") {
			t.Errorf("dkim detail = %q", d)
		}
		for _, m := range r.maildirMessages(t, email) {
			if bytes.Contains(m, []byte("acmemail doctor: DKIM test")) {
				t.Errorf("the test message is still in the Maildir")
			}
		}
		if after := len(r.maildirMessages(t, email)); after != before {
			t.Errorf("the Maildir held %d messages before and %d after", before, after)
		}
	})

	// acmemail cannot reach DNS: the signature is there but cannot be
	// verified, and the fix says where to look.
	t.Run("no-dns", func(t *testing.T) {
		res, c := doctor(t, "--password-file", r.password(email), "--dns-resolver", deadResolver(t), "--mail-timeout", "1m")
		if res.code != exitError {
			t.Fatalf("exit status %d, want %d; stderr:\n%s", res.code, exitError, res.stderr)
		}
		if d := c["dkim"]; d.Status != "fail" || !strings.Contains(d.Fix, "DNS") {
			t.Errorf("dkim = %+v, want a DNS failure", d)
		}
	})

	t.Run("wrong-password", func(t *testing.T) {
		res, c := doctor(t, "--password-file", r.password("wrong"))
		if res.code != exitError {
			t.Fatalf("exit status %d, want %d; stderr:\n%s", res.code, exitError, res.stderr)
		}
		for _, name := range []string{"imap-login", "smtp-login"} {
			if c[name].Status != "fail" || !strings.Contains(c[name].Fix, "app password") {
				t.Errorf("%s = %+v, want a login failure", name, c[name])
			}
		}
		if c["dkim"].Status != "skip" {
			t.Errorf("dkim = %+v, want skip", c["dkim"])
		}
	})
}

// TestRealMailManual: the user's mail program shows carol the challenge,
// she pastes it into obtain --manual, sends the printed reply through
// Postfix (OpenDKIM signs it), confirms, and the certificate is issued.
func TestRealMailManual(t *testing.T) {
	r := loadRealWorld(t)
	r.startSandbox(t)
	const email = "carol@example.com"
	m := r.newMUA(t, email)
	home := t.TempDir()
	b := r.startBinary(t, home, "obtain", "-v", "--manual", "--server", r.dirURL, "--agree-tos", "--json",
		"--dns-resolver", r.env["DNS"], "--timeout", "2m", email)
	b.waitLine(t, "paste it here")
	io.WriteString(b.stdin, string(m.challenge(t))+".\n")
	reply := b.waitReply(t)
	m.send(t, reply)
	io.WriteString(b.stdin, "\n")
	res := b.wait(t)
	r.checkIssued(t, res, email)
}

// TestRealMailRespond: obtain --pipe waits; the mail as an MDA pipes it
// goes to acmemail respond, which sends the reply through Postfix.
func TestRealMailRespond(t *testing.T) {
	r := loadRealWorld(t)
	r.startSandbox(t)
	const email = "bob@example.com"
	m := r.newMUA(t, email)
	home := t.TempDir()
	b := r.startBinary(t, home, "obtain", "-v", "--pipe", "--server", r.dirURL, "--agree-tos", "--json",
		"--dns-resolver", r.env["DNS"], "--timeout", "2m", email)
	raw := m.challenge(t)
	res := r.runBinary(t, home, raw, "respond", "-vv", "--smtp", r.env["SMTP"], "--password-file", r.password(email))
	if res.code != 0 {
		t.Fatalf("respond: exit status %d; stderr:\n%s\nobtain:\n%s", res.code, res.stderr, b.stderrText())
	}
	pw, _ := secret.ReadFile(r.password(email))
	if strings.Contains(res.stderr+res.stdout, pw) {
		t.Error("respond -vv shows the password")
	}
	r.checkIssued(t, b.wait(t), email)
	r.checkMailTrail(t, email)
}
