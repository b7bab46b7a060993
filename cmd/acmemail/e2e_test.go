package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// world starts a sandbox CA and mail world for one test, with a mailbox
// for alice@example.test, and returns it with the environment a CLI run
// needs to reach it.
func world(t *testing.T, opt sandbox.Options) (*sandbox.World, map[string]string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := sandbox.Start(ctx, opt)
	if err != nil {
		t.Fatalf("sandbox.Start: %v", err)
	}
	// Closed without waiting: the CLI's HTTP client, shared by the runs of
	// the test process, keeps its HTTP/2 connection to the CA, and the
	// world's graceful shutdown waits a second for it to go (GOAWAY)
	// before it closes it itself. Nothing of the test needs that second.
	t.Cleanup(func() { go w.Close() })
	if err := w.AddUser("alice@example.test", "alice-secret-pw"); err != nil {
		t.Fatalf("AddUser: %v", err)
	}
	dir := t.TempDir()
	roots := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(roots, w.TLSRootsPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"ACMEMAIL_HOME":         filepath.Join(dir, "home"),
		"ACMEMAIL_CA_ROOTS":     roots,
		"ACMEMAIL_PASSWORD":     "alice-secret-pw",
		"ACMEMAIL_P12_PASSWORD": "test",
	}
	return w, env
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, env map[string]string, args ...string) cliResult {
	t.Helper()
	return runCLICtx(t, context.Background(), env, args...)
}

// runCLICtx is runCLI with a context of the caller's (a test hook in it).
func runCLICtx(t *testing.T, parent context.Context, env map[string]string, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(parent, 60*time.Second)
	defer cancel()
	code := run(ctx, args, strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
	return cliResult{code, out.String(), errb.String()}
}

func obtainArgs(w *sandbox.World, extra ...string) []string {
	args := []string{"obtain", "--server", w.DirectoryURL, "--imap", w.IMAPURL, "--smtp", w.SMTPURL,
		"--dns-resolver", w.DNSAddr, "--reply-settle", "0", "--mail-wait", "2s", "--agree-tos"}
	return append(append(args, extra...), "alice@example.test")
}

// checkP12 opens the PKCS#12 file and checks the certificate in it.
func checkP12(t *testing.T, path, email string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the PKCS#12 file: %v", err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("PKCS#12 mode = %v, want 0600", fi.Mode().Perm())
	}
	_, leaf, chain, err := pkcs12.DecodeChain(data, "test")
	if err != nil {
		t.Fatalf("pkcs12.DecodeChain: %v", err)
	}
	if len(leaf.EmailAddresses) != 1 || leaf.EmailAddresses[0] != email {
		t.Errorf("SAN = %v, want [%s]", leaf.EmailAddresses, email)
	}
	if len(chain) == 0 {
		t.Errorf("the PKCS#12 file holds no CA certificates")
	}
	if _, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command("openssl", "pkcs12", "-info", "-nokeys", "-passin", "pass:test", "-in", path).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl pkcs12: %v\n%s", err, out)
		}
		cert, err := exec.Command("sh", "-c", "openssl pkcs12 -nokeys -clcerts -passin pass:test -in \"$1\" | openssl x509 -noout -ext subjectAltName,extendedKeyUsage", "sh", path).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl x509: %v\n%s", err, cert)
		}
		for _, want := range []string{"email:" + email, "E-mail Protection"} {
			if !strings.Contains(string(cert), want) {
				t.Errorf("openssl shows no %q in:\n%s", want, cert)
			}
		}
	}
}

// TestObtainImitations runs the whole flow against each imitation of a
// real RFC 8823 server that the sandbox offers.
func TestObtainImitations(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opt  sandbox.Options
		args []string
	}{
		{"mail-at-authz", sandbox.Options{MailTiming: sandbox.MailAtAuthorization}, nil},
		{"mail-after-post", sandbox.Options{MailTiming: sandbox.MailAfterChallenge}, []string{"--mail-wait", "200ms"}},
		{"token-22-octet", sandbox.Options{TokenLength: 22, Join: "octet"}, []string{"--join", "octet"}},
		{"token-32-string", sandbox.Options{TokenLength: 32, Join: "string", OmitAutoSubmitted: true, ValidationWindow: 2 * time.Second}, nil},
		{"token-43-string", sandbox.Options{TokenLength: 43, Join: "string"}, nil},
		{"token-43-octet", sandbox.Options{TokenLength: 43, Join: "octet"}, []string{"--join", "octet"}},
		{"auto-submitted-missing", sandbox.Options{OmitAutoSubmitted: true}, nil},
		{"p256-sign", sandbox.Options{}, []string{"--key-type", "p256", "--usage", "sign"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, env := world(t, tc.opt)
			r := runCLI(t, env, obtainArgs(w, append(tc.args, "--json")...)...)
			if r.code != 0 {
				t.Fatalf("obtain exit %d\nstderr:\n%s", r.code, r.stderr)
			}
			var res issuer.CertResult
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
			}
			checkP12(t, res.PKCS12, "alice@example.test")
			if !strings.Contains(r.stderr, "next: import "+res.PKCS12+" into your mail client") {
				t.Errorf("stderr does not say what to do with %s:\n%s", res.PKCS12, r.stderr)
			}
			st := w.Stats()
			if st.RepliesReceived != 1 || st.CertificatesIssued != 1 {
				t.Errorf("sandbox saw %d replies and issued %d certificates, want 1 and 1 (rejected: %v)", st.RepliesReceived, st.CertificatesIssued, st.RejectedReasons)
			}
			if tc.opt.OmitAutoSubmitted && !strings.Contains(r.stderr, "no Auto-Submitted header") {
				t.Errorf("no warning about the missing Auto-Submitted header:\n%s", r.stderr)
			}
			if strings.Contains(r.stderr+r.stdout, "alice-secret-pw") {
				t.Errorf("the mail password appears in the output")
			}
		})
	}
}

// TestObtainWrongJoin: with the wrong token join the CA refuses the reply;
// acmemail says so with the CA exit status, and answers only once.
func TestObtainWrongJoin(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{TokenLength: 22, Join: "octet"})
	r := runCLI(t, env, obtainArgs(w, "--join", "string")...)
	if r.code != exitCA {
		t.Fatalf("exit %d, want %d\nstderr:\n%s", r.code, exitCA, r.stderr)
	}
	if !strings.Contains(r.stderr, "--join octet") {
		t.Errorf("no hint about --join:\n%s", r.stderr)
	}
	if st := w.Stats(); st.RepliesReceived != 1 {
		t.Errorf("replies = %d, want 1", st.RepliesReceived)
	}
}

// TestObtainWrongPassword: a refused mail login gives exit status 3 before
// the CA is contacted.
func TestObtainWrongPassword(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	env["ACMEMAIL_PASSWORD"] = "wrong-password-123"
	r := runCLI(t, env, obtainArgs(w)...)
	if r.code != exitMailAuth {
		t.Fatalf("exit %d, want %d\nstderr:\n%s", r.code, exitMailAuth, r.stderr)
	}
	if strings.Contains(r.stderr, "wrong-password-123") {
		t.Errorf("the password appears in stderr:\n%s", r.stderr)
	}
	if st := w.Stats(); st.Orders != 0 {
		t.Errorf("orders = %d, want 0 (the CA must not be contacted)", st.Orders)
	}
}

// TestObtainInProcessSandbox is the README's first command.
func TestObtainInProcessSandbox(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ACMEMAIL_HOME": t.TempDir(), "ACMEMAIL_P12_PASSWORD": "test"}
	r := runCLI(t, env, "obtain", "--server", "sandbox", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	path := strings.TrimSpace(r.stdout)
	if !strings.HasSuffix(path, ".p12") {
		t.Fatalf("stdout = %q, want the path of a .p12 file", r.stdout)
	}
	checkP12(t, path, "alice@example.test")
}

// TestObtainHostile: the sandbox delivers forged challenge mails before the
// genuine one and a replay after it. The certificate is issued, exactly one
// reply was sent, and every forgery was reported as ignored with its reason.
func TestObtainHostile(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{Hostile: true})
	r := runCLI(t, env, obtainArgs(w)...)
	if r.code != 0 {
		t.Fatalf("obtain exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	st := w.Stats()
	if st.RepliesReceived != 1 || st.CertificatesIssued != 1 {
		t.Errorf("sandbox saw %d replies and issued %d certificates, want 1 and 1", st.RepliesReceived, st.CertificatesIssued)
	}
	// Each forgery, in delivery order, and the words its refusal must contain.
	want := []string{
		"no DKIM signature",
		"evil.sandbox.test, not by the From domain",
		"body hash mismatch",
		"is not the address the CA announced",
		"not addressed (To) to an address with a pending order",
		"reply",
		"l= body length",
		"From header",
		"no DKIM signature",
	}
	if len(want) != len(sandbox.Forgeries) {
		t.Fatalf("test knows %d forgeries, sandbox delivers %d", len(want), len(sandbox.Forgeries))
	}
	var ignored []string
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.Contains(line, "ignored a mail claiming to be the challenge for alice@example.test: ") {
			ignored = append(ignored, line)
		}
	}
	if len(ignored) < len(want) {
		t.Fatalf("%d mails reported as ignored, want at least %d:\n%s", len(ignored), len(want), r.stderr)
	}
	for i, w := range want {
		if !strings.Contains(ignored[i], w) {
			t.Errorf("forgery %d (%s): reported as %q, want a reason containing %q", i, sandbox.Forgeries[i], ignored[i], w)
		}
	}
}
