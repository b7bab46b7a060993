//go:build unix

package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestSignalExitStatus: a run stopped by SIGINT exits with status 130, one
// stopped by SIGTERM (systemd, kill, a CI runner's timeout) with 143: 128
// plus the signal's number, as a shell reports a process the signal
// killed. Both while obtain --pipe waits for the challenge mail (the
// wait ends on the context) and while the --password-command runs (its
// error carries the context's cause). The test binary runs main,
// re-executed, and gets the signal from outside as acmemail would.
func TestSignalExitStatus(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		sig  syscall.Signal
		want int
		pipe bool // obtain --pipe against a sandbox; else a password command that waits
	}{
		// Short names: obtain --pipe's socket is in the test's temporary
		// directory, and a Unix socket's path is short.
		{"pipe-INT", syscall.SIGINT, exitInterrupted, true},
		{"pipe-TERM", syscall.SIGTERM, exitTerminated, true},
		{"pwcmd-INT", syscall.SIGINT, exitInterrupted, false},
		{"pwcmd-TERM", syscall.SIGTERM, exitTerminated, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var env map[string]string
			var args []string
			ready := "TEST: password command started"
			if tc.pipe {
				w, wenv := world(t, sandbox.Options{})
				env, args, ready = noMailEnv(wenv), pipeArgs(w), "waiting for the challenge mail"
			} else {
				// Nothing listens on port 9 (discard): the run never gets
				// past the password, which is asked before any connection.
				env = map[string]string{"ACMEMAIL_HOME": filepath.Join(t.TempDir(), "home"), "ACMEMAIL_P12_PASSWORD": "test"}
				args = []string{"obtain", "--server", "https://127.0.0.1:9/directory", "--imap", "imaps://127.0.0.1:9",
					"--smtp", "smtps://127.0.0.1:9", "--password-command", "echo '" + ready + "' >&2; exec sleep 60", "alice@example.test"}
			}
			code, stderr := signalMain(t, env, args, ready, tc.sig)
			if code != tc.want {
				t.Errorf("exit status %d after %v, want %d\nstderr:\n%s", code, tc.sig, tc.want, stderr)
			}
			if !strings.Contains(stderr, "acmemail: interrupted\n") {
				t.Errorf("stderr does not say the run was interrupted:\n%s", stderr)
			}
		})
	}
}

// signalMain runs acmemail args (main, in a re-executed test binary) with
// env on top of an environment without ACMEMAIL_* variables, sends it sig
// once ready appears on its stderr, and returns its exit status and stderr.
func signalMain(t *testing.T, env map[string]string, args []string, ready string, sig syscall.Signal) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ACMEMAIL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// Keep a developer's own configuration file out of the child.
	cmd.Env = append(cmd.Env, actAsMain+"=1", "XDG_CONFIG_HOME="+t.TempDir())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	pr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Never hang the test: the run gets a minute to become ready and end.
	timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var log bytes.Buffer
	sc := bufio.NewScanner(pr)
	found := false
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), ready) {
			found = true
			break
		}
	}
	if !found {
		cmd.Wait()
		t.Fatalf("acmemail %s ended before %q:\n%s", strings.Join(args, " "), ready, log.String())
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(pr)
	log.Write(rest)
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("wait: %v\n%s", err, log.String())
	}
	return cmd.ProcessState.ExitCode(), log.String()
}
