//go:build unix

package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// hasRenew reports whether bin has the renew command.
func hasRenew(ctx context.Context, bin string) bool {
	return exec.CommandContext(ctx, bin, "renew", "--help").Run() == nil
}

// renewRun is one `acmemail renew` child process.
type renewRun struct {
	wall, cpu  time.Duration
	sys        time.Duration // the kernel's part of cpu (file system, sockets)
	sandboxCPU time.Duration // of this process while renew ran: the sandbox serving it
	maxRSS     int64
	// switches counts the child's context switches (voluntary and not),
	// faults its page faults that needed no I/O: counts of kernel work
	// that, unlike CPU time, do not move with the machine's speed.
	switches, faults int64
	// renewals retried with the safe timing defaults (timing_retry)
	timingRetries int
}

// cliRenewScale obtains certificates for emails into the new state
// directory home (untimed), then times one `acmemail renew --force` that
// renews them all (with --parallel unless it is 0). The world must give
// every user the same password (world.password).
func cliRenewScale(ctx context.Context, bin string, w *world, home string, emails []string, parallel int) (*renewRun, error) {
	if err := renewSetup(ctx, bin, w, home, emails, ""); err != nil {
		return nil, err
	}
	return renewAll(ctx, bin, w, home, emails, "", parallel)
}

func renewEnv(w *world, home string) []string {
	return append(os.Environ(),
		"ACMEMAIL_HOME="+home,
		"ACMEMAIL_CA_ROOTS="+w.rootsPath,
		"ACMEMAIL_P12_PASSWORD=bench",
	)
}

// renewSetup obtains a certificate for every address of emails into home;
// login, if set, is the mailbox they all live in (the world's aliases),
// else each has its own.
func renewSetup(ctx context.Context, bin string, w *world, home string, emails []string, login string) error {
	env := renewEnv(w, home)
	// Set-up: the first obtain creates the account, the others follow a
	// few at a time.
	setup := func(email string) error {
		pw, err := w.user(cmp.Or(login, email))
		if err != nil {
			return err
		}
		args := []string{"obtain",
			"--server", w.DirectoryURL, "--imap", w.IMAPURL, "--smtp", w.SMTPURL,
			"--dns-resolver", w.DNSAddr, "--agree-tos", "--reply-settle", "0",
			"--key-type", "p256"}
		if login != "" {
			args = append(args, "--user", login)
		}
		cmd := exec.CommandContext(ctx, bin, append(args, email)...)
		cmd.Env = append(env, "ACMEMAIL_PASSWORD="+pw)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("set-up: acmemail obtain %s: %w\n%s", email, err, out)
		}
		return nil
	}
	if err := setup(emails[0]); err != nil {
		return err
	}
	sem := make(chan struct{}, 4)
	errs := make(chan error, len(emails))
	for _, e := range emails[1:] {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- setup(e)
		}()
	}
	var first error
	for range emails[1:] {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// renewAll times one `acmemail renew --force` of emails in home (login as
// for renewSetup).
func renewAll(ctx context.Context, bin string, w *world, home string, emails []string, login string, parallel int) (*renewRun, error) {
	env := renewEnv(w, home)
	pw, err := w.user(cmp.Or(login, emails[0]))
	if err != nil {
		return nil, err
	}
	args := []string{"renew", "--force", "--json"}
	if parallel > 0 {
		args = append(args, fmt.Sprintf("--parallel=%d", parallel))
	}
	cmd := exec.CommandContext(ctx, bin, append(args, emails...)...)
	cmd.Env = append(env, "ACMEMAIL_PASSWORD="+pw)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start, startCPU := time.Now(), processCPU()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("acmemail renew: %w\n%s", err, stderr.Bytes())
	}
	r := &renewRun{wall: time.Since(start), cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), sys: cmd.ProcessState.SystemTime(), sandboxCPU: processCPU() - startCPU}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = int64(ru.Maxrss) * 1024
		r.switches, r.faults = int64(ru.Nvcsw)+int64(ru.Nivcsw), int64(ru.Minflt)
	}
	var outcomes []struct {
		Email       string `json:"email"`
		Status      string `json:"status"`
		TimingRetry bool   `json:"timing_retry"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &outcomes); err != nil {
		return nil, fmt.Errorf("acmemail renew --json: %w: %q", err, stdout.Bytes())
	}
	renewed := 0
	for _, o := range outcomes {
		if o.Status == "renewed" {
			renewed++
		}
		if o.TimingRetry {
			r.timingRetries++
		}
	}
	if renewed != len(emails) {
		return nil, fmt.Errorf("acmemail renew renewed %d of %d: %s", renewed, len(emails), stdout.Bytes())
	}
	return r, nil
}
