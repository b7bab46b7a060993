package main

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// cronRun runs "acmemail ARGS" as its own process with the environment
// cron gives it: ACMEMAIL_HOME and the DNS provider's RFC2136_* variables
// (plus, as test plumbing, the fake Postfix and Dovecot of hw on PATH and
// ACMEMAIL_INSTALL_ROOT): no ACMEMAIL_CA_ROOTS, no flags but args.
func cronRun(t *testing.T, w *sandbox.World, home string, hw *hookWorld, args ...string) cliResult {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, args...)
	// cron starts elsewhere than where obtain ran (deep enough that a
	// path relative to obtain's directory cannot resolve by chance).
	cmd.Dir = filepath.Join(hw.state, "cron", "a", "b", "c", "d")
	if err := os.MkdirAll(cmd.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append([]string{actAsMain + "=1", "PATH=" + hw.bin + ":/usr/bin:/bin", "HOME=" + hw.state,
		"ACMEMAIL_HOME=" + home, "ACMEMAIL_INSTALL_ROOT=" + hw.root, "FAKE_LOG=" + hw.log}, w.DNSUpdateEnv()...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	code := 0
	if err := cmd.Run(); err != nil {
		if code = procExitCode(err); code < 0 {
			t.Fatalf("acmemail %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
	}
	return cliResult{code, out.String(), errb.String()}
}

// expireServerRenewalCheck makes the recorded renewal information of host
// stale, as it is once the CA's Retry-After has passed.
func expireServerRenewalCheck(t *testing.T, env map[string]string, host string) {
	t.Helper()
	s := openHome(t, env).Servers()
	data, err := s.ReadRenewalState(host)
	if err != nil {
		t.Fatalf("no renewal state after server obtain: %v", err)
	}
	var st issuer.RenewalState
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	st.NextCheck = time.Now().Add(-time.Second)
	if err := issuer.SaveRenewalState(s, host, st); err != nil {
		t.Fatal(err)
	}
}

// TestServerRenewCron: a mail server's certificate is renewed by plain
// "acmemail renew" from cron (an environment with only ACMEMAIL_HOME and
// the provider's RFC2136_* variables) once the CA moves its renewal window
// (RFC 9773) into the past: the order replaces the old certificate, the
// recorded --install puts the new one into Postfix and Dovecot and reloads
// them, and the recorded deploy hook runs again. Before the window moves,
// renew is silent and orders nothing.
func TestServerRenewCron(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("--install writes root-owned keys: run as root")
	}
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	hw := newHookWorld(t)
	hookLog := filepath.Join(t.TempDir(), "hook.log")
	// The CA's roots given relative to where obtain runs: renew, from
	// cron in another directory, still finds them.
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(cwd, env["ACMEMAIL_CA_ROOTS"])
	if err != nil {
		t.Fatal(err)
	}
	relEnv := maps.Clone(env)
	relEnv["ACMEMAIL_CA_ROOTS"] = rel
	r := serverInstall(t, w, relEnv, hw, nil, serverInstallObtainArgs(w, "--deploy-hook", `printf '%s\n' "$ACMEMAIL_SERIAL" >> `+hookLog)...)
	if r.code != 0 {
		t.Fatalf("server obtain: exit %d\n%s", r.code, r.stderr)
	}
	var first struct {
		Serial string `json:"serial"`
		Chain  string `json:"chain_path"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &first); err != nil {
		t.Fatal(err)
	}
	hw.logLines(t) // obtain's reloads
	home := env["ACMEMAIL_HOME"]

	if r := cronRun(t, w, home, hw, "renew"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("renew before the window: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if st := w.Stats(); st.Orders != 1 {
		t.Fatalf("orders = %d after a renew that was not due, want 1", st.Orders)
	}

	now := time.Now()
	w.SetRenewalWindow(now.Add(-2*time.Hour), now.Add(-time.Hour))
	expireServerRenewalCheck(t, env, "mail.example.test")
	r = cronRun(t, w, home, hw, "renew", "--json")
	if r.code != 0 {
		t.Fatalf("renew in the window: exit %d\n%s", r.code, r.stderr)
	}
	var outs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &outs); err != nil || len(outs) != 1 || outs[0]["host"] != "mail.example.test" || outs[0]["status"] != "renewed" {
		t.Fatalf("renew --json = %s (%v)", r.stdout, err)
	}
	if st := w.Stats(); st.Orders != 2 || st.OrdersReplacing != 1 {
		t.Errorf("sandbox stats %+v: want a second order, replacing the first certificate", st)
	}
	renewed, err := os.ReadFile(first.Chain)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"postfix", "dovecot"} {
		if string(installedChain(t, hw, target)) != string(renewed) {
			t.Errorf("%s: after renew, the installed chain is not the renewed one", target)
		}
	}
	if log := hw.logLines(t); !slices.Contains(log, "postfix_reload") || !slices.Contains(log, "doveadm_reload") {
		t.Errorf("renew: log %q: want both servers reloaded", log)
	}
	hooks, _ := os.ReadFile(hookLog)
	if lines := strings.Fields(string(hooks)); len(lines) != 2 || lines[0] == lines[1] {
		t.Errorf("deploy hook runs %q: want one for obtain and one for the renewal, with their serials", lines)
	}
	if outs[0]["serial"] == first.Serial {
		t.Errorf("renew kept the serial %s", first.Serial)
	}
}

// TestServerRenewWaitLockOnce: two renewals of a due host that wait for
// each other (--wait-lock) order one certificate, not two: the second
// finds, under the lock, that the first has renewed it.
func TestServerRenewWaitLockOnce(t *testing.T) {
	t.Parallel()
	w, env, _ := serverWorld(t)
	const host = "mail.example.test"
	now := time.Now()
	w.SetRenewalWindow(now.Add(-2*time.Hour), now.Add(-time.Hour))
	expireServerRenewalCheck(t, env, host)
	// Another run holds the host while both renewals find it due.
	unlock, err := openHome(t, env).Servers().LockIdentity(t.Context(), host, false)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan cliResult, 2)
	for range 2 {
		go func() { results <- runCLI(t, env, "server", "renew", "--wait-lock", "--json", host) }()
	}
	time.Sleep(time.Second) // both are past the due check, waiting for the lock
	unlock()
	statuses := map[string]int{}
	for range 2 {
		r := <-results
		var outs []map[string]any
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &outs) != nil || len(outs) != 1 {
			t.Fatalf("server renew --wait-lock: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		statuses[outs[0]["status"].(string)]++
	}
	if st := w.Stats(); st.Orders != 2 {
		t.Errorf("%d orders (the obtain's and the renewals'), want 2", st.Orders)
	}
	if statuses["renewed"] != 1 {
		t.Errorf("statuses %v, want one renewed", statuses)
	}
}
