//go:build realmail

// The real-mail end-to-end tests: acmemail and the sandbox CA, both as
// separate processes of the built binary, against real Postfix, Dovecot,
// OpenDKIM and dnsmasq instances that .ci/realmail.sh sets up on 127.0.0.1
// and describes in the file named by ACMEMAIL_REALMAIL. Run them with
//
//	sudo .ci/realmail.sh
//
// They are behind the realmail build tag so that `go test ./...` never
// reports them as skipped: the script decides whether they can run.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// realWorld is the mail world of .ci/realmail.sh plus one sandbox CA
// process using it.
type realWorld struct {
	env       map[string]string
	dirURL    string // the sandbox CA's ACME directory
	roots     string // PEM file: the sandbox's HTTPS root and the mail servers' root
	issuer    *x509.CertPool
	sandboxMu sync.Mutex
	sandboxLg bytes.Buffer // the sandbox's stderr
}

func loadRealWorld(t *testing.T) *realWorld {
	t.Helper()
	path := os.Getenv("ACMEMAIL_REALMAIL")
	if path == "" {
		t.Fatal("ACMEMAIL_REALMAIL is not set: these tests run from .ci/realmail.sh, which sets up Postfix, Dovecot and OpenDKIM (run it as root)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read ACMEMAIL_REALMAIL: %v", err)
	}
	r := &realWorld{env: map[string]string{}}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			r.env[k] = v
		}
	}
	for _, k := range []string{"ACMEMAIL", "ROOTS", "IMAP", "IMAPS", "SMTP", "MX", "DNS", "AUTHSERV_ID", "CA_ADDRESS", "SECRETS", "MAILDIR"} {
		if r.env[k] == "" {
			t.Fatalf("%s has no %s=", path, k)
		}
	}
	return r
}

func (r *realWorld) password(addr string) string {
	return filepath.Join(r.env["SECRETS"], addr+".password")
}

// syncWriter lets a subprocess's output and the test read one buffer.
type syncWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// startSandbox runs `acmemail sandbox` with external mail: challenges go
// out through Postfix submission as the CA's address, replies are read
// from the CA's Dovecot mailbox (implicit TLS, while acmemail obtain uses
// STARTTLS), their DKIM keys are looked up in dnsmasq.
func (r *realWorld) startSandbox(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, r.env["ACMEMAIL"], "sandbox", "-v", "--dir", dir,
		"--mail-address", r.env["CA_ADDRESS"], "--mail-imap", r.env["IMAPS"], "--mail-smtp", r.env["SMTP"],
		"--mail-password-file", r.password(r.env["CA_ADDRESS"]), "--dns-resolver", r.env["DNS"])
	cmd.Env = append(os.Environ(), "ACMEMAIL_CA_ROOTS="+r.env["ROOTS"])
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Stderr = syncWriter{&r.sandboxMu, &r.sandboxLg}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the sandbox: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := cmd.Wait(); err != nil && ctx.Err() == nil {
			t.Errorf("the sandbox exited: %v", err)
		}
		if t.Failed() {
			t.Logf("sandbox stderr:\n%s", r.sandboxLog())
		}
	})
	// It prints its addresses once it is logged in to IMAP and SMTP.
	got := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 {
			got[f[0]] = f[1]
		}
		if got["directory"] != "" && got["roots"] != "" {
			break
		}
	}
	go func() { // keep draining
		for sc.Scan() {
		}
	}()
	if got["directory"] == "" || got["roots"] == "" {
		t.Fatalf("the sandbox printed no directory and roots lines; stderr:\n%s", r.sandboxLog())
	}
	if got["ca-address"] != r.env["CA_ADDRESS"] {
		t.Errorf("the sandbox says ca-address %q, want %q", got["ca-address"], r.env["CA_ADDRESS"])
	}
	r.dirURL = got["directory"]
	sandboxRoots, err := os.ReadFile(got["roots"])
	if err != nil {
		t.Fatal(err)
	}
	mailRoots, err := os.ReadFile(r.env["ROOTS"])
	if err != nil {
		t.Fatal(err)
	}
	r.roots = filepath.Join(dir, "all-roots.pem")
	if err := os.WriteFile(r.roots, append(sandboxRoots, mailRoots...), 0o644); err != nil {
		t.Fatal(err)
	}
	issuerPEM, err := os.ReadFile(filepath.Join(dir, "issuer-root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	r.issuer = x509.NewCertPool()
	if !r.issuer.AppendCertsFromPEM(issuerPEM) {
		t.Fatal("issuer-root.pem holds no certificate")
	}
}

func (r *realWorld) sandboxLog() string {
	r.sandboxMu.Lock()
	defer r.sandboxMu.Unlock()
	return r.sandboxLg.String()
}

type runResult struct {
	stdout, stderr string
	code           int
}

// obtain runs `acmemail obtain` against the sandbox CA and the real mail
// servers with its own state directory home.
func (r *realWorld) obtain(t *testing.T, home, email string, extra ...string) runResult {
	t.Helper()
	args := append([]string{"obtain", "-v", "--server", r.dirURL, "--agree-tos",
		"--imap", r.env["IMAP"], "--smtp", r.env["SMTP"], "--timeout", "2m"}, extra...)
	return r.runBinary(t, home, nil, append(args, email)...)
}

// maildirMessages returns the messages in the Maildir of addr.
func (r *realWorld) maildirMessages(t *testing.T, addr string) [][]byte {
	t.Helper()
	local, domain, _ := strings.Cut(addr, "@")
	var msgs [][]byte
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(r.env["MAILDIR"], domain, local, sub)
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, b)
		}
	}
	return msgs
}

// findMail returns the first message of addr's Maildir whose header
// matches all the patterns.
func (r *realWorld) findMail(t *testing.T, addr string, patterns ...string) []byte {
	t.Helper()
outer:
	for _, m := range r.maildirMessages(t, addr) {
		hdr, _, _ := bytes.Cut(m, []byte("\n\n"))
		unfolded := regexp.MustCompile(`\r?\n[ \t]+`).ReplaceAll(hdr, []byte(" "))
		for _, p := range patterns {
			if !regexp.MustCompile(p).Match(unfolded) {
				continue outer
			}
		}
		return m
	}
	t.Errorf("no mail in the Maildir of %s matches all of %q", addr, patterns)
	return nil
}

type obtainJSON struct {
	Email, PKCS12, Certificate, Chain, Key string
}

// checkIssued checks the JSON result and the certificate on disk.
func (r *realWorld) checkIssued(t *testing.T, res runResult, email string) {
	t.Helper()
	if res.code != 0 {
		t.Fatalf("acmemail obtain %s: exit status %d, want 0; stderr:\n%s", email, res.code, res.stderr)
	}
	var out obtainJSON
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatalf("stdout is not the JSON result: %v\n%s", err, res.stdout)
	}
	if out.Email != email {
		t.Errorf("JSON email = %q, want %q", out.Email, email)
	}
	chainPEM, err := os.ReadFile(out.Chain)
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("chain.pem holds %d certificates, want leaf and intermediate", len(certs))
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: r.issuer, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
		t.Errorf("the certificate does not verify to the sandbox's issuer root: %v", err)
	}
	if len(certs[0].EmailAddresses) != 1 || certs[0].EmailAddresses[0] != email {
		t.Errorf("certificate rfc822Names = %q, want [%s]", certs[0].EmailAddresses, email)
	}
	if fi, err := os.Stat(out.PKCS12); err != nil || fi.Size() == 0 {
		t.Errorf("PKCS#12 file %s: %v", out.PKCS12, err)
	}
}

// checkMailTrail checks that the real servers carried both mails: the
// challenge in the user's Maildir signed by OpenDKIM for the CA's domain
// and verified by the MX, the reply in the CA's Maildir signed for the
// user's domain and verified too.
func (r *realWorld) checkMailTrail(t *testing.T, email string) {
	t.Helper()
	caDomain := r.env["CA_ADDRESS"][strings.IndexByte(r.env["CA_ADDRESS"], '@')+1:]
	userDomain := email[strings.IndexByte(email, '@')+1:]
	id := regexp.QuoteMeta(r.env["AUTHSERV_ID"])
	r.findMail(t, email,
		`(?m)^Subject: ACME: `,
		`(?m)^DKIM-Signature: .*d=`+regexp.QuoteMeta(caDomain)+`;.*s=realmail;`,
		`(?m)^Authentication-Results: `+id+`;.*dkim=pass .*header\.d=`+regexp.QuoteMeta(caDomain))
	r.findMail(t, r.env["CA_ADDRESS"],
		`(?m)^From: `+regexp.QuoteMeta(email),
		`(?m)^Subject: Re: ACME: `,
		`(?m)^DKIM-Signature: .*d=`+regexp.QuoteMeta(userDomain)+`;.*s=realmail;`,
		`(?m)^Authentication-Results: `+id+`;.*dkim=pass .*header\.d=`+regexp.QuoteMeta(userDomain))
}

// stateFiles lists the regular files under home, relative to it.
func stateFiles(t *testing.T, home string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == home {
				return filepath.SkipDir
			}
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(home, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// checkNothingHalfWritten fails on temporary files, certificates, and
// PEM or JSON files that do not parse whole, under home; it returns the
// files there.
func checkNothingHalfWritten(t *testing.T, home string) []string {
	t.Helper()
	files := stateFiles(t, home)
	for _, f := range files {
		base := filepath.Base(f)
		data, err := os.ReadFile(filepath.Join(home, f))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.Contains(base, ".tmp"):
			t.Errorf("state directory holds the temporary file %s", f)
		case base == "chain.pem" || base == "cert.p12" || base == "key.pem":
			t.Errorf("state directory holds %s, but no certificate was issued", f)
		case strings.HasSuffix(base, ".pem"):
			if b, rest := pem.Decode(data); b == nil || len(bytes.TrimSpace(rest)) != 0 {
				t.Errorf("%s is not one whole PEM block", f)
			}
		case strings.HasSuffix(base, ".json"):
			if !json.Valid(data) {
				t.Errorf("%s is not valid JSON", f)
			}
		}
	}
	return files
}

// deadResolver returns a loopback address where nothing answers DNS.
func deadResolver(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

func TestRealMail(t *testing.T) {
	r := loadRealWorld(t)
	r.startSandbox(t)

	// The challenge's DKIM signature (OpenDKIM, d=ca.example.net) is
	// verified by acmemail with the key from DNS; the sandbox CA verifies
	// the reply's (d=example.com) the same way.
	t.Run("dkim-through-dns", func(t *testing.T) {
		const email = "alice@example.com"
		home := t.TempDir()
		res := r.obtain(t, home, email, "--json", "--password-file", r.password(email), "--dns-resolver", r.env["DNS"])
		r.checkIssued(t, res, email)
		r.checkMailTrail(t, email)
		if !strings.Contains(res.stderr, "idle=true") {
			t.Errorf("acmemail did not watch the mailbox with IDLE; stderr:\n%s", res.stderr)
		}
		if !regexp.MustCompile(`component=ca-imap .*idle=true`).MatchString(r.sandboxLog()) {
			t.Errorf("the sandbox CA did not watch its mailbox with IDLE; stderr:\n%s", r.sandboxLog())
		}
		if strings.Contains(res.stderr, "Authentication-Results") {
			t.Errorf("acmemail mentions Authentication-Results without --trust-authserv-id; stderr:\n%s", res.stderr)
		}
	})

	// No DNS for acmemail (its resolver answers nothing): the
	// Authentication-Results of the user's own MX vouches for the
	// signature.
	t.Run("trust-authserv-id", func(t *testing.T) {
		const email = "bob@example.com"
		home := t.TempDir()
		res := r.obtain(t, home, email, "--json", "--password-file", r.password(email),
			"--dns-resolver", deadResolver(t), "--trust-authserv-id", r.env["AUTHSERV_ID"])
		r.checkIssued(t, res, email)
		r.checkMailTrail(t, email)
		if want := "accepted on the word of the Authentication-Results of " + r.env["AUTHSERV_ID"]; !strings.Contains(res.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, res.stderr)
		}
	})

	// What makes --trust-authserv-id safe: the MX removes an
	// Authentication-Results field that claims its authserv-id from
	// incoming mail, so only its own verdict arrives. OpenDKIM does so by
	// default (the world sets only AuthservID).
	t.Run("forged-authentication-results-removed", func(t *testing.T) {
		msgID := fmt.Sprintf("<forged-%d@evil.example.org>", time.Now().UnixNano())
		raw := "Authentication-Results: " + r.env["AUTHSERV_ID"] + "; dkim=pass header.d=ca.example.net\r\n" +
			"From: acme-challenge+forged@ca.example.net\r\nTo: alice@example.com\r\nSubject: ACME: forged\r\n" +
			"Message-ID: " + msgID + "\r\n\r\nforged\r\n"
		c, err := smtp.Dial(r.env["MX"]) // as a stranger on the Internet would: no TLS needed, no AUTH
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Mail("mallory@evil.example.org"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("alice@example.com"); err != nil {
			t.Fatal(err)
		}
		wc, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(wc, raw); err != nil {
			t.Fatal(err)
		}
		if err := wc.Close(); err != nil {
			t.Fatal(err)
		}
		c.Quit()
		// Delivery is asynchronous (queue manager, virtual(8)).
		var got []byte
		for deadline := time.Now().Add(time.Minute); got == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			for _, m := range r.maildirMessages(t, "alice@example.com") {
				if bytes.Contains(m, []byte(msgID)) {
					got = m
				}
			}
		}
		if got == nil {
			t.Fatal("the forged mail was not delivered within a minute")
		}
		hdr, _, _ := bytes.Cut(got, []byte("\n\n"))
		if bytes.Contains(hdr, []byte("dkim=pass header.d=ca.example.net")) {
			t.Errorf("the forged Authentication-Results reached the mailbox:\n%s", hdr)
		}
	})

	// Dovecot refuses the login: exit status 3, a clear message, and
	// nothing in the state directory.
	t.Run("wrong-password", func(t *testing.T) {
		home := t.TempDir()
		res := r.obtain(t, home, "alice@example.com", "--password-file", filepath.Join(r.env["SECRETS"], "wrong.password"))
		if res.code != exitMailAuth {
			t.Errorf("exit status %d, want %d; stderr:\n%s", res.code, exitMailAuth, res.stderr)
		}
		for _, want := range []string{"authentication failed", "hint: check --user and the password"} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("stderr does not say %q:\n%s", want, res.stderr)
			}
		}
		// The CA was not contacted: no account, no record of a reply. A
		// key made in advance for the certificate may be there, whole.
		for _, f := range checkNothingHalfWritten(t, home) {
			if strings.HasPrefix(f, "accounts/") || strings.HasPrefix(f, "replies/") {
				t.Errorf("the state directory holds %s after a refused login", f)
			}
		}
		if strings.Contains(res.stderr, "not-the-password") {
			t.Error("stderr shows the password")
		}
	})

	// carol receives info@'s mail but Postfix does not let her send as
	// info@: the reply is refused at submission. A clear error, no
	// certificate, and nothing half-written.
	t.Run("sender-rejected", func(t *testing.T) {
		const email = "info@example.com"
		home := t.TempDir()
		res := r.obtain(t, home, email, "--user", "carol@example.com", "--password-file", r.password("carol@example.com"),
			"--dns-resolver", r.env["DNS"])
		if res.code == 0 {
			t.Fatalf("exit status 0, want a failure; stderr:\n%s", res.stderr)
		}
		for _, want := range []string{"Sender address rejected", "not owned by user carol@example.com", "hint: "} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("stderr does not say %q:\n%s", want, res.stderr)
			}
		}
		// What may be there: the account, the key for the next
		// certificate, the record that the challenge was answered, lock
		// files. No temporary file, no certificate, nothing cut short.
		files := checkNothingHalfWritten(t, home)
		if !slices.ContainsFunc(files, func(f string) bool { return strings.HasPrefix(f, "replies/") }) {
			t.Error("no record in replies/ that the challenge was answered (it must be written before the reply is sent)")
		}
		t.Logf("state directory after the refused reply: %q", files)
	})
}
