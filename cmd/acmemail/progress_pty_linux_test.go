//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestWaitingLineOneRowOnPTY: obtain on a terminal 40, 80 and 200 columns
// wide keeps its live "waiting … Ns" line on one row: each redraw
// overwrites the last, none wraps, and once the mail comes the line is
// gone. acmemail (the test binary running main, re-executed) writes its
// stderr to a pseudo-terminal of that size; the bytes read from the
// master side are played on a model of such a terminal.
func TestWaitingLineOneRowOnPTY(t *testing.T) {
	t.Parallel()
	for _, cols := range []int{40, 80, 200} {
		t.Run(strconv.Itoa(cols), func(t *testing.T) {
			t.Parallel()
			out := obtainOnPTY(t, cols)
			scr := playTerminal(out, cols)
			draws := 0
			for _, ow := range scr.overwritten {
				if !strings.Contains(ow.text, "acmemail: waiting") {
					continue // a clear of nothing
				}
				draws++
				if ow.row != ow.lineStart {
					t.Errorf("the waiting line took rows %d to %d, want one row:\n%s", ow.lineStart, ow.row, ow.text)
				}
				if n := utf8.RuneCountInString(ow.text); n > cols-1 {
					t.Errorf("the waiting line is %d columns wide on a %d-column terminal (want at most %d, the cursor in the last column wraps):\n%s", n, cols, cols-1, ow.text)
				}
				if !liveSuffix.MatchString(ow.text) {
					t.Errorf("the waiting line does not end in the time waited and left: %q", ow.text)
				}
			}
			// --mail-wait 3s: the line is drawn, then redrawn each second
			// until the challenge is POSTed and its mail comes.
			if draws < 2 {
				t.Errorf("the waiting line was drawn %d times, want a draw and a redraw at least; terminal:\n%s", draws, scr.String())
			}
			for i, r := range scr.rows {
				if liveTime.MatchString(strings.TrimRight(string(r), " ")) {
					t.Errorf("row %d still shows a waiting line after the run: %q", i, string(r))
				}
			}
			if !strings.Contains(scr.String(), "acmemail: saved the certificate") {
				t.Errorf("the terminal does not show the end of the run:\n%s", scr.String())
			}
		})
	}
}

// liveSuffix is the end of a drawn waiting line: the time waited and the
// time left before --timeout.
var liveSuffix = regexp.MustCompile(`… [0-9hms.]+, [0-9hms.]+ left$`)

// liveTime is what is left of a waiting line not erased.
var liveTime = regexp.MustCompile(`… [0-9]`)

// obtainOnPTY runs acmemail obtain against a sandbox that mails the
// challenge only when it is POSTed, with stderr on a pseudo-terminal cols
// columns wide, and returns what the terminal was sent.
func obtainOnPTY(t *testing.T, cols int) []byte {
	t.Helper()
	w, env := world(t, sandbox.Options{MailTiming: sandbox.MailAfterChallenge})
	master, slave := openPTY(t, cols)
	cmd := exec.Command(os.Args[0], obtainArgs(w, "--mail-wait", "3s")...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ACMEMAIL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, actAsMain+"=1", "XDG_CONFIG_HOME="+t.TempDir())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = slave
	// A session of its own: the developer's terminal is not the child's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close() // the master reads EIO once the child's copy closes too
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	got := make(chan []byte)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got <- b.Bytes()
	}()
	werr := cmd.Wait()
	out := <-got
	if werr != nil {
		t.Fatalf("acmemail obtain: %v\nterminal:\n%s", werr, playTerminal(out, cols).String())
	}
	if !strings.Contains(stdout.String(), ".p12") {
		t.Errorf("stdout does not name the PKCS#12 file: %q", stdout.String())
	}
	return out
}

// openPTY opens a pseudo-terminal of cols columns and 24 rows.
func openPTY(t *testing.T, cols int) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("the pseudo-terminal's number: %v", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: uint16(cols)}); err != nil {
		t.Fatalf("set the pseudo-terminal's size: %v", err)
	}
	return master, slave
}

// screen is a terminal of a fixed width, with all its rows kept (the
// scrolled-off ones too), after the bytes it was sent.
type screen struct {
	cols      int
	rows      [][]rune
	row, col  int
	wrapNext  bool // the last column was written: the next character wraps
	lineStart int  // the row the cursor was on after the last CR or LF
	// overwritten lists each carriage return that was not the first half
	// of a CR LF: what it returned over, to be overwritten.
	overwritten []overwrite
}

type overwrite struct {
	lineStart, row int    // the rows the text returned over spans
	text           string // their text, trailing blanks trimmed
}

// playTerminal interprets out as a terminal of cols columns does: printed
// characters (one column each) autowrap at the width, CR returns to
// column 0, LF goes down a row, CSI K erases in the line, other escape
// sequences and controls change nothing here.
func playTerminal(out []byte, cols int) *screen {
	s := &screen{cols: cols, rows: [][]rune{blankRow(cols)}}
	for i := 0; i < len(out); {
		r, size := utf8.DecodeRune(out[i:])
		i += size
		switch {
		case r == '\r':
			if i >= len(out) || out[i] != '\n' {
				var lines []string
				for _, row := range s.rows[s.lineStart : s.row+1] {
					lines = append(lines, string(row))
				}
				s.overwritten = append(s.overwritten, overwrite{s.lineStart, s.row, strings.TrimRight(strings.Join(lines, ""), " ")})
			}
			s.col, s.wrapNext, s.lineStart = 0, false, s.row
		case r == '\n':
			s.down()
			s.wrapNext, s.lineStart = false, s.row
		case r == '\b':
			s.col, s.wrapNext = max(s.col-1, 0), false
		case r == 0x1b:
			if i < len(out) && out[i] == '[' {
				j := i + 1
				for j < len(out) && (out[j] < 0x40 || out[j] > 0x7e) {
					j++
				}
				if j < len(out) && out[j] == 'K' {
					s.eraseInLine(string(out[i+1 : j]))
				}
				i = j + 1
			} else {
				i++ // a two-byte escape
			}
		case r < 0x20 || r == 0x7f:
		default:
			if s.wrapNext {
				s.down()
				s.col, s.wrapNext = 0, false
			}
			s.rows[s.row][s.col] = r
			if s.col == cols-1 {
				s.wrapNext = true
			} else {
				s.col++
			}
		}
	}
	return s
}

func blankRow(cols int) []rune { return []rune(strings.Repeat(" ", cols)) }

func (s *screen) down() {
	s.row++
	if s.row == len(s.rows) {
		s.rows = append(s.rows, blankRow(s.cols))
	}
}

func (s *screen) eraseInLine(param string) {
	from, to := s.col, s.cols // 0 or none: to the end of the line
	switch param {
	case "1":
		from, to = 0, s.col+1
	case "2":
		from = 0
	}
	for c := from; c < to; c++ {
		s.rows[s.row][c] = ' '
	}
}

// String is the screen's rows, scrolled-off ones included, each ending
// in "|" where the terminal's width ends.
func (s *screen) String() string {
	var b strings.Builder
	for _, r := range s.rows {
		fmt.Fprintf(&b, "%s|\n", string(r))
	}
	return b.String()
}

// TestPlayTerminal checks the terminal model the test above relies on.
func TestPlayTerminal(t *testing.T) {
	// A line as wide as the terminal stays on its row until the next
	// character; CR LF is a new line, not a return to overwrite.
	s := playTerminal([]byte("hello\r\n0123456789\rab\033[K\r\nend"), 10)
	want := "hello     |\nab        |\nend       |\n"
	if s.String() != want {
		t.Errorf("screen:\n%swant:\n%s", s.String(), want)
	}
	if len(s.overwritten) != 1 || s.overwritten[0] != (overwrite{1, 1, "0123456789"}) {
		t.Errorf("overwritten = %+v, want one return over row 1", s.overwritten)
	}
	// One column more wraps: the CR returns over two rows.
	s = playTerminal([]byte("0123456789x\rab\033[K"), 10)
	if len(s.overwritten) != 1 || s.overwritten[0] != (overwrite{0, 1, "0123456789x"}) {
		t.Errorf("overwritten = %+v, want one return over rows 0 and 1", s.overwritten)
	}
}
