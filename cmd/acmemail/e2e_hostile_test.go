package main

import (
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// hostileHeader is a header field whose name sets the terminal's title
// (OSC 0) when printed raw.
const hostileHeader = "X\x1b]0;pwned\x07: 1\r\n"

// noRawControl fails when out holds a control byte other than a line
// break or a tab: escape sequences from a mail must not reach the
// terminal or a log.
func noRawControl(t *testing.T, what, out string) {
	t.Helper()
	for _, b := range []byte(out) {
		if b < 0x20 && b != '\n' && b != '\t' || b == 0x7f {
			t.Errorf("%s holds the raw control byte %#x:\n%q", what, b, out)
			return
		}
	}
}

// TestHostileMailEscaped: a mail with an escape sequence in a header name
// arrives while obtain waits for the challenge (the IMAP path, at -v and
// -vv too) and is handed to respond (the pipe path). Whatever is said about
// it is escaped.
func TestHostileMailEscaped(t *testing.T) {
	t.Parallel()
	for _, verbose := range []string{"", "-v", "-vv"} {
		t.Run("imap"+verbose, func(t *testing.T) {
			t.Parallel()
			// The CA mails only after the challenge POST; while obtain
			// waits for the mail before it, a mail claiming to be the
			// challenge arrives.
			w, env := world(t, sandbox.Options{MailTiming: sandbox.MailAfterChallenge})
			args := append(obtainArgs(w), "--mail-wait", "3s")
			if verbose != "" {
				args = append([]string{args[0], verbose}, args[1:]...)
			}
			a := startCLI(t, env, args...)
			a.waitLine(t, "waiting for the challenge mail")
			if err := w.Deliver("alice@example.test", []byte("From: \"\x1b]0;pwned\x07\" <acme-challenge@ca.sandbox.test>\r\nTo: alice@example.test\r\nSubject: ACME: \x1b]0;pwned\x07\r\n\r\nhi\r\n")); err != nil {
				t.Fatal(err)
			}
			if code := a.wait(t); code != 0 {
				t.Fatalf("obtain: exit %d\n%s", code, a.stderr.String())
			}
			r := cliResult{stderr: a.stderr.String()}
			// -vv shows the protocol, the mail's text with it: escaped.
			if verbose == "-vv" && !strings.Contains(r.stderr, `\x1b]0;pwned\a`) && !strings.Contains(r.stderr, `\x1b]0;pwned\x07`) {
				t.Errorf("obtain does not show the ignored mail's header escaped:\n%s", r.stderr)
			}
			noRawControl(t, "obtain's stderr", r.stderr)
		})
	}
	t.Run("pipe", func(t *testing.T) {
		t.Parallel()
		w, env := world(t, sandbox.Options{})
		obtain := startCLI(t, noMailEnv(env), pipeArgs(w)...)
		raw := challengeMail(t, w, 1)
		hostile := append([]byte(hostileHeader), raw...)
		r := runCLIStdin(t, env, hostile, "respond", "--smtp", w.SMTPURL)
		if r.code == 0 {
			t.Fatalf("respond answered a mail with a hostile header:\n%s", r.stderr)
		}
		noRawControl(t, "respond's stderr", r.stderr)
		if !strings.Contains(r.stderr, `pwned`) {
			t.Errorf("respond does not show the refused header escaped:\n%s", r.stderr)
		}
		if r := runCLIStdin(t, env, raw, "respond", "--smtp", w.SMTPURL); r.code != 0 {
			t.Fatalf("respond with the genuine challenge: exit %d\n%s", r.code, r.stderr)
		}
		if code := obtain.wait(t); code != 0 {
			t.Fatalf("obtain --pipe: exit %d\n%s", code, obtain.stderr.String())
		}
		stderr := obtain.stderr.String()
		noRawControl(t, "obtain --pipe's stderr", stderr)
	})
}

// TestObtainRepeatedAuthorizations: a CA whose order lists an
// authorization twice is refused at once, before any reply: waiting for a
// second challenge mail that never comes would hold the run until its
// --timeout.
func TestObtainRepeatedAuthorizations(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RepeatAuthorizations: true})
	r := runCLI(t, env, obtainArgs(w, "--timeout", "30s")...)
	if r.code != exitError || !strings.Contains(r.stderr, "lists 2 authorizations (1 distinct) for 1 address") {
		t.Errorf("obtain: exit %d, want %d and the order refused\n%s", r.code, exitError, r.stderr)
	}
	if st := w.Stats(); st.RepliesReceived != 0 || st.CertificatesIssued != 0 {
		t.Errorf("the CA saw %d replies and issued %d certificates, want none", st.RepliesReceived, st.CertificatesIssued)
	}
}
