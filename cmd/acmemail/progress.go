package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/acmemail/acmemail/acmemail"
)

// progress prints one line per step to stderr. While the challenge mail is
// awaited on a terminal, it keeps a live line with the elapsed time.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	live  string    // text of the live line, "" when none
	since time.Time // when the live line started
	stop  chan struct{}
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintf(p.w, "acmemail: "+format+"\n", args...)
	p.drawLocked()
}

func (p *progress) event(e acmemail.Event) {
	switch e.Kind {
	case acmemail.EventWaitingForMail:
		p.printf("%s", e.Message)
		p.startLive(e.Message)
	case acmemail.EventChallengeMail, acmemail.EventReplySent:
		p.endLive()
		p.printf("%s", e.Message)
	default:
		p.printf("%s", e.Message)
	}
}

func (p *progress) startLive(text string) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		return
	}
	p.live, p.since, p.stop = text, time.Now(), make(chan struct{})
	stop := p.stop
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.clearLocked()
				p.drawLocked()
				p.mu.Unlock()
			}
		}
	}()
	p.drawLocked()
}

func (p *progress) endLive() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		close(p.stop)
		p.stop = nil
	}
	p.clearLocked()
	p.live = ""
}

func (p *progress) clearLocked() {
	if p.tty && p.live != "" {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func (p *progress) drawLocked() {
	if p.tty && p.live != "" {
		fmt.Fprintf(p.w, "acmemail: %s… %s", p.live, time.Since(p.since).Round(time.Second))
	}
}
