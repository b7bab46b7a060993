package termout

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/acmemail/acmemail/acmemail"
)

// output returns what p has written to buf so far (p writes under its
// lock, from its ticker too).
func (p *Progress) output(buf *bytes.Buffer) string {
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
			p := New(&buf)
			if p.TTY {
				t.Fatal("a buffer is a terminal")
			}
			p.Heartbeat = 10 * time.Millisecond
			want := regexp.MustCompile(`^acmemail: still waiting for the challenge mail to alice@example\.test from ca@example\.test\\x1b\[2J \([0-9hms.]+ so far\)$`)
			if deadline {
				p.Deadline = time.Now().Add(time.Hour)
				want = regexp.MustCompile(`^acmemail: still waiting for the challenge mail to alice@example\.test from ca@example\.test\\x1b\[2J \([0-9hms.]+ so far, [0-9hms.]+ left\)$`)
			}
			// The From a CA announces is in the text: its control
			// characters are escaped.
			p.Event(acmemail.Event{Kind: acmemail.EventWaitingForMail, Message: "waiting for the challenge mail to alice@example.test from ca@example.test\x1b[2J"})
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
			p.Event(acmemail.Event{Kind: acmemail.EventChallengeMail, Message: "received the challenge mail"})
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
			time.Sleep(5 * p.Heartbeat)
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
	p := &Progress{w: &buf, TTY: true, Deadline: time.Now().Add(15 * time.Minute)}
	p.columns = func() int { asked = append(asked, cols); return cols } // under p.mu
	p.Event(acmemail.Event{Kind: acmemail.EventWaitingForMail,
		Message: "waiting for the challenge mail to 用户名称@例子.测试 from e\u0301\x1b]0;title\x07ca@example.test"})
	for _, c := range []int{12, 40, 200, 3} {
		p.mu.Lock()
		cols = c
		p.mu.Unlock()
		p.Printf("step at %d columns", c) // clears and redraws the live line
	}
	p.EndLive()
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
		got := FitLine(tc.text, tc.suffix, tc.cols)
		if got != tc.want {
			t.Errorf("FitLine(%q, %q, %d) = %q, want %q", tc.text, tc.suffix, tc.cols, got, tc.want)
		}
		if w := textWidth(got); w > max(tc.cols, 0) {
			t.Errorf("FitLine(%q, %q, %d) is %d columns wide", tc.text, tc.suffix, tc.cols, w)
		}
	}
}

func TestEscapeText(t *testing.T) {
	got := Escape("a\x1b[31mb\u202ec\xffd\te\u2028f 用e\u0301")
	want := `a\x1b[31mb\u202ec` + "\ufffd" + `d\te\u2028f 用` + "e\u0301"
	if got != want {
		t.Errorf("escapeText = %q, want %q", got, want)
	}
}
