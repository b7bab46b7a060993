package main

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestRenewParallel: renew --parallel of several addresses, two of them
// in one mailbox, against a CA whose mail takes a while: the --json
// outcomes are in the order of the arguments, an address that cannot be
// renewed fails alone (exit status 6), every challenge is answered once,
// the shared mailbox is read over one connection, and with -v every
// progress line is whole and names its address.
func TestRenewParallel(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	// carol's mail arrives in alice's mailbox (login alice).
	if err := w.AddAlias("carol@example.test", "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := w.AddUser("bob@example.test", env["ACMEMAIL_PASSWORD"]); err != nil {
		t.Fatal(err)
	}
	obtain := func(email string, extra ...string) {
		args := obtainArgs(w, extra...)
		args[len(args)-1] = email
		if r := runCLI(t, env, args...); r.code != 0 {
			t.Fatalf("obtain %s: exit %d\n%s", email, r.code, r.stderr)
		}
	}
	obtain("alice@example.test")
	obtain("bob@example.test")
	obtain("carol@example.test", "--user", "alice@example.test")
	w.SetMailDelay(300 * time.Millisecond)
	before := w.Stats()
	emails := []string{"carol@example.test", "nobody@example.test", "alice@example.test", "bob@example.test"}
	start := time.Now()
	r := runCLI(t, env, append([]string{"renew", "--force", "--json", "-v", "--parallel", "4"}, emails...)...)
	if r.code != 6 {
		t.Fatalf("renew with one unmanaged address: exit %d, want 6\nstderr:\n%s", r.code, r.stderr)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("renew took %v, less than the mail delay", d)
	}
	var out []struct{ Email, Status string }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	var got, status []string
	for _, o := range out {
		got, status = append(got, o.Email), append(status, o.Status)
	}
	if !slices.Equal(got, emails) || !slices.Equal(status, []string{"renewed", "failed", "renewed", "renewed"}) {
		t.Errorf("outcomes %v %v, want %v renewed but nobody", got, status, emails)
	}
	after := w.Stats()
	if n := after.IMAPConnections - before.IMAPConnections; n != 2 {
		t.Errorf("%d IMAP connections for two mailboxes", n)
	}
	if n := after.ChallengesValid - before.ChallengesValid; n != 3 {
		t.Errorf("%d challenges valid, want 3", n)
	}
	for url, n := range after.RepliesPerChallenge {
		if n != 1 {
			t.Errorf("challenge %s answered %d times", url, n)
		}
	}
	// Progress lines (-v) name their address; they and the log lines are
	// whole lines.
	line := regexp.MustCompile(`^(?:acmemail: (?:(alice|bob|carol)@example\.test: .+|.*nobody@example\.test.*|error: \d+ of \d+ certificates could not be renewed.*|\s.*)|level=(?:DEBUG|INFO|WARN|ERROR) msg=.*)$`)
	named := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("a stderr line that names no address, or is cut: %q", l)
			continue
		}
		named[m[1]] = true
	}
	for _, who := range []string{"alice", "bob", "carol"} {
		if !named[who] {
			t.Errorf("no progress line for %s in:\n%s", who, r.stderr)
		}
	}
}
