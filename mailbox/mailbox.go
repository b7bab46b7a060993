package mailbox

import (
	"context"
	"errors"
)

// Mailbox joins a [Watcher] (where mail arrives) and a [Sender] (the
// submission server replies go out through) into the one value an order
// flow needs: it reads with Next, asks for a prompt look with Expect and
// replies with Send. Its method set is that of acmemail's Mail and
// MailExpecter interfaces, which it satisfies without either package
// importing the other.
//
// Both fields must be set. A Mailbox is safe for concurrent use, as its
// Watcher and Sender are.
type Mailbox struct {
	Watcher *Watcher
	Sender  *Sender
}

// Next is [Watcher.Next].
func (m *Mailbox) Next(ctx context.Context) ([]byte, error) { return m.Watcher.Next(ctx) }

// Expect is [Watcher.Expect].
func (m *Mailbox) Expect() { m.Watcher.Expect() }

// Send is [Sender.Send].
func (m *Mailbox) Send(ctx context.Context, from string, to []string, raw []byte) error {
	return m.Sender.Send(ctx, from, to, raw)
}

// Close closes the Watcher and the Sender. It may be called more than
// once.
func (m *Mailbox) Close() error {
	return errors.Join(m.Watcher.Close(), m.Sender.Close())
}
