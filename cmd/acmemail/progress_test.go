package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// output returns what p has written to buf so far (p writes under its
// lock, from its ticker too).
func (p *progress) output(buf *bytes.Buffer) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return buf.String()
}

// TestProgressHeartbeat: off a terminal there is no live line, but while
// the challenge mail is awaited a line says so every heartbeat interval,
// with the time waited and, when the run has a deadline, the time left;
// none comes after the mail did.
func TestProgressHeartbeat(t *testing.T) {
	for _, deadline := range []bool{true, false} {
		t.Run(fmt.Sprintf("deadline=%v", deadline), func(t *testing.T) {
			var buf bytes.Buffer
			p := newProgress(&buf)
			if p.tty {
				t.Fatal("a buffer is a terminal")
			}
			p.heartbeat = 10 * time.Millisecond
			want := regexp.MustCompile(`^acmemail: still waiting for the challenge mail to alice@example\.test from ca@example\.test\\x1b\[2J \([0-9hms.]+ so far\)$`)
			if deadline {
				p.deadline = time.Now().Add(time.Hour)
				want = regexp.MustCompile(`^acmemail: still waiting for the challenge mail to alice@example\.test from ca@example\.test\\x1b\[2J \([0-9hms.]+ so far, [0-9hms.]+ left\)$`)
			}
			// The From a CA announces is in the text: its control
			// characters are escaped.
			p.event(acmemail.Event{Kind: acmemail.EventWaitingForMail, Message: "waiting for the challenge mail to alice@example.test from ca@example.test\x1b[2J"})
			beats := func() []string {
				var got []string
				for _, l := range strings.Split(p.output(&buf), "\n") {
					if strings.HasPrefix(l, "acmemail: still ") {
						got = append(got, l)
					}
				}
				return got
			}
			for end := time.Now().Add(30 * time.Second); len(beats()) < 2; time.Sleep(time.Millisecond) {
				if time.Now().After(end) {
					t.Fatalf("no two heartbeat lines:\n%s", p.output(&buf))
				}
			}
			p.event(acmemail.Event{Kind: acmemail.EventChallengeMail, Message: "received the challenge mail"})
			got := beats()
			for _, l := range got {
				if !want.MatchString(l) {
					t.Errorf("heartbeat line %q does not match %s", l, want)
				}
			}
			out := p.output(&buf)
			if strings.ContainsAny(out, "\r…") {
				t.Errorf("a live line off a terminal:\n%q", out)
			}
			if !strings.HasSuffix(out, "acmemail: received the challenge mail\n") {
				t.Errorf("the output does not end with the line after the wait:\n%s", out)
			}
			// The wait is over: its ticker is stopped (several intervals
			// pass without a line).
			time.Sleep(5 * p.heartbeat)
			if after := beats(); len(after) != len(got) {
				t.Errorf("%d heartbeat lines after the mail came:\n%s", len(after)-len(got), p.output(&buf))
			}
		})
	}
}

// TestProgressLiveLineFits: on a terminal each draw of the live line fits
// in one column less than the width asked at that draw (the window may
// be resized), counting East Asian wide characters as two columns and
// cutting only between characters, and control characters in the text
// are escaped.
func TestProgressLiveLineFits(t *testing.T) {
	var buf bytes.Buffer
	cols := 30
	var asked []int // the width at each draw, in order
	p := &progress{w: &buf, tty: true, deadline: time.Now().Add(15 * time.Minute)}
	p.columns = func() int { asked = append(asked, cols); return cols } // under p.mu
	p.event(acmemail.Event{Kind: acmemail.EventWaitingForMail,
		Message: "waiting for the challenge mail to 用户名称@例子.测试 from e\u0301\x1b]0;title\x07ca@example.test"})
	for _, c := range []int{12, 40, 200, 3} {
		p.mu.Lock()
		cols = c
		p.mu.Unlock()
		p.printf("step at %d columns", c) // clears and redraws the live line
	}
	p.endLive()
	out := p.output(&buf)
	if !utf8.ValidString(out) {
		t.Errorf("not UTF-8: %q", out)
	}
	if !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("the live line is not erased when it ends:\n%q", out)
	}
	// Each draw follows a line's "\n" or the erase of the draw before
	// (the ticker may have redrawn it in between, at the width then).
	var draws []string
	for _, seg := range strings.Split(out, "\r\033[K") {
		if i := strings.LastIndexByte(seg, '\n'); i >= 0 {
			seg = seg[i+1:]
		}
		if seg != "" {
			draws = append(draws, seg)
		}
	}
	if len(draws) != len(asked) || len(draws) < 5 {
		t.Fatalf("%d draws of the live line, %d widths asked, want 5 or more of each:\n%q", len(draws), len(asked), out)
	}
	// The OSC sequence is escaped, the combining accent kept.
	full := "acmemail: waiting for the challenge mail to 用户名称@例子.测试 from e\u0301\\x1b]0;title\\aca@example.test"
	saw200 := false
	for i, d := range draws {
		if w := textWidth(d); w > asked[i]-1 {
			t.Errorf("draw %d is %d columns wide at %d columns: %q", i, w, asked[i], d)
		}
		if strings.ContainsAny(d, "\x1b\x07\r\n") {
			t.Errorf("a control character in the live line: %q", d)
		}
		// The text is cut before "…" (or, too narrow for it, all is).
		text, _, _ := strings.Cut(d, "…")
		if !strings.HasPrefix(full, text) {
			t.Errorf("draw %q is not a beginning of the waiting line %q", d, full)
		}
		if asked[i] == 200 {
			saw200 = true
			if !strings.HasPrefix(d, full+"… ") {
				t.Errorf("draw at 200 columns = %q, want it to begin %q", d, full+"… ")
			}
		}
	}
	if !saw200 {
		t.Errorf("no draw at 200 columns")
	}
}

func TestFitLine(t *testing.T) {
	cases := []struct {
		text, suffix string
		cols         int
		want         string
	}{
		{"acmemail: waiting", "… 3s", 40, "acmemail: waiting… 3s"},
		{"acmemail: waiting", "… 3s", 21, "acmemail: waiting… 3s"},
		{"acmemail: waiting", "… 3s", 20, "acmemail: waitin… 3s"},
		// A cut at a blank drops it.
		{"acmemail: waiting for", "… 3s", 22, "acmemail: waiting… 3s"},
		// Wide characters take two columns, and are never cut in two.
		{"to 用户名", "… 3s", 11, "to 用户… 3s"},
		{"to 用户名", "… 3s", 10, "to 用… 3s"},
		// A combining mark stays with its letter.
		{"cafe\u0301 bar", "…", 5, "cafe\u0301…"},
		// No room for the text: the whole is cut.
		{"acmemail: waiting", "… 3s, 14m0s left", 5, "acmem"},
		{"acmemail: waiting", "… 3s", 0, ""},
		{"acmemail: waiting", "… 3s", -1, ""},
	}
	for _, tc := range cases {
		got := fitLine(tc.text, tc.suffix, tc.cols)
		if got != tc.want {
			t.Errorf("fitLine(%q, %q, %d) = %q, want %q", tc.text, tc.suffix, tc.cols, got, tc.want)
		}
		if w := textWidth(got); w > max(tc.cols, 0) {
			t.Errorf("fitLine(%q, %q, %d) is %d columns wide", tc.text, tc.suffix, tc.cols, w)
		}
	}
}

func TestEscapeText(t *testing.T) {
	got := escapeText("a\x1b[31mb\u202ec\xffd\te\u2028f 用e\u0301")
	want := `a\x1b[31mb\u202ec` + "\ufffd" + `d\te\u2028f 用` + "e\u0301"
	if got != want {
		t.Errorf("escapeText = %q, want %q", got, want)
	}
}

// TestTimeoutError: an error of a run whose --timeout ran out says how
// long it waited, and stays what it was to errors.Is (the exit status)
// and to the hints; other errors are left alone.
func TestTimeoutError(t *testing.T) {
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	mailTimeout := fmt.Errorf("obtain: %w", acmemail.ErrMailTimeout)

	err := timeoutError(expired, mailTimeout, 15*time.Minute)
	if want := "obtain: no acceptable challenge mail arrived (gave up after 15m0s; raise --timeout to wait longer)"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if !errors.Is(err, acmemail.ErrMailTimeout) || exitCode(err) != exitMailTimeout {
		t.Errorf("errors.Is(ErrMailTimeout) = %v, exit status %d, want true and %d", errors.Is(err, acmemail.ErrMailTimeout), exitCode(err), exitMailTimeout)
	}
	if again := timeoutError(expired, err, 15*time.Minute); again != err {
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
	if err := timeoutError(expired, stuck, 90*time.Second); !strings.HasSuffix(err.Error(), "(gave up after 1m30s; raise --timeout to wait longer)") || !errors.Is(err, context.DeadlineExceeded) {
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
		if got := timeoutError(tc.ctx, tc.err, tc.timeout); got != tc.err {
			t.Errorf("%s: timeoutError = %v, want the error as it was", tc.name, got)
		}
	}
}

// TestObtainTimeoutSaysHowLong: obtain that gives up waiting for the
// challenge mail on its --timeout says how long it waited, with the
// mail-timeout exit status.
func TestObtainTimeoutSaysHowLong(t *testing.T) {
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
