package mailbox_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acmemail/acmemail/mailbox"
)

// TestShared: the subscribers of one shared Watcher each get every message
// that arrived after they subscribed, in order, over one connection; a
// subscriber's Close ends only its subscription; Close of the Shared ends
// them all.
func TestShared(t *testing.T) {
	t.Parallel()
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	s := mailbox.NewShared(watch(t, srv.Config(t)), testLogger(t))
	a, b := s.Subscribe(nil), s.Subscribe(nil)
	srv.Deliver(t, testMessage(1))
	srv.Deliver(t, testMessage(2))
	for _, w := range []*mailbox.Watcher{a, b} {
		for i := 1; i <= 2; i++ {
			if got := next(t, w, 10*time.Second); got != testMessage(i) {
				t.Fatalf("message %d: %q", i, got)
			}
		}
	}
	// c subscribes later: it gets only what arrives after.
	c := s.Subscribe(nil)
	srv.Deliver(t, testMessage(3))
	for _, w := range []*mailbox.Watcher{a, b, c} {
		if got := next(t, w, 10*time.Second); got != testMessage(3) {
			t.Fatalf("message 3: %q", got)
		}
	}
	if n := srv.ln.Accepted(); n != 1 {
		t.Errorf("%d IMAP connections for three subscribers, want 1", n)
	}
	if n := s.Subscribers(); n != 3 {
		t.Errorf("Subscribers() = %d, want 3", n)
	}
	a.Close()
	if _, err := a.Next(t.Context()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Next after the subscription's Close = %v, want net.ErrClosed", err)
	}
	srv.Deliver(t, testMessage(4))
	if got := next(t, b, 10*time.Second); got != testMessage(4) {
		t.Errorf("b after a's Close: %q", got)
	}
	if s.Subscribers() != 2 || s.Err() != nil {
		t.Errorf("after one Close: %d subscribers, Err %v", s.Subscribers(), s.Err())
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Next(t.Context()) // message 4, then waits
		if err == nil {
			_, err = c.Next(t.Context())
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("a waiting Next after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting Next did not return after Close")
	}
	if !errors.Is(s.Err(), net.ErrClosed) {
		t.Errorf("Err() after Close = %v", s.Err())
	}
}

// TestSharedConcurrentWaiters: many waiters on one connection, each
// waiting for its own message among everyone's, all get theirs, however
// the deliveries interleave with their waits.
func TestSharedConcurrentWaiters(t *testing.T) {
	t.Parallel()
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	s := mailbox.NewShared(watch(t, srv.Config(t)), testLogger(t))
	t.Cleanup(func() { s.Close() })
	const n = 20
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var got atomic.Int32
	subs := make([]*mailbox.Watcher, n)
	for i := range subs {
		if i%2 == 0 {
			// Half of them skip everyone else's mail: their first
			// message is their own.
			subs[i] = s.Subscribe(func(raw []byte) bool { return string(raw) != testMessage(i) })
		} else {
			subs[i] = s.Subscribe(nil)
		}
	}
	for i, w := range subs {
		wg.Go(func() {
			defer w.Close()
			for {
				raw, err := w.Next(ctx)
				if err != nil {
					t.Errorf("waiter %d: %v", i, err)
					return
				}
				if string(raw) == testMessage(i) {
					got.Add(1)
					return
				}
				if i%2 == 0 {
					t.Errorf("waiter %d got %q, which its skip function refuses", i, raw)
				}
			}
		})
	}
	order := make([]int, n)
	for i := range order {
		order[i] = n - 1 - i
	}
	for _, i := range order {
		srv.Deliver(t, testMessage(i))
		if i%3 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	wg.Wait()
	if got.Load() != n {
		t.Errorf("%d of %d waiters got their message", got.Load(), n)
	}
	if n := srv.ln.Accepted(); n != 1 {
		t.Errorf("%d IMAP connections, want 1", n)
	}
	if s.Subscribers() != 0 {
		t.Errorf("%d subscribers left", s.Subscribers())
	}
}

// TestLoginLimiter: with a Limiter of 2, no more than two of several
// watchers of one server are logging in at once, and all of them log in.
func TestLoginLimiter(t *testing.T) {
	t.Parallel()
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	lim := &countingLimiter{Limiter: mailbox.NewLimiter(2)}
	cfg := srv.Config(t)
	cfg.Logins = lim
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			w, err := mailbox.Watch(ctx, cfg)
			if err != nil {
				t.Error(err)
				return
			}
			w.Close()
		})
	}
	wg.Wait()
	if lim.max.Load() > 2 || lim.total.Load() != 8 {
		t.Errorf("at most %d logins at once (want at most 2), %d in all (want 8)", lim.max.Load(), lim.total.Load())
	}
	// A context that ends while waiting for a slot ends the wait.
	full := mailbox.NewLimiter(1)
	release, err := full.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	cfg.Logins = full
	if _, err := mailbox.Watch(ctx, cfg); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Watch with no login slot free = %v, want the context's error", err)
	}
}

type countingLimiter struct {
	mailbox.Limiter
	cur, max, total atomic.Int32
}

func (l *countingLimiter) Acquire(ctx context.Context) (func(), error) {
	release, err := l.Limiter.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	n := l.cur.Add(1)
	l.total.Add(1)
	for {
		m := l.max.Load()
		if n <= m || l.max.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(20 * time.Millisecond) // hold the slot long enough for the others to pile up
	return func() { l.cur.Add(-1); release() }, nil
}
