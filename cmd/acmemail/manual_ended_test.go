package main

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestManualInputEndedHint: when the input of obtain --manual ends early,
// the hint says what the next run does, and the next run does it: a new
// order when the challenge was not answered (stdin ended before the
// paste, or at the confirmation before the challenge was POSTed; the
// reply may never have left), the same order when the CA was already
// asked to validate (--mail-wait, for a CA that mails only after the
// POST: the paste came after it). Each rerun gets its certificate.
func TestManualInputEndedHint(t *testing.T) {
	t.Parallel()
	hint := func(answered bool) string {
		return "acmemail: hint: " + inputEndedHint(&issuer.InputEndedError{Resumption: issuer.Resumption{Ordered: true, Answered: answered}})
	}
	for _, tc := range []struct {
		name      string
		extra     []string
		paste     bool // paste the challenge, then end stdin at the confirmation
		continued bool // the rerun continues the first order
	}{
		{name: "before-paste"},
		{name: "at-confirmation", paste: true},
		{name: "after-post", extra: []string{"--mail-wait", "1ms"}, paste: true, continued: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, env := world(t, sandbox.Options{})
			cli := startCLI(t, noMailEnv(env), manualArgs(w, tc.extra...)...)
			cli.waitLine(t, "paste it here")
			var reply string
			if tc.paste {
				if tc.continued {
					cli.waitLine(t, "POST to the challenge")
				}
				io.WriteString(cli.stdin, string(challengeMail(t, w, 1))+".\n")
				reply = cli.waitReply(t)
				cli.waitLine(t, "press Enter")
			}
			cli.stdin.Close()
			if code := cli.wait(t); code != exitError {
				t.Fatalf("exit %d, want %d\nstderr:\n%s", code, exitError, cli.stderr.String())
			}
			stderr := cli.stderr.String()
			if want := hint(tc.continued); !strings.Contains(stderr, want+"\n") {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
			if bad := hint(!tc.continued); strings.Contains(stderr, bad) {
				t.Errorf("stderr has the hint of the other outcome %q", bad)
			}
			if strings.Contains(stderr, "run again to start a new order") != false {
				t.Errorf("a message predicts a new order besides the hint:\n%s", stderr)
			}
			if tc.continued {
				submitAsAlice(t, w, reply) // sent after all
			}

			// The rerun: the user gives the challenge mail of the order it
			// waits for (a new one, or none when it continues), and confirms.
			again := startCLI(t, noMailEnv(env), manualArgs(w, tc.extra...)...)
			if !tc.continued {
				again.waitLine(t, "paste it here")
				io.WriteString(again.stdin, string(challengeMail(t, w, 2))+".\n")
				submitAsAlice(t, w, again.waitReply(t))
				again.waitLine(t, "press Enter")
				io.WriteString(again.stdin, "\n")
			}
			if code := again.wait(t); code != 0 {
				t.Fatalf("rerun: exit %d\nstderr:\n%s", code, again.stderr.String())
			}
			var res issuer.CertResult
			if err := json.Unmarshal([]byte(again.stdout.String()), &res); err != nil {
				t.Fatalf("rerun: stdout is not JSON: %v\n%s", err, again.stdout.String())
			}
			st := w.Stats()
			wantOrders := 2
			if tc.continued {
				wantOrders = 1
			}
			if st.Orders != wantOrders || st.CertificatesIssued != 1 {
				t.Errorf("the CA saw %d orders and issued %d certificates, want %d and 1 (the hint said: %s)", st.Orders, st.CertificatesIssued, wantOrders, hint(tc.continued))
			}
			for ch, n := range st.RepliesPerChallenge {
				if n > 1 {
					t.Errorf("challenge %s was answered %d times", ch, n)
				}
			}
		})
	}
}
