package termout

import (
	"bytes"
	"io"
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
