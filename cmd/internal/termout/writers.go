package termout

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// PrefixWriter writes each complete line with a prefix, escaped.
type PrefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
	buf    []byte
}

// NewPrefixWriter returns a PrefixWriter of w.
func NewPrefixWriter(w io.Writer, prefix string) *PrefixWriter {
	return &PrefixWriter{w: w, prefix: []byte(prefix)}
}

func (p *PrefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := Escape(string(bytes.TrimRight(p.buf[:i], "\r")))
		out := append(append(append([]byte{}, p.prefix...), line...), '\n')
		if _, err := p.w.Write(out); err != nil {
			return len(b), nil // tracing is best effort
		}
		p.buf = p.buf[i+1:]
	}
	if len(p.buf) > 64<<10 { // a line too long to hold: flush it as is
		p.w.Write(append(append(append([]byte{}, p.prefix...), Escape(string(p.buf))...), '\n'))
		p.buf = p.buf[:0]
	}
	return len(b), nil
}

// LockedWriter serialises writes to w under mu, which writers that share w
// (renew's progress displays and its own lines) share too.
type LockedWriter struct {
	Mu *sync.Mutex
	W  io.Writer
}

func (l *LockedWriter) Write(p []byte) (int, error) {
	l.Mu.Lock()
	defer l.Mu.Unlock()
	return l.W.Write(p)
}

// Logger is the log of a run at verbosity verbose (-v 1, -vv 2) on w:
// nothing at 0, steps at 1, protocol details at 2; no timestamps (the
// lines go to a terminal or to cron's mail, which have their own).
func Logger(w io.Writer, verbose int) *slog.Logger {
	if verbose <= 0 {
		return slog.New(slog.DiscardHandler)
	}
	lvl := slog.LevelInfo
	if verbose >= 2 {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: lvl,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// Wrap fills text into lines of at most 80 columns, the lines after the
// first indented by indent.
func Wrap(text, indent string) string {
	var b strings.Builder
	col := len(indent)
	for i, w := range strings.Fields(text) {
		switch {
		case i == 0:
		case col+1+len(w) > 80:
			b.WriteString("\n" + indent)
			col = len(indent)
		default:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}
