//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// buildCLI builds cmd/acmemail into dir and returns the binary's path.
func buildCLI(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "acmemail")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/acmemail/acmemail/cmd/acmemail")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/acmemail: %w", err)
	}
	return bin, nil
}

// cliRun is one `acmemail obtain` subprocess.
type cliRun struct {
	wall, cpu time.Duration
	maxRSS    int64 // bytes
	issuance
	requests int64 // as the client counted them (--json)
}

// cliObtain runs `acmemail obtain` as a child process against the running
// world w, for email, with a state directory home (empty: first issuance,
// new account).
func cliObtain(ctx context.Context, bin string, w *world, home, email, keyType string) (*cliRun, error) {
	pw, err := w.user(email)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "obtain",
		"--server", w.DirectoryURL, "--imap", w.IMAPURL, "--smtp", w.SMTPURL,
		"--dns-resolver", w.DNSAddr, "--agree-tos", "--reply-settle", "0",
		"--key-type", keyType, "--json", email)

	cmd.Env = append(os.Environ(),
		"ACMEMAIL_HOME="+home,
		"ACMEMAIL_CA_ROOTS="+w.rootsPath,
		"ACMEMAIL_PASSWORD="+pw,
		"ACMEMAIL_P12_PASSWORD=bench",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	w.rec.take()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	err = cmd.Wait()
	end := time.Now()
	obs := w.rec.take()
	if err != nil {
		return nil, fmt.Errorf("acmemail obtain %s: %w\n%s", email, err, stderr.Bytes())
	}
	var res struct {
		ACMERequests int64 `json:"acme_requests"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("acmemail obtain --json: %w: %q", err, stdout.Bytes())
	}
	st := cmd.ProcessState
	r := &cliRun{wall: end.Sub(start), cpu: st.UserTime() + st.SystemTime(), requests: res.ACMERequests}
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = int64(ru.Maxrss) * 1024 // kilobytes on Linux
	}
	r.issuance = analyze(obs, email, start, end)
	return r, nil
}

// issuance is what the sandbox saw of one issuance.
type issuance struct {
	reaction time.Duration // challenge mail delivered -> reply accepted
	acme     map[string]int
	nACME    int
	nIMAP    int
	nSMTP    int
	phases   []phase
}

type phase struct {
	name string
	d    time.Duration
}

// phaseNames are the phases of an issuance, in the order acmemail obtain
// goes through them; see analyze.
var phaseNames = []string{
	"start-up: exec to first IMAP command",
	"IMAP login+SELECT, SMTP EHLO+AUTH",
	"account key, GET directory",
	"newNonce, newAccount",
	"certificate key + CSR",
	"newOrder, authz fetch (CA mails)",
	"reaction: mail delivered to reply accepted",
	"challenge POST (validated)",
	"finalize, certificate download",
	"renewalInfo, save key/chain/PKCS#12, exit",
}

// analyze splits [start, end] into the phases of phaseNames using the
// observations of the one issuance that ran in that window. The phases are
// consecutive, so they add up to end-start; a phase that did not happen
// (no new account, say) is zero.
func analyze(obs []sandbox.Observation, email string, start, end time.Time) issuance {
	is := issuance{acme: map[string]int{}}
	var (
		firstIMAP, lastSMTPBeforeACME, dirEnd, accountEnd, orderStart time.Time
		mailAt, submitAt, finalizeStart, certEnd                      time.Time
		firstACME                                                     time.Time
	)
	for _, o := range obs {
		switch o.Kind {
		case sandbox.ObserveACME:
			is.nACME++
			is.acme[o.Detail]++
			if firstACME.IsZero() {
				firstACME = o.At
			}
			switch o.Detail {
			case "GET directory":
				if dirEnd.IsZero() {
					dirEnd = o.At.Add(o.Took)
				}
			case "HEAD newNonce", "POST newAccount":
				if orderStart.IsZero() {
					accountEnd = o.At.Add(o.Took)
				}
			case "POST newOrder":
				if orderStart.IsZero() {
					orderStart = o.At
				}
			case "POST finalize":
				if finalizeStart.IsZero() {
					finalizeStart = o.At
				}
			case "POST cert":
				certEnd = o.At.Add(o.Took)
			}
		case sandbox.ObserveIMAP:
			is.nIMAP++
			if firstIMAP.IsZero() {
				firstIMAP = o.At
			}
		case sandbox.ObserveSMTP:
			is.nSMTP++
			if firstACME.IsZero() {
				lastSMTPBeforeACME = o.At
			}
		case sandbox.ObserveChallengeMail:
			if o.Email == email && mailAt.IsZero() {
				mailAt = o.At
			}
		case sandbox.ObserveSubmitted:
			if o.Email == email && !mailAt.IsZero() && submitAt.IsZero() {
				submitAt = o.At
			}
		}
	}
	if !mailAt.IsZero() && !submitAt.IsZero() {
		is.reaction = submitAt.Sub(mailAt)
	}
	bounds := []time.Time{start, firstIMAP, lastSMTPBeforeACME, dirEnd, accountEnd, orderStart, mailAt, submitAt, finalizeStart, certEnd, end}
	prev := start
	for i, name := range phaseNames {
		b := bounds[i+1]
		if b.IsZero() || b.Before(prev) {
			b = prev // the phase did not happen
		}
		is.phases = append(is.phases, phase{name, b.Sub(prev)})
		prev = b
	}
	return is
}
