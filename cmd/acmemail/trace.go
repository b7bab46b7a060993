package main

import (
	"bytes"
	"io"
	"sync"
)

// protocolTrace returns where the raw IMAP or SMTP protocol goes at -vv:
// stderr, each line prefixed with "acmemail: imap| ". The mailbox package
// has already redacted the login exchange and masked the secrets. At lower
// verbosity it returns nil (no trace).
func (g *globals) protocolTrace(proto string) io.Writer {
	if g.verbose < 2 {
		return nil
	}
	return &prefixWriter{w: g.stderr, prefix: []byte("acmemail: " + proto + "| ")}
}

// prefixWriter writes each complete line with a prefix.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := escapeText(string(bytes.TrimRight(p.buf[:i], "\r")))
		out := append(append(append([]byte{}, p.prefix...), line...), '\n')
		if _, err := p.w.Write(out); err != nil {
			return len(b), nil // tracing is best effort
		}
		p.buf = p.buf[i+1:]
	}
	if len(p.buf) > 64<<10 { // a line too long to hold: flush it as is
		p.w.Write(append(append(append([]byte{}, p.prefix...), escapeText(string(p.buf))...), '\n'))
		p.buf = p.buf[:0]
	}
	return len(b), nil
}

// lockedWriter serialises writes to w under mu, which writers that share w
// (renew's progress displays and its own lines) share too.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
