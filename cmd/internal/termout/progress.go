// Package termout is how acmemail writes to a terminal or a log: progress
// lines with a live line while it waits, and text from mails, CAs and
// servers escaped before it is shown.
package termout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/term"
	"golang.org/x/text/width"

	"github.com/acmemail/acmemail/acmemail"
)

// heartbeatInterval is how often a run that is not on a terminal (cron, a
// log file) says it is still waiting for the challenge mail.
const heartbeatInterval = 30 * time.Second

// defaultColumns is the width assumed for a terminal that does not say
// how wide it is.
const defaultColumns = 80

// Progress prints one line per step to stderr. While the challenge mail is
// awaited on a terminal, it keeps a live line with the elapsed time,
// redrawn in place every second and cut to the terminal's width; off a
// terminal it prints a heartbeat line now and then instead.
type Progress struct {
	mu sync.Mutex
	w  io.Writer
	// TTY: w is a terminal (the live line is drawn).
	TTY bool
	// columns reports the terminal's width, 0 when unknown. It is asked
	// at each draw of the live line, so a resized window is followed.
	columns func() int
	// Heartbeat is how often a line off a terminal says the wait goes
	// on; 0: never.
	Heartbeat time.Duration
	// Deadline is when the run gives up (its --timeout), zero when it
	// has none: the waiting lines say how long is left.
	Deadline time.Time
	// Prefix, if set, starts every line after "acmemail: " (escaped):
	// the address of one of several renewals at once.
	Prefix string

	live  string    // text of the live line, "" when none (escaped)
	since time.Time // when the live line started
	stop  chan struct{}
}

// New returns the Progress of the writer w (stderr).
func New(w io.Writer) *Progress {
	p := &Progress{w: w, Heartbeat: heartbeatInterval}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.TTY = true
		p.columns = func() int {
			cols, _, err := term.GetSize(int(f.Fd()))
			if err != nil {
				return 0
			}
			return cols
		}
	}
	return p
}

// Printf prints one line, escaped.
func (p *Progress) Printf(format string, args ...any) {
	// Messages may carry what a mail, a CA or a server said: escaped.
	line := EscapeLines(fmt.Sprintf(format, args...))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintf(p.w, "acmemail: %s%s\n", Escape(p.Prefix), line)
	p.drawLocked()
}

// Event shows an event of the order flow.
func (p *Progress) Event(e acmemail.Event) {
	switch e.Kind {
	case acmemail.EventWaitingForMail:
		p.Printf("%s", e.Message)
		p.startLive(e.Message)
	case acmemail.EventChallengeMail, acmemail.EventReplySent:
		p.EndLive()
		p.Printf("%s", e.Message)
	default:
		p.Printf("%s", e.Message)
	}
}

// startLive starts the live line (on a terminal) or the heartbeat (off
// one) for the wait text describes.
func (p *Progress) startLive(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		return
	}
	every := time.Second
	if !p.TTY {
		if p.Heartbeat <= 0 || p.w == io.Discard {
			return
		}
		every = p.Heartbeat
	}
	p.live, p.since, p.stop = Escape(text), time.Now(), make(chan struct{})
	stop := p.stop
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.mu.Lock()
				if p.stop != stop {
					// Ended while this tick waited for the lock.
					p.mu.Unlock()
					return
				}
				if p.TTY {
					p.clearLocked()
					p.drawLocked()
				} else {
					fmt.Fprintf(p.w, "acmemail: %sstill %s (%s)\n", Escape(p.Prefix), p.live, p.waitedLocked(" so far"))
				}
				p.mu.Unlock()
			}
		}
	}()
	p.drawLocked()
}

// EndLive ends the live line or the heartbeat.
func (p *Progress) EndLive() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		close(p.stop)
		p.stop = nil
	}
	p.clearLocked()
	p.live = ""
}

func (p *Progress) clearLocked() {
	if p.TTY && p.live != "" {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// drawLocked writes the live line, cut to one column less than the
// terminal is wide so that the cursor never wraps to the next row (a
// wrapped line is not overwritten by the next draw).
func (p *Progress) drawLocked() {
	if !p.TTY || p.live == "" {
		return
	}
	cols := 0
	if p.columns != nil {
		cols = p.columns()
	}
	if cols <= 0 {
		cols = defaultColumns
	}
	fmt.Fprint(p.w, FitLine("acmemail: "+p.live, "… "+p.waitedLocked(""), cols-1))
}

// waitedLocked says how long the wait has lasted and, when the run has a
// deadline, how long is left: "12s" or "12s, 14m48s left" (with after
// following the first duration).
func (p *Progress) waitedLocked(after string) string {
	s := time.Since(p.since).Round(time.Second).String() + after
	if !p.Deadline.IsZero() {
		left := max(time.Until(p.Deadline).Round(time.Second), 0)
		s += ", " + left.String() + " left"
	}
	return s
}

// FitLine returns text followed by suffix in at most cols columns: text is
// cut (at a character's boundary) to make room for suffix, whose "…" then
// marks the cut; only when even suffix does not fit is the whole cut.
func FitLine(text, suffix string, cols int) string {
	cols = max(cols, 0)
	if textWidth(text)+textWidth(suffix) <= cols {
		return text + suffix
	}
	if room := cols - textWidth(suffix); room > 0 {
		return strings.TrimRight(cutText(text, room), " ") + suffix
	}
	return cutText(text+suffix, cols)
}

// cutText returns the longest prefix of s, ending at a character's
// boundary, that is at most cols columns wide.
func cutText(s string, cols int) string {
	used := 0
	for i, r := range s {
		w := runeColumns(r)
		if used+w > cols {
			return s[:i]
		}
		used += w
	}
	return s
}

func textWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeColumns(r)
	}
	return n
}

// runeColumns is how many columns a terminal gives r: 2 for East Asian
// wide and fullwidth characters, 0 for combining marks, else 1 (control
// characters never reach it: escapeText escapes them).
func runeColumns(r rune) int {
	if unicode.In(r, unicode.Mn, unicode.Me) {
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// Escape makes s safe to draw on a terminal: control, format (bidi)
// and other invisible characters are written as Go escapes (\x1b,
// \u202e), bytes that are not UTF-8 as U+FFFD. The messages are
// acmemail's own, but some carry what a CA or a mail said.
func Escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == ' ' || unicode.IsGraphic(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRuneToASCII(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

// EscapeLines is Escape for text of several lines: the line breaks
// stay, everything else that is not printable is escaped.
func EscapeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Escape(strings.TrimSuffix(l, "\r"))
	}
	return strings.Join(lines, "\n")
}

// gaveUpError is an error of a run that stopped waiting on its --timeout.
type gaveUpError struct {
	err     error
	timeout time.Duration
}

func (e *gaveUpError) Error() string {
	return fmt.Sprintf("%v (gave up after %s; raise --timeout to wait longer)", e.err, e.timeout)
}

func (e *gaveUpError) Unwrap() error { return e.err }

// TimeoutError adds to err, when the run ended because ctx (the run's
// context, with its --timeout) reached its deadline, how long it waited.
// It returns any other error as it is. errors.Is and errors.As see
// through it.
func TimeoutError(ctx context.Context, err error, timeout time.Duration) error {
	if err == nil || timeout <= 0 || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	if !errors.Is(err, acmemail.ErrMailTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.As(err, new(*gaveUpError)) {
		return err
	}
	return &gaveUpError{err: err, timeout: timeout}
}
