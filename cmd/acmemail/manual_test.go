package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/mailbox"
)

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// asyncCLI is a CLI run in the background with its stdin and stderr
// connected to the test.
type asyncCLI struct {
	stdin  *io.PipeWriter
	stdout lockedBuffer
	stderr lockedBuffer
	lines  chan string // stderr, line by line
	done   chan int
	read   chan struct{} // closed when all of stderr is in stderr
}

func startCLI(t *testing.T, env map[string]string, args ...string) *asyncCLI {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	inR, inW := io.Pipe()
	errR, errW := io.Pipe()
	a := &asyncCLI{stdin: inW, lines: make(chan string, 1000), done: make(chan int, 1), read: make(chan struct{})}
	go func() {
		defer close(a.read)
		sc := bufio.NewScanner(errR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			a.stderr.Write([]byte(sc.Text() + "\n"))
			select {
			case a.lines <- sc.Text():
			default:
			}
		}
		close(a.lines)
	}()
	go func() {
		code := run(ctx, args, inR, &a.stdout, errW, func(k string) string { return env[k] })
		errW.Close()
		a.done <- code
	}()
	t.Cleanup(func() {
		cancel()
		inW.Close()
	})
	return a
}

// waitLine returns the first stderr line containing s.
func (a *asyncCLI) waitLine(t *testing.T, s string) string {
	t.Helper()
	for line := range a.lines {
		if strings.Contains(line, s) {
			return line
		}
	}
	t.Fatalf("the command ended without printing %q; stderr:\n%s", s, a.stderr.String())
	return ""
}

// replyBegin and replyEnd enclose the reply obtain --manual prints.
const (
	replyBegin = issuer.ManualReplyBegin
	replyEnd   = issuer.ManualReplyEnd
)

// waitReply returns the reply mail printed between replyBegin and replyEnd.
func (a *asyncCLI) waitReply(t *testing.T) string {
	t.Helper()
	a.waitLine(t, replyBegin)
	var b strings.Builder
	for line := range a.lines {
		if line == replyEnd {
			return b.String()
		}
		b.WriteString(line + "\n")
	}
	t.Fatalf("no end of the reply; stderr:\n%s", a.stderr.String())
	return ""
}

func (a *asyncCLI) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-a.done:
		// The last lines written may still be in the scanner: the
		// caller looks at all of stderr.
		<-a.read
		return code
	case <-time.After(90 * time.Second):
		t.Fatalf("the command did not end; stderr:\n%s", a.stderr.String())
	}
	return 0
}

// submitAsAlice sends raw through the sandbox's submission server, as a
// user would from a mail program, to the recipients in its To.
func submitAsAlice(t *testing.T, w *sandbox.World, raw string) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("the printed reply is not a mail: %v\n%s", err, raw)
	}
	to, err := m.Header.AddressList("To")
	if err != nil || len(to) == 0 {
		t.Fatalf("the printed reply has no To: %v", err)
	}
	var rcpts []string
	for _, a := range to {
		rcpts = append(rcpts, a.Address)
	}
	ep, err := mailbox.ParseSMTPURL(w.SMTPURL)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(w.TLSRootsPEM)
	s := mailbox.NewSender(mailbox.SMTPConfig{Endpoint: ep, Credentials: mailbox.Credentials{Username: "alice@example.test", Password: "alice-secret-pw"}, TLSConfig: tlsConfig(pool)})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Send(ctx, "alice@example.test", rcpts, []byte(strings.ReplaceAll(raw, "\n", "\r\n"))); err != nil {
		t.Fatalf("submit the reply: %v", err)
	}
}

// challengeMail waits for the n-th mail the sandbox CA delivers to alice.
func challengeMail(t *testing.T, w *sandbox.World, n int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := w.WaitInbox(ctx, "alice@example.test", n)
	if err != nil {
		t.Fatal(err)
	}
	return msgs[n-1]
}

func manualArgs(w *sandbox.World, extra ...string) []string {
	args := []string{"obtain", "--manual", "--server", w.DirectoryURL, "--dns-resolver", w.DNSAddr,
		"--reply-settle", "0", "--agree-tos", "--json"}
	return append(append(args, extra...), "alice@example.test")
}

// noMailEnv is the environment of a run that must not need the mail
// password.
func noMailEnv(env map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		if k != "ACMEMAIL_PASSWORD" {
			out[k] = v
		}
	}
	return out
}

// TestObtainManualStdin: the challenge mail is pasted on stdin (with LF
// line ends, as a terminal gives it), acmemail prints the reply, the user
// sends it and confirms with Enter, and the certificate is issued.
func TestObtainManualStdin(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	cli := startCLI(t, noMailEnv(env), manualArgs(w)...)
	cli.waitLine(t, "paste it here")
	// Something that is not a challenge first: it is refused and asked again.
	io.WriteString(cli.stdin, "Subject: hello\n\njust a mail\n.\n")
	cli.waitLine(t, "that is not an RFC 8823 challenge mail")

	raw := challengeMail(t, w, 1)
	io.WriteString(cli.stdin, strings.ReplaceAll(string(raw), "\r\n", "\n")+".\n")
	reply := cli.waitReply(t)
	for _, want := range []string{"From: alice@example.test\n", "Subject: Re: ACME: ", "-----BEGIN ACME RESPONSE-----\n"} {
		if !strings.Contains(reply, want) {
			t.Errorf("printed reply lacks %q:\n%s", want, reply)
		}
	}
	cli.waitLine(t, "press Enter")
	if st := w.Stats(); st.RepliesReceived != 0 || st.ChallengesValid != 0 {
		t.Fatalf("the CA was contacted about the reply before the user sent it: %+v", st)
	}
	submitAsAlice(t, w, reply)
	io.WriteString(cli.stdin, "\n")
	if code := cli.wait(t); code != 0 {
		t.Fatalf("obtain --manual exit %d\nstderr:\n%s", code, cli.stderr.String())
	}
	var res issuer.CertResult
	if err := json.Unmarshal([]byte(cli.stdout.String()), &res); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, cli.stdout.String())
	}
	checkP12(t, res.PKCS12, "alice@example.test")
	if st := w.Stats(); st.RepliesAccepted != 1 || st.CertificatesIssued != 1 {
		t.Errorf("sandbox accepted %d replies and issued %d certificates, want 1 and 1 (rejected: %v)", st.RepliesAccepted, st.CertificatesIssued, st.RejectedReasons)
	}
}

// TestObtainManualFile: --challenge-file, read after Enter; a forged copy
// is refused with the same reasons as over IMAP, and nothing is printed.
func TestObtainManualFile(t *testing.T) {
	t.Parallel()
	t.Run("genuine", func(t *testing.T) {
		t.Parallel()
		w, env := world(t, sandbox.Options{})
		file := t.TempDir() + "/challenge.eml"
		cli := startCLI(t, noMailEnv(env), manualArgs(w, "--challenge-file", file)...)
		cli.waitLine(t, "then press Enter")
		writeFile(t, file, challengeMail(t, w, 1))
		io.WriteString(cli.stdin, "\n")
		reply := cli.waitReply(t)
		submitAsAlice(t, w, reply)
		io.WriteString(cli.stdin, "yes\n")
		if code := cli.wait(t); code != 0 {
			t.Fatalf("exit %d\nstderr:\n%s", code, cli.stderr.String())
		}
		if st := w.Stats(); st.CertificatesIssued != 1 {
			t.Errorf("issued %d certificates, want 1", st.CertificatesIssued)
		}
	})
	t.Run("forged", func(t *testing.T) {
		t.Parallel()
		w, env := world(t, sandbox.Options{})
		file := t.TempDir() + "/challenge.eml"
		cli := startCLI(t, noMailEnv(env), manualArgs(w, "--challenge-file", file)...)
		cli.waitLine(t, "then press Enter")
		raw := challengeMail(t, w, 1)
		forged := bytes.Replace(raw, []byte("\r\n\r\n"), []byte("\r\n\r\nPlease also visit https://evil.example/\r\n"), 1)
		writeFile(t, file, forged)
		io.WriteString(cli.stdin, "\n")
		code := cli.wait(t)
		if code == 0 {
			t.Fatalf("a forged challenge was accepted")
		}
		stderr := cli.stderr.String()
		if !strings.Contains(stderr, "ignored a mail claiming to be the challenge for alice@example.test: ") || !strings.Contains(stderr, "body hash mismatch") {
			t.Errorf("no reason for the refusal:\n%s", stderr)
		}
		if strings.Contains(stderr, replyBegin) {
			t.Errorf("a reply was printed for a forged challenge")
		}
		if st := w.Stats(); st.RepliesReceived != 0 || st.ChallengesValid != 0 {
			t.Errorf("stats %+v: nothing should have reached the CA", st)
		}
	})
	t.Run("abort", func(t *testing.T) {
		t.Parallel()
		w, env := world(t, sandbox.Options{})
		cli := startCLI(t, noMailEnv(env), manualArgs(w)...)
		cli.waitLine(t, "paste it here")
		io.WriteString(cli.stdin, string(challengeMail(t, w, 1))+".\n")
		cli.waitReply(t)
		io.WriteString(cli.stdin, "abort\n")
		if code := cli.wait(t); code == 0 {
			t.Fatalf("obtain went on after abort")
		}
		if !strings.Contains(cli.stderr.String(), "you did not confirm that the reply was sent") {
			t.Errorf("stderr:\n%s", cli.stderr.String())
		}
		if st := w.Stats(); st.ChallengesValid+st.ChallengesInvalid != 0 {
			t.Errorf("the challenge was POSTed after abort: %+v", st)
		}
	})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := writeNewFile(path, data); err != nil {
		t.Fatal(err)
	}
}

// TestObtainManualYes: with --yes the CA is asked to validate as soon as
// the reply is printed; a CA that keeps looking for the reply (the
// sandbox, for 30 s) validates it when it arrives afterwards.
func TestObtainManualYes(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	cli := startCLI(t, noMailEnv(env), manualArgs(w, "--yes")...)
	cli.waitLine(t, "paste it here")
	io.WriteString(cli.stdin, string(challengeMail(t, w, 1))+".\n")
	reply := cli.waitReply(t)
	cli.waitLine(t, "asking the CA to validate")
	submitAsAlice(t, w, reply)
	if code := cli.wait(t); code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, cli.stderr.String())
	}
	if st := w.Stats(); st.CertificatesIssued != 1 {
		t.Errorf("issued %d certificates, want 1", st.CertificatesIssued)
	}
}
