package acmemail

import (
	"context"
	"sync"
)

// Mail is how the order flow reaches the user's mailbox. Package mailbox
// provides an implementation (an IMAP watcher plus an SMTP submission
// sender); tests use an in-memory one.
type Mail interface {
	// Next returns the raw bytes of the next message that arrived in the
	// watched mailbox after the watch began. It blocks until one arrives or
	// ctx ends.
	Next(ctx context.Context) ([]byte, error)
	// Send submits raw (a complete RFC 5322 message) with the given
	// envelope sender and recipients.
	Send(ctx context.Context, from string, to []string, raw []byte) error
}

// MailExpecter is implemented by a [Mail] that can look for new mail at
// once, such as an IMAP watcher that polls because the server has no IDLE.
// The order flow calls Expect when a challenge mail is due: after fetching
// the authorizations, and after POSTing a challenge whose mail has not come.
type MailExpecter interface {
	Expect()
}

// ReplyGuard records that a challenge is being answered, so that it is
// answered at most once, even across crashes and concurrent runs. Claim
// must be durable before it returns true: the reply is sent only after a
// successful claim. package keystore's Store provides a file-backed one.
type ReplyGuard interface {
	// Claim records key and reports whether this call created the record
	// (false: the key was claimed before, by this or another process).
	Claim(key string) (bool, error)
	// Claimed reports whether key was claimed before.
	Claimed(key string) (bool, error)
}

// memoryGuard is the process-local ReplyGuard used when the caller gives
// none. It protects against answering twice within one run only.
type memoryGuard struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (g *memoryGuard) Claim(key string) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = make(map[string]bool)
	}
	if g.seen[key] {
		return false, nil
	}
	g.seen[key] = true
	return true, nil
}

func (g *memoryGuard) Claimed(key string) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.seen[key], nil
}
