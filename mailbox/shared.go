package mailbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// Bounds of what a Shared holds for subscribers that have not taken it yet.
// A subscriber that falls further behind loses the oldest messages (with a
// log line); a waiter gets its challenge mail within moments of its
// arrival, so only a flood of other mail gets there.
const (
	sharedMaxMessages = 4096
	sharedMaxBytes    = 64 << 20
)

// Shared reads one mailbox through one [Watcher], for several waiters at
// once, such as the addresses of one renew run that live in the same
// mailbox: one IMAP connection serves them all. Every message the Watcher
// returns is handed to each subscriber that was subscribed when it was
// read, in the order read; each waiter takes the mail it is waiting for
// and passes over the rest, as it does with a Watcher of its own.
//
// A Shared is safe for concurrent use.
type Shared struct {
	w   *Watcher
	log *slog.Logger

	ctx    context.Context // ends the read in progress at Close
	cancel context.CancelFunc
	want   chan struct{} // a subscriber waits for a message not read yet
	done   chan struct{} // the reader returned

	mu      sync.Mutex
	msgs    [][]byte // read, not yet taken by every subscriber
	base    uint64   // the sequence number of msgs[0]
	size    int64    // bytes in msgs
	subs    map[*subscriber]struct{}
	err     error         // the Watcher failed for good, or Close
	changed chan struct{} // closed and replaced when msgs or err change
}

type subscriber struct {
	s      *Shared
	skip   func([]byte) bool
	next   uint64 // sequence number of the next message to return
	closed bool   // guarded by s.mu
}

// NewShared starts reading w for subscribers; it owns w from now on, and
// [Shared.Close] closes it.
func NewShared(w *Watcher, log *slog.Logger) *Shared {
	s := &Shared{
		w: w, log: discardLogger(log),
		want: make(chan struct{}, 1), done: make(chan struct{}),
		subs: map[*subscriber]struct{}{}, changed: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.read()
	return s
}

// Subscribe returns a Watcher whose Next returns the messages read from
// the shared mailbox from now on (raw bytes shared with the other
// subscribers: they must not be modified), except those skip (if not nil)
// reports true for: mail for another of the waiters, say. Its Close ends
// the subscription, not the shared connection. Expect and UsesIdle are
// those of the shared Watcher.
func (s *Shared) Subscribe(skip func(raw []byte) bool) *Watcher {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := &subscriber{s: s, next: s.base + uint64(len(s.msgs)), skip: skip}
	s.subs[sub] = struct{}{}
	return &Watcher{sub: sub, cfg: s.w.cfg}
}

// Subscribers is the number of subscriptions not closed.
func (s *Shared) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// Err is the error that ended the shared Watcher (nil while it reads): a
// Shared that failed serves no new subscriber.
func (s *Shared) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends every subscription and closes the Watcher. It may be called
// more than once.
func (s *Shared) Close() error {
	err := s.w.Close() // a read in progress ends with errWatcherClosed
	s.cancel()
	<-s.done
	s.setErr(errWatcherClosed)
	return err
}

// read takes messages from the Watcher while a subscriber waits for one.
func (s *Shared) read() {
	defer close(s.done)
	for {
		select {
		case <-s.want:
		case <-s.ctx.Done():
			return
		}
		raw, err := s.w.Next(s.ctx)
		if err != nil {
			s.setErr(err)
			return
		}
		s.mu.Lock()
		if len(s.subs) > 0 {
			s.msgs = append(s.msgs, raw)
			s.size += int64(len(raw))
			for len(s.msgs) > sharedMaxMessages || s.size > sharedMaxBytes {
				s.log.Warn("imap shared mailbox: a message not yet taken by every waiter is dropped", "size", len(s.msgs[0]))
				s.dropFirst()
			}
		} else {
			s.base++ // nobody was subscribed when it was read
		}
		s.notify()
		s.mu.Unlock()
	}
}

func (s *Shared) setErr(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		s.notify()
	}
	s.mu.Unlock()
}

// notify wakes the waiting subscribers; s.mu must be held.
func (s *Shared) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// dropFirst forgets msgs[0]; s.mu must be held.
func (s *Shared) dropFirst() {
	s.size -= int64(len(s.msgs[0]))
	s.msgs[0] = nil
	s.msgs = s.msgs[1:]
	s.base++
}

// trim forgets the messages every subscriber has taken; s.mu must be held.
func (s *Shared) trim() {
	low := s.base + uint64(len(s.msgs))
	for sub := range s.subs {
		low = min(low, sub.next)
	}
	for s.base < low {
		s.dropFirst()
	}
}

func (sub *subscriber) Next(ctx context.Context) ([]byte, error) {
	s := sub.s
	for {
		s.mu.Lock()
		if sub.closed {
			s.mu.Unlock()
			return nil, errWatcherClosed
		}
		if sub.next < s.base {
			s.log.Warn("imap shared mailbox: messages were dropped before this waiter took them", "dropped", s.base-sub.next)
			sub.next = s.base
		}
		if i := sub.next - s.base; i < uint64(len(s.msgs)) {
			raw := s.msgs[i]
			sub.next++
			s.trim()
			s.mu.Unlock()
			if sub.skip != nil && sub.skip(raw) {
				continue
			}
			return raw, nil
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return nil, err
		}
		changed := s.changed
		s.mu.Unlock()
		signal(s.want)
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("imap wait for new mail in %s: %w", s.w.cfg.Mailbox, context.Cause(ctx))
		}
	}
}

func (sub *subscriber) Close() {
	s := sub.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub.closed {
		return
	}
	sub.closed = true
	delete(s.subs, sub)
	s.trim()
	s.notify()
}
