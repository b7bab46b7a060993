package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/cmd/internal/termout"
)

// TestTimeoutError: an error of a run whose --timeout ran out says how
// long it waited, and stays what it was to errors.Is (the exit status)
// and to the hints; other errors are left alone.
func TestTimeoutError(t *testing.T) {
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	mailTimeout := fmt.Errorf("obtain: %w", acmemail.ErrMailTimeout)

	err := termout.TimeoutError(expired, mailTimeout, 15*time.Minute)
	if want := "obtain: no acceptable challenge mail arrived (gave up after 15m0s; raise --timeout to wait longer)"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if !errors.Is(err, acmemail.ErrMailTimeout) || exitCode(err) != exitMailTimeout {
		t.Errorf("errors.Is(ErrMailTimeout) = %v, exit status %d, want true and %d", errors.Is(err, acmemail.ErrMailTimeout), exitCode(err), exitMailTimeout)
	}
	if again := termout.TimeoutError(expired, err, 15*time.Minute); again != err {
		t.Errorf("wrapped twice: %v", again)
	}
	var out bytes.Buffer
	printError(&out, cliError(err))
	for _, want := range []string{"acmemail: error: obtain: no acceptable challenge mail arrived (gave up after 15m0s; raise --timeout to wait longer)\n", "acmemail: hint: the CA may have filtered it as spam"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printError does not say %q:\n%s", want, out.String())
		}
	}
	// The deadline ran out in another step (the CA's answer, say).
	stuck := fmt.Errorf("finalize the order: %w", context.DeadlineExceeded)
	if err := termout.TimeoutError(expired, stuck, 90*time.Second); !strings.HasSuffix(err.Error(), "(gave up after 1m30s; raise --timeout to wait longer)") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %q", err)
	}

	for _, tc := range []struct {
		name    string
		ctx     context.Context
		err     error
		timeout time.Duration
	}{
		{"nil", expired, nil, time.Minute},
		{"interrupted", canceled, fmt.Errorf("wait: %w", context.Canceled), time.Minute},
		{"no --timeout", expired, mailTimeout, 0},
		// A request's own timeout while the run still had time.
		{"run not over", context.Background(), fmt.Errorf("get: %w", context.DeadlineExceeded), time.Minute},
		{"other error", expired, errors.New("the CA refused"), time.Minute},
	} {
		if got := termout.TimeoutError(tc.ctx, tc.err, tc.timeout); got != tc.err {
			t.Errorf("%s: timeoutError = %v, want the error as it was", tc.name, got)
		}
	}
}

// TestObtainTimeoutSaysHowLong: obtain that gives up waiting for the
// challenge mail on its --timeout says how long it waited, with the
// mail-timeout exit status.
func TestObtainTimeoutSaysHowLong(t *testing.T) {
	// Not parallel: the run up to the wait must fit in --timeout 2s, which
	// a machine busy with the parallel tests may not give it.
	// The CA mails only once asked, and acmemail asks after a minute.
	w, env := world(t, sandbox.Options{MailTiming: sandbox.MailAfterChallenge})
	r := runCLI(t, env, obtainArgs(w, "--mail-wait", "1m", "--timeout", "2s")...)
	if r.code != exitMailTimeout {
		t.Fatalf("exit status %d, want %d\nstderr:\n%s", r.code, exitMailTimeout, r.stderr)
	}
	if want := "acmemail: error: no acceptable challenge mail arrived for alice@example.test in time (gave up after 2s; raise --timeout to wait longer)\n"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
	}
}
