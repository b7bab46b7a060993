package sandbox

import (
	"sync"
	"time"
)

// later runs deliveries after a delay (Options.MailDelay, ReplyDelay): each
// on a timer of its own, so a delayed message holds up neither the CA's
// request that sent it nor the submission that accepted it, nor any other
// delivery. Deliveries still pending when the world closes are dropped.
type later struct {
	mu     sync.Mutex
	closed bool
	timers map[*time.Timer]struct{}
	wg     sync.WaitGroup // deliveries running
}

// after runs fn d from now, unless the world closes first. It reports
// false, without running fn, when the world is closed already.
func (l *later) after(d time.Duration, fn func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.timers == nil {
		l.timers = map[*time.Timer]struct{}{}
	}
	var t *time.Timer
	// The callback takes l.mu before it looks at t, so it sees t set.
	t = time.AfterFunc(d, func() {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return
		}
		delete(l.timers, t)
		l.wg.Add(1)
		l.mu.Unlock()
		defer l.wg.Done()
		fn()
	})
	l.timers[t] = struct{}{}
	return true
}

// pending is the number of deliveries waiting for their time.
func (l *later) pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.timers)
}

// close drops the deliveries still waiting and waits for those running.
func (l *later) close() {
	l.mu.Lock()
	l.closed = true
	for t := range l.timers {
		t.Stop()
	}
	l.timers = nil
	l.mu.Unlock()
	l.wg.Wait()
}
