package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// faultSeedEnv names the variable that replays a TestKillAnywhere run:
// the seed it logs.
const faultSeedEnv = "ACMEMAIL_FAULT_SEED"

// killPoints is how many times TestKillAnywhere kills a run.
const killPoints = 50

// runTimeout is how long TestKillAnywhere lets a rerun take.
const runTimeout = 30 * time.Second

// TestKillAnywhere is fault injection: obtain and renew --force, run as
// acmemail itself (a re-executed test binary), are SIGKILLed at random
// points of their run, each followed by the same command run to its end.
// After every rerun there is a valid certificate, no challenge got more
// than one reply, no key was lost (every certificate key the state
// directory ever held, pending or installed, is still there, current or
// in archive/), and no temporary file of the killed run is left. The delays are drawn from a seed that is logged; set
// ACMEMAIL_FAULT_SEED to it to draw the same ones again.
func TestKillAnywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection kills 50 runs; skipped with -short")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(faultSeedEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", faultSeedEnv, s, err)
		}
		seed = n
	}
	t.Logf("seed %d (%s=%d draws the same kill points)", seed, faultSeedEnv, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>32|seed<<32))

	w, env := world(t, sandbox.Options{RenewalWindow: far})
	home := env["ACMEMAIL_HOME"]
	commands := [][]string{obtainArgs(w, "--key-type", "p256"), {"renew", "-v", "--force"}}
	keys := keyRing{}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(w.IssuerRootPEM)

	// child starts acmemail args as its own process.
	child := func(args []string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0], args...)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "ACMEMAIL_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		// Under -race a process sleeps a second before it exits (to
		// let other goroutines report): not part of the run to kill.
		cmd.Env = append(cmd.Env, actAsMain+"=1", "XDG_CONFIG_HOME="+t.TempDir(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &stderr
	}
	// complete runs args to its end and checks the state directory
	// (check): a valid certificate, no challenge answered twice, no key
	// lost.
	var check func(point int)
	complete := func(point int, args []string) time.Duration {
		t.Helper()
		start := time.Now()
		cmd, stderr := child(args)
		// A run that hangs is a failure, with what it was doing.
		hung := time.AfterFunc(runTimeout, func() { cmd.Process.Signal(syscall.SIGQUIT) })
		err := cmd.Wait()
		if !hung.Stop() {
			var dump bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&dump, 1)
			t.Fatalf("point %d: %s did not finish in %v; sandbox: %+v\nits goroutines:\n%s\nthe sandbox's:\n%s", point, args[0], runTimeout, w.Stats(), stderr, dump.String())
		}
		if err != nil {
			t.Fatalf("point %d: %s: %v\n%s", point, args[0], err, stderr)
		}
		took := time.Since(start)
		check(point)
		return took
	}
	check = func(point int) {
		t.Helper()
		keys.collect(t, home)
		checkInstalled(t, env)
		_, chain, _, _, err := openHome(t, env).LoadCertificate("alice@example.test")
		if err != nil {
			t.Fatalf("point %d: %v", point, err)
		}
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
			t.Errorf("point %d: the installed certificate is not valid: %v", point, err)
		}
		for ch, n := range w.Stats().RepliesPerChallenge {
			if n > 1 {
				t.Fatalf("point %d: challenge %s got %d replies", point, ch, n)
			}
		}
		if lost := keys.missing(t, home); len(lost) > 0 {
			t.Fatalf("point %d: keys lost: %v", point, lost)
		}
		// What a killed run was writing does not pile up (some of it
		// copies of keys).
		if temps, _ := filepath.Glob(filepath.Join(home, "certificates", "alice@example.test", ".*.tmp-*")); len(temps) > 0 {
			t.Errorf("point %d: temporary files left: %v", point, temps)
		}
	}

	// Complete runs of each command first: the kill points are drawn
	// across their durations (the shortest of three: the first also
	// registers the account).
	var took [2]time.Duration
	for i, args := range commands {
		var d []time.Duration
		for range 3 {
			d = append(d, complete(-1, args))
		}
		took[i] = slices.Min(d)
	}
	t.Logf("complete runs take: obtain %v, renew --force %v", took[0].Round(time.Millisecond), took[1].Round(time.Millisecond))
	// Runs that end before their kill point do not count: draw until
	// killPoints runs were killed.
	killed, finished := 0, 0
	for killed < killPoints {
		if finished > 2*killPoints {
			t.Fatalf("%d runs ended before their kill point, %d were killed", finished, killed)
		}
		c := rng.IntN(2)
		args := commands[c]
		delay := time.Duration(rng.Int64N(int64(took[c])))
		cmd, stderr := child(args)
		timer := time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGKILL) })
		err := cmd.Wait()
		timer.Stop()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			keys.collect(t, home)
			t.Logf("point %d: %s killed after %v%s", killed, args[0], delay.Round(time.Millisecond), leftBehind(t, env))
			complete(killed, args)
			killed++
			continue
		}
		if err != nil {
			t.Fatalf("%s failed before it was killed: %v\n%s", args[0], err, stderr)
		}
		finished++
		check(killed)
	}
	s := w.Stats()
	t.Logf("%d runs killed, %d ended before their kill point; sandbox: %d orders, %d replies, %d certificates issued; %d keys seen",
		killed, finished, s.Orders, s.RepliesReceived, s.CertificatesIssued, len(keys))
}

// leftBehind says what a killed run left for the next one: its order's
// state, a staged install.
func leftBehind(t *testing.T, env map[string]string) string {
	t.Helper()
	var out []string
	if data, err := openHome(t, env).ReadOrderState("alice@example.test"); err == nil {
		var st acmemail.OrderState
		json.Unmarshal(data, &st)
		what := "created"
		for _, a := range st.Authorizations {
			if a.ReplySent {
				what = "reply sent"
			}
		}
		out = append(out, "order "+what)
	}
	dir := filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test")
	if staged, _ := filepath.Glob(filepath.Join(dir, "*.new")); len(staged) > 0 {
		out = append(out, "install staged")
	}
	if len(out) == 0 {
		return ""
	}
	return " (left: " + strings.Join(out, ", ") + ")"
}
