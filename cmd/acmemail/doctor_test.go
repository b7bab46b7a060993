package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

func doctorArgs(w *sandbox.World, extra ...string) []string {
	args := []string{"doctor", "--server", w.DirectoryURL, "--imap", w.IMAPURL, "--smtp", w.SMTPURL,
		"--dns-resolver", w.DNSAddr, "--json"}
	return append(append(args, extra...), "alice@example.test")
}

func doctorChecks(t *testing.T, r cliResult) map[string]doctorCheck {
	t.Helper()
	var checks []doctorCheck
	if err := json.Unmarshal([]byte(r.stdout), &checks); err != nil {
		t.Fatalf("stdout is not a JSON array of checks: %v\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	byName := map[string]doctorCheck{}
	var names []string
	for _, c := range checks {
		byName[c.Name] = c
		names = append(names, c.Name)
		if c.OK != (c.Status == "pass" || c.Status == "warn") {
			t.Errorf("check %s: ok=%v with status %q", c.Name, c.OK, c.Status)
		}
		if c.Status == "fail" && c.Fix == "" {
			t.Errorf("check %s failed without a fix", c.Name)
		}
	}
	if got, want := strings.Join(names, " "), "imap-login imap-idle smtp-login dkim ca-directory ca-email"; got != want {
		t.Errorf("checks = %s, want %s", got, want)
	}
	return byName
}

// TestDoctorExternalSandbox runs doctor against a sandbox reached by URL,
// as a real account is: every check but ca-email passes (a CA unknown by
// name cannot be told to support email identifiers from its directory).
func TestDoctorExternalSandbox(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	r := runCLI(t, env, doctorArgs(w, "-vv")...)
	if r.code != 0 {
		t.Fatalf("doctor exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	c := doctorChecks(t, r)
	for _, name := range []string{"imap-login", "imap-idle", "smtp-login", "dkim", "ca-directory"} {
		if c[name].Status != "pass" {
			t.Errorf("%s: %+v, want pass", name, c[name])
		}
	}
	if c["ca-email"].Status != "warn" || !strings.Contains(c["ca-email"].Detail, "does not say which identifier types") {
		t.Errorf("ca-email: %+v, want a warning that the directory cannot tell", c["ca-email"])
	}
	if !strings.Contains(c["dkim"].Detail, "d=example.test") || !strings.Contains(c["dkim"].Detail, "the test message was deleted") {
		t.Errorf("dkim detail = %q", c["dkim"].Detail)
	}
	// The test message went through the submission server, arrived, and
	// was removed from the mailbox again (it stays in the sandbox's log).
	st := w.Stats()
	if st.MessagesSubmitted != 1 || st.MessagesDelivered != 1 || st.Orders != 0 || st.Accounts != 0 {
		t.Errorf("sandbox stats %+v: want 1 message submitted and delivered, no account, no order", st)
	}
	if msgs := w.Inbox("alice@example.test"); len(msgs) != 1 || !strings.Contains(string(msgs[0]), "Subject: acmemail doctor: DKIM test") {
		t.Errorf("delivered messages = %d, want the one test message", len(msgs))
	}
	if strings.Contains(r.stdout+r.stderr, "alice-secret-pw") {
		t.Errorf("the mail password appears in the output")
	}
	if !strings.Contains(r.stderr, "level=DEBUG") {
		t.Errorf("doctor -vv logged nothing at debug level:\n%s", r.stderr)
	}
	// A warning is not "all checks passed".
	if strings.Contains(r.stderr, "all checks passed") || !strings.Contains(r.stderr, "no check failed for alice@example.test; 1 warned (ca-email): see their fix lines") {
		t.Errorf("stderr does not end with the warning count:\n%s", r.stderr)
	}
}

// TestDoctorNoDKIM: a submission server that does not sign makes only the
// dkim check fail, with exit status 1.
func TestDoctorNoDKIM(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{NoDKIMSign: true})
	r := runCLI(t, env, doctorArgs(w)...)
	if r.code != exitError {
		t.Fatalf("doctor exit %d, want %d\nstderr:\n%s", r.code, exitError, r.stderr)
	}
	c := doctorChecks(t, r)
	if d := c["dkim"]; d.Status != "fail" || !strings.Contains(d.Detail, "no DKIM signature") || !strings.Contains(d.Fix, "does not DKIM-sign") {
		t.Errorf("dkim = %+v, want a failure for the missing signature", d)
	}
	for _, name := range []string{"imap-login", "smtp-login", "ca-directory"} {
		if c[name].Status != "pass" {
			t.Errorf("%s: %+v, want pass", name, c[name])
		}
	}
	if !strings.Contains(r.stderr, "1 of 6 checks failed: dkim") {
		t.Errorf("stderr lacks the summary:\n%s", r.stderr)
	}
}

// TestDoctorWrongPassword: both logins fail with a fix, the dkim check is
// skipped, the CA is still checked, and the password shows nowhere.
func TestDoctorWrongPassword(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	env["ACMEMAIL_PASSWORD"] = "wrong-password-123"
	r := runCLI(t, env, doctorArgs(w)...)
	if r.code != exitError {
		t.Fatalf("doctor exit %d, want %d\nstderr:\n%s", r.code, exitError, r.stderr)
	}
	c := doctorChecks(t, r)
	for _, name := range []string{"imap-login", "smtp-login"} {
		if c[name].Status != "fail" || !strings.Contains(c[name].Fix, "app password") {
			t.Errorf("%s = %+v, want a failure with the password fix", name, c[name])
		}
	}
	if c["imap-idle"].Status != "skip" || c["dkim"].Status != "skip" {
		t.Errorf("imap-idle %q, dkim %q: want both skipped", c["imap-idle"].Status, c["dkim"].Status)
	}
	if c["ca-directory"].Status != "pass" {
		t.Errorf("ca-directory = %+v, want pass", c["ca-directory"])
	}
	if strings.Contains(r.stdout+r.stderr, "wrong-password-123") {
		t.Errorf("the password appears in the output")
	}
	if st := w.Stats(); st.MessagesSubmitted != 0 {
		t.Errorf("a message was submitted without a login")
	}
}

// TestDoctorUnreachableCA: a directory URL that does not answer fails
// ca-directory and skips ca-email.
func TestDoctorUnreachableCA(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	args := doctorArgs(w)
	args[2] = strings.Replace(w.DirectoryURL, "/acme/directory", "/no/such/directory", 1)
	r := runCLI(t, env, args...)
	if r.code != exitError {
		t.Fatalf("doctor exit %d, want %d\nstderr:\n%s", r.code, exitError, r.stderr)
	}
	c := doctorChecks(t, r)
	if d := c["ca-directory"]; d.Status != "fail" || !strings.Contains(d.Detail, "HTTP 404") || !strings.Contains(d.Fix, "--server") {
		t.Errorf("ca-directory = %+v, want a 404 failure", d)
	}
	if c["ca-email"].Status != "skip" {
		t.Errorf("ca-email = %+v, want skip", c["ca-email"])
	}
}

// TestDoctorMessageDoesNotArrive: watching a folder the test message
// never reaches fails dkim with the spam-folder fix.
func TestDoctorMessageDoesNotArrive(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	r := runCLI(t, env, doctorArgs(w, "--mailbox", "Junk", "--mail-timeout", "300ms")...)
	if r.code != exitError {
		t.Fatalf("doctor exit %d, want %d\nstderr:\n%s", r.code, exitError, r.stderr)
	}
	c := doctorChecks(t, r)
	if d := c["dkim"]; d.Status != "fail" || !strings.Contains(d.Detail, "did not arrive in Junk within 300ms") || !strings.Contains(d.Fix, "spam folder") {
		t.Errorf("dkim = %+v, want a failure because nothing arrived", d)
	}
}

// TestDoctorTimeout: --timeout shorter than the wait for the test message
// ends doctor with the checks done so far and a clear error.
func TestDoctorTimeout(t *testing.T) {
	// Not parallel: the run up to the wait must fit in --timeout 2s, which
	// a machine busy with the parallel tests may not give it.
	w, env := world(t, sandbox.Options{})
	r := runCLI(t, env, doctorArgs(w, "--mailbox", "Junk", "--timeout", "2s")...)
	if r.code != exitError {
		t.Fatalf("doctor exit %d, want %d\nstderr:\n%s", r.code, exitError, r.stderr)
	}
	for _, want := range []string{"doctor did not finish within --timeout 2s", "imap-login", "hint: a server that does not answer"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}
