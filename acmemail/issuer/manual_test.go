package issuer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/acmemail/acmemail/acmemail"
)

// lines is a Reporter that keeps what is printed.
type lines struct {
	mu    sync.Mutex
	lines []string
	ended int // EndLive calls
}

func (l *lines) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}
func (l *lines) Event(acmemail.Event) {}
func (l *lines) EndLive() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended++
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// challengeHeader is a mail that looks like a challenge (whether it is
// genuine is the order flow's to decide).
const challengeHeader = "From: ca@example.net\r\nSubject: ACME: AAAAAAAAAAAAAAAAAAAAAA\r\nTo: alice@example.test\r\n\r\n"

func TestManualReadPaste(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{in: "a\nb\n.\nrest\n", want: "a\nb\n"},
		{in: "a\r\nb\r\n.\r\n", want: "a\r\nb\r\n"},
		{in: "a\n .\n..\n.\n", want: "a\n .\n..\n"},
		{in: "a\nb", want: "a\nb"}, // Ctrl-D after a line without its end
		{in: "a\n.", want: "a\n."}, // a "." that the input's end cuts off is the mail's
		{in: "", err: "no challenge mail on stdin (it ended)"},
		{in: ".\n", want: ""},
	} {
		m := NewManualMail(strings.NewReader(c.in), nil, ManualOptions{})
		got, err := m.read()
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("read(%q) = %q, %v; want error %q", c.in, got, err, c.err)
		case c.err == "" && (err != nil || string(got) != c.want):
			t.Errorf("read(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestManualReadTooLong(t *testing.T) {
	line := strings.Repeat("x", 999) + "\n"
	in := strings.Repeat(line, maxMailSize/len(line)+1) + ".\n"
	m := NewManualMail(strings.NewReader(in), nil, ManualOptions{})
	if got, err := m.read(); err == nil || !strings.Contains(err.Error(), "the pasted mail is longer than 10485760 bytes") {
		t.Errorf("read of %d bytes = %d bytes, %v", len(in), len(got), err)
	}
	// At the limit it is taken.
	in = strings.Repeat(line, maxMailSize/len(line)) + ".\n"
	m = NewManualMail(strings.NewReader(in), nil, ManualOptions{})
	if got, err := m.read(); err != nil || len(got) != len(in)-2 {
		t.Errorf("read of %d bytes = %d bytes, %v", len(in), len(got), err)
	}
}

func TestManualReadFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "challenge.eml")
	if err := os.WriteFile(file, []byte(challengeHeader), 0o600); err != nil {
		t.Fatal(err)
	}
	// The Enter that says the file is saved; the input may also end.
	for _, in := range []string{"\n", ""} {
		m := NewManualMail(strings.NewReader(in), nil, ManualOptions{File: file})
		if got, err := m.read(); err != nil || string(got) != challengeHeader {
			t.Errorf("read after %q = %q, %v", in, got, err)
		}
	}
	m := NewManualMail(nil, nil, ManualOptions{File: filepath.Join(dir, "missing.eml")})
	if _, err := m.read(); err == nil || !strings.HasPrefix(err.Error(), "--challenge-file: ") {
		t.Errorf("read of a missing file: %v", err)
	}
	big := filepath.Join(dir, "big.eml")
	if err := os.WriteFile(big, make([]byte, maxMailSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	m = NewManualMail(strings.NewReader("\n"), nil, ManualOptions{File: big})
	if _, err := m.read(); err == nil || !strings.Contains(err.Error(), "is larger than 10485760 bytes") {
		t.Errorf("read of a file too large: %v", err)
	}
}

// FuzzManualRead: whatever is pasted, read returns without panicking, at
// most the size limit, and never the terminating "." line.
func FuzzManualRead(f *testing.F) {
	f.Add([]byte("Subject: ACME: abc\r\nFrom: a@b\r\n\r\nbody\r\n.\r\nrest\n"))
	f.Add([]byte("no newline at the end"))
	f.Add([]byte(".\n"))
	f.Add([]byte("\n.\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m := &ManualMail{in: bufio.NewReader(bytes.NewReader(in)), prog: quiet{}}
		got, err := m.read()
		if err != nil {
			return
		}
		if len(got) > maxMailSize {
			t.Fatalf("read returned %d bytes, more than the limit", len(got))
		}
		if !bytes.HasPrefix(in, got) {
			t.Fatalf("read returned bytes that were not read in order")
		}
		for _, line := range strings.Split(string(got), "\n") {
			if strings.TrimRight(line, "\r") == "." && len(got) < len(in) {
				t.Fatalf("read included the terminating dot line: %q", got)
			}
		}
	})
}

// TestManualSend: the reply is printed with LF line ends between the
// markers, then the user's answer decides.
func TestManualSend(t *testing.T) {
	reply := []byte("From: alice@example.test\r\nTo: ca@example.net\r\nSubject: Re: ACME: x\r\n\r\nbody\r\n")
	want := ManualReplyBegin + "\nFrom: alice@example.test\nTo: ca@example.net\nSubject: Re: ACME: x\n\nbody\n" + ManualReplyEnd + "\n"
	for _, c := range []struct {
		in  string
		yes bool
		err string
	}{
		{in: "\n"},
		{in: " Yes\r\n"},
		{in: "sent"}, // the input ends after the answer
		{in: "abort\n", err: "you did not confirm that the reply was sent"},
		{in: "", err: "no confirmation that the reply was sent (stdin ended; use --yes in scripts)"},
		{in: "", yes: true},
	} {
		var out bytes.Buffer
		prog := &lines{}
		m := NewManualMail(strings.NewReader(c.in), &out, ManualOptions{Yes: c.yes, Progress: prog})
		err := m.Send(context.Background(), "alice@example.test", []string{"ca@example.net"}, reply)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("answer %q: %v, want %q", c.in, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("answer %q: %v", c.in, err)
		}
		if out.String() != want {
			t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
		}
		if !strings.Contains(prog.String(), "Send this reply from alice@example.test to ca@example.net") || prog.ended != 1 {
			t.Errorf("progress (EndLive %d):\n%s", prog.ended, prog)
		}
		if c.yes != strings.Contains(prog.String(), "--yes: not waiting") {
			t.Errorf("--yes %v, progress:\n%s", c.yes, prog)
		}
	}
}

// TestManualNext: nothing is read before the order flow waits for the
// mail; a paste that is no challenge is asked for again, and so is a
// mail the flow refused.
func TestManualNext(t *testing.T) {
	ctx := context.Background()
	paste := "Subject: hello\n\nhi\n.\n" + challengeHeader + ".\n" + challengeHeader + ".\n"
	prog := &lines{}
	m := NewManualMail(strings.NewReader(paste), nil, ManualOptions{Email: "alice@example.test", Progress: prog})

	early, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Next(early); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next before the flow waits: %v", err)
	}
	m.Observe(acmemail.Event{Kind: acmemail.EventWaitingForMail})
	m.Observe(acmemail.Event{Kind: acmemail.EventWaitingForMail}) // again: no panic
	got, err := m.Next(ctx)
	if err != nil || string(got) != challengeHeader {
		t.Fatalf("Next = %q, %v", got, err)
	}
	for _, want := range []string{"the challenge mail to alice@example.test has the Subject", "paste it here", "that is not an RFC 8823 challenge mail"} {
		if !strings.Contains(prog.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, prog)
		}
	}
	m.Observe(acmemail.Event{Kind: acmemail.EventIgnoredMail, Message: "forged"})
	got, err = m.Next(ctx)
	if err != nil || string(got) != challengeHeader {
		t.Fatalf("Next after a refusal = %q, %v", got, err)
	}
	if !strings.Contains(prog.String(), "that mail was not accepted (see above); paste the genuine challenge mail again") {
		t.Errorf("progress:\n%s", prog)
	}

	// From a file, a refusal ends the run.
	file := filepath.Join(t.TempDir(), "challenge.eml")
	if err := os.WriteFile(file, []byte(challengeHeader), 0o600); err != nil {
		t.Fatal(err)
	}
	m = NewManualMail(strings.NewReader("\n"), nil, ManualOptions{File: file})
	m.Observe(acmemail.Event{Kind: acmemail.EventWaitingForMail})
	if _, err := m.Next(ctx); err != nil {
		t.Fatal(err)
	}
	m.Observe(acmemail.Event{Kind: acmemail.EventIgnoredMail, Message: "forged"})
	if _, err := m.Next(ctx); err == nil || !strings.Contains(err.Error(), "is not an acceptable challenge (see above); nothing was sent") {
		t.Errorf("Next after a refused file: %v", err)
	}
	// A saved file that is no challenge at all ends it too.
	if err := os.WriteFile(file, []byte("Subject: hello\r\n\r\nhi\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m = NewManualMail(strings.NewReader("\n"), nil, ManualOptions{File: file})
	m.Observe(acmemail.Event{Kind: acmemail.EventWaitingForMail})
	if _, err := m.Next(ctx); err == nil || !strings.Contains(err.Error(), "is not an RFC 8823 challenge mail") {
		t.Errorf("Next of a file that is no challenge: %v", err)
	}
}
