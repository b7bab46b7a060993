package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
)

func runCLIStdin(t *testing.T, env map[string]string, stdin []byte, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := run(ctx, args, bytes.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	return cliResult{code, out.String(), errb.String()}
}

func pipeArgs(w *sandbox.World) []string {
	return []string{"obtain", "--pipe", "--server", w.DirectoryURL, "--dns-resolver", w.DNSAddr,
		"--reply-settle", "0", "--agree-tos", "--json", "alice@example.test"}
}

// TestRespondSMTP: obtain --pipe waits; a mail filter runs acmemail
// respond with each mail on stdin. A forgery is refused with its reason
// (exit 4) and the wait goes on; the genuine challenge is answered through
// --smtp, and obtain finishes. A replay of the answered mail finds nobody
// waiting.
func TestRespondSMTP(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	obtain := startCLI(t, noMailEnv(env), pipeArgs(w)...)
	raw := challengeMail(t, w, 1)

	forged := bytes.Replace(raw, []byte("Subject: ACME: "), []byte("Subject: ACME: x"), 1)
	r := runCLIStdin(t, env, forged, "respond", "--smtp", w.SMTPURL)
	if r.code != exitMailTimeout {
		t.Fatalf("respond with a forged mail: exit %d, want %d\nstderr:\n%s", r.code, exitMailTimeout, r.stderr)
	}
	if !strings.Contains(r.stderr, "the mail was not answered: ignored a mail claiming to be the challenge for alice@example.test: ") {
		t.Errorf("respond does not say why it refused the forgery:\n%s", r.stderr)
	}
	r = runCLIStdin(t, env, []byte("Subject: hello\r\n\r\nhi\r\n"), "respond", "--smtp", w.SMTPURL)
	if r.code != exitMailTimeout || !strings.Contains(r.stderr, "not a challenge mail") {
		t.Errorf("respond with a plain mail: exit %d\n%s", r.code, r.stderr)
	}

	// A refused login fails before the mail is handed over: the challenge
	// is not spent, and the next respond answers it.
	r = runCLIStdin(t, noMailEnv(env), raw, "respond", "--smtp", w.SMTPURL, "--password-command", "echo not-the-password")
	if r.code != exitMailAuth {
		t.Fatalf("respond with a wrong password: exit %d, want %d\nstderr:\n%s", r.code, exitMailAuth, r.stderr)
	}

	r = runCLIStdin(t, noMailEnv(env), raw, "respond", "-vv", "--smtp", w.SMTPURL, "--password-command", "echo alice-secret-pw")
	if r.code != 0 {
		t.Fatalf("respond: exit %d\nstderr:\n%s\nobtain:\n%s", r.code, r.stderr, obtain.stderr.String())
	}
	if r.stdout != "" {
		t.Errorf("respond --smtp printed on stdout: %q", r.stdout)
	}
	answered := r
	if code := obtain.wait(t); code != 0 {
		t.Fatalf("obtain --pipe exit %d\nstderr:\n%s", code, obtain.stderr.String())
	}
	var res issuer.CertResult
	if err := json.Unmarshal([]byte(obtain.stdout.String()), &res); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, obtain.stdout.String())
	}
	checkP12(t, res.PKCS12, "alice@example.test")
	// Handed over: the forgery and the genuine mail; not the plain mail
	// (refused by respond's side of the socket) nor the one whose login
	// failed.
	if n := strings.Count(obtain.stderr.String(), "acmemail respond handed over a mail"); n != 2 {
		t.Errorf("%d mails were handed over, want 2:\n%s", n, obtain.stderr.String())
	}
	st := w.Stats()
	if st.RepliesReceived != 1 || st.CertificatesIssued != 1 {
		t.Errorf("sandbox saw %d replies and issued %d certificates, want 1 and 1", st.RepliesReceived, st.CertificatesIssued)
	}

	r = runCLIStdin(t, env, raw, "respond", "--smtp", w.SMTPURL)
	if r.code != exitMailTimeout || !strings.Contains(r.stderr, "no acmemail obtain --pipe is waiting for alice@example.test") {
		t.Errorf("replayed mail: exit %d, want %d\n%s", r.code, exitMailTimeout, r.stderr)
	}
	if strings.Contains(answered.stdout+answered.stderr+r.stderr+obtain.stderr.String(), "alice-secret-pw") {
		t.Errorf("the mail password appears in the output")
	}
	if !strings.Contains(answered.stderr, "level=DEBUG") {
		t.Errorf("respond -vv logged nothing at debug level:\n%s", answered.stderr)
	}
}

// TestRespondPrint: respond --print writes the reply to stdout (here the
// test submits it, as sendmail would), and a second, replayed copy of the
// challenge handed to a new waiting obtain is refused.
func TestRespondPrint(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	obtain := startCLI(t, noMailEnv(env), pipeArgs(w)...)
	raw := challengeMail(t, w, 1)
	r := runCLIStdin(t, noMailEnv(env), raw, "respond", "--print", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("respond --print: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"From: alice@example.test\n", "Subject: Re: ACME: ", "\n-----BEGIN ACME RESPONSE-----\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("printed reply lacks %q:\n%s", want, r.stdout)
		}
	}
	submitAsAlice(t, w, r.stdout)
	if code := obtain.wait(t); code != 0 {
		t.Fatalf("obtain --pipe exit %d\nstderr:\n%s", code, obtain.stderr.String())
	}

	// A new order waits; the old challenge mail is handed to it.
	obtain2 := startCLI(t, noMailEnv(env), append([]string{"obtain", "--force"}, pipeArgs(w)[1:]...)...)
	raw2 := challengeMail(t, w, 2)
	r = runCLIStdin(t, noMailEnv(env), raw, "respond", "--print")
	if r.code != exitMailTimeout || r.stdout != "" {
		t.Fatalf("replayed challenge: exit %d, stdout %q\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	r = runCLIStdin(t, noMailEnv(env), raw2, "respond", "--print")
	if r.code != 0 {
		t.Fatalf("respond --print to the second order: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	submitAsAlice(t, w, r.stdout)
	if code := obtain2.wait(t); code != 0 {
		t.Fatalf("second obtain --pipe exit %d\nstderr:\n%s", code, obtain2.stderr.String())
	}
	if st := w.Stats(); st.RepliesReceived != 2 || st.CertificatesIssued != 2 {
		t.Errorf("sandbox saw %d replies and issued %d certificates, want 2 and 2", st.RepliesReceived, st.CertificatesIssued)
	}
}

// TestRespondUsage: respond needs --smtp or --print, and refuses before
// reading anything; --print wins over --smtp (which may come from the
// configuration file).
func TestRespondUsage(t *testing.T) {
	r := runCLIStdin(t, map[string]string{"ACMEMAIL_HOME": t.TempDir()}, nil, "respond")
	if r.code != exitUsage || !strings.Contains(r.stderr, "give either --smtp URL") {
		t.Errorf("respond: exit %d\n%s", r.code, r.stderr)
	}
	r = runCLIStdin(t, map[string]string{"ACMEMAIL_HOME": t.TempDir()}, []byte("From: ca@example.net\r\nSubject: ACME: "+strings.Repeat("A", 22)+"\r\nTo: alice@example.test\r\n\r\n"),
		"respond", "--print", "--smtp", "smtps://127.0.0.1:1")
	if r.code != exitMailTimeout || !strings.Contains(r.stderr, "no acmemail obtain --pipe is waiting for alice@example.test") {
		t.Errorf("respond --print --smtp: exit %d\n%s", r.code, r.stderr)
	}
}

// padMail returns raw with a header field prepended, as a mail filter's
// spam report would be, so that it is size bytes long. The DKIM signature
// does not cover the field, so the mail stays genuine.
func padMail(raw []byte, size int) []byte {
	var b bytes.Buffer
	b.WriteString("X-Spam-Report: filter report\r\n")
	for r := size - len(raw) - b.Len(); r > 0; {
		n := min(r, 79)
		if r-n > 0 && r-n < 4 {
			n = r - 4
		}
		b.WriteString(" " + strings.Repeat("x", n-3) + "\r\n")
		r -= n
	}
	b.Write(raw)
	return b.Bytes()
}

// TestRespondLargeMail: a genuine challenge of about 50 KB (a filter's
// report headers, a Received chain) goes through the pipe like a small
// one.
func TestRespondLargeMail(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	obtain := startCLI(t, noMailEnv(env), pipeArgs(w)...)
	raw := padMail(challengeMail(t, w, 1), 50_058)
	if len(raw) != 50_058 {
		t.Fatalf("padded mail is %d bytes", len(raw))
	}
	r := runCLIStdin(t, noMailEnv(env), raw, "respond", "--print", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("respond --print of a %d-byte challenge: exit %d\nstderr:\n%s\nobtain:\n%s", len(raw), r.code, r.stderr, obtain.stderr.String())
	}
	submitAsAlice(t, w, r.stdout)
	if code := obtain.wait(t); code != 0 {
		t.Fatalf("obtain --pipe exit %d\nstderr:\n%s", code, obtain.stderr.String())
	}
}

// dialPipe connects to the socket obtain --pipe listens on for alice, as
// a local client that is not acmemail respond would.
func dialPipe(t *testing.T, env map[string]string) net.Conn {
	t.Helper()
	path, err := issuer.PipeSocketPath(env["ACMEMAIL_HOME"], "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		t.Fatalf("connect to obtain --pipe: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestPipeSilentPeer: a local client that connects and sends nothing
// does not keep obtain --pipe from answering a genuine respond at once.
func TestPipeSilentPeer(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	obtain := startCLI(t, noMailEnv(env), pipeArgs(w)...)
	raw := challengeMail(t, w, 1)
	silent := dialPipe(t, env)
	time.Sleep(200 * time.Millisecond) // let obtain take up the silent connection first
	r := runCLIStdin(t, noMailEnv(env), raw, "respond", "--print", "--timeout", "15s", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("respond --print behind a silent client: exit %d\nstderr:\n%s\nobtain:\n%s", r.code, r.stderr, obtain.stderr.String())
	}
	submitAsAlice(t, w, r.stdout)
	if code := obtain.wait(t); code != 0 {
		t.Fatalf("obtain --pipe exit %d\nstderr:\n%s", code, obtain.stderr.String())
	}
	silent.Close()
}

// handOverAndLeave hands raw to obtain --pipe over the socket's protocol
// and disconnects: at once, or (afterVerdict) once the verdict is read.
func handOverAndLeave(t *testing.T, env map[string]string, raw []byte, afterVerdict bool) string {
	t.Helper()
	c := dialPipe(t, env)
	line, err := json.Marshal(map[string][]byte{"mail": raw})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(append(line, '\n')); err != nil {
		t.Fatalf("hand over the mail: %v", err)
	}
	verdict := ""
	if afterVerdict {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		var v struct{ Verdict string }
		if err := json.NewDecoder(c).Decode(&v); err != nil {
			t.Fatalf("read the verdict: %v", err)
		}
		verdict = v.Verdict
	}
	c.Close()
	return verdict
}

// replyRecords lists the records of claimed challenges and mails.
func replyRecords(t *testing.T, env map[string]string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(env["ACMEMAIL_HOME"], "replies"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestPipePeerGone: a client that hands over the genuine challenge and
// disconnects before the verdict gets nothing claimed or sent: obtain
// either goes on waiting (then a respond with the same mail answers it)
// or stops without having spent the challenge (then the next run orders
// anew and answers the new challenge).
func TestPipePeerGone(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	obtain := startCLI(t, noMailEnv(env), pipeArgs(w)...)
	raw := challengeMail(t, w, 1)
	handOverAndLeave(t, env, raw, false)

	var code int
	stopped := false
	select {
	case code = <-obtain.done:
		stopped = true
	case <-time.After(2 * time.Second):
	}
	if recs := replyRecords(t, env); len(recs) != 0 {
		t.Fatalf("a challenge or mail was recorded as answered for a client that left: %v\nobtain:\n%s", recs, obtain.stderr.String())
	}
	if st := w.Stats(); st.RepliesReceived != 0 {
		t.Fatalf("the CA got %d replies", st.RepliesReceived)
	}
	if stopped {
		line := obtain.waitLine(t, "the challenge was not answered")
		if code == 0 || !strings.Contains(line, "acmemail respond left before its mail was answered") {
			t.Fatalf("obtain --pipe stopped with exit %d:\n%s", code, obtain.stderr.String())
		}
		obtain = startCLI(t, noMailEnv(env), pipeArgs(w)...)
		raw = challengeMail(t, w, 2)
	}
	r := runCLIStdin(t, noMailEnv(env), raw, "respond", "--print", "--timeout", "15s", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("respond after a client that left: exit %d\nstderr:\n%s\nobtain:\n%s", r.code, r.stderr, obtain.stderr.String())
	}
	submitAsAlice(t, w, r.stdout)
	if code := obtain.wait(t); code != 0 {
		t.Fatalf("obtain --pipe exit %d\nstderr:\n%s", code, obtain.stderr.String())
	}
	if st := w.Stats(); st.RepliesReceived != 1 || st.CertificatesIssued != 1 {
		t.Errorf("sandbox saw %d replies and issued %d certificates, want 1 and 1", st.RepliesReceived, st.CertificatesIssued)
	}
}

// TestPipePeerGoneAfterVerdict: a client that takes the reply and
// disconnects without confirming that it sent it leaves the challenge
// claimed (the reply may be out) but not validated: obtain stops, and
// never asks the CA to check a reply nobody confirmed.
func TestPipePeerGoneAfterVerdict(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	obtain := startCLI(t, noMailEnv(env), pipeArgs(w)...)
	raw := challengeMail(t, w, 1)
	if v := handOverAndLeave(t, env, raw, true); v != "accepted" {
		t.Fatalf("verdict %q, want accepted\nobtain:\n%s", v, obtain.stderr.String())
	}
	if code := obtain.wait(t); code == 0 {
		t.Fatalf("obtain --pipe succeeded although nobody confirmed the reply:\n%s", obtain.stderr.String())
	}
	obtain.waitLine(t, "did not confirm that it sent the reply")
	if out := obtain.stderr.String(); strings.Contains(out, "asking the CA to validate") {
		t.Errorf("obtain --pipe asked the CA to validate an unconfirmed reply:\n%s", out)
	}
	if st := w.Stats(); st.ChallengesValid+st.ChallengesInvalid != 0 || st.CertificatesIssued != 0 {
		t.Errorf("the CA was asked to validate: %+v", st)
	}
}
