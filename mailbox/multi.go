package mailbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
)

// Multi reads several mailboxes as one, for a certificate whose addresses
// live in different mailboxes: Next returns mail from any of them, and
// Send replies through the submission server of the address the reply is
// from. Like [Mailbox], its method set is that of acmemail's Mail and
// MailExpecter interfaces.
//
// Each mailbox is read by a goroutine of its own, started by [NewMulti]
// and stopped by [Multi.Close]. A message read is held until a Next call
// takes it, so nothing is lost when a Next call gives up (its ctx ends)
// before mail arrives: the next call returns it. Messages of one mailbox
// come in the order its Watcher returns them; those of different
// mailboxes in the order they were read.
//
// A Multi is safe for concurrent use.
type Multi struct {
	primary *Mailbox
	boxes   []*Mailbox         // distinct, primary first
	senders map[string]*Sender // by lower-cased address

	mail   chan []byte // unbuffered: a reader holds its message until Next takes it
	errc   chan error  // the watchers that failed for good, one entry each
	done   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error // of Close
}

// NewMulti starts reading primary and the mailboxes of others, which maps
// an address to the mailbox it lives in (and whose Sender sends its
// replies). Addresses are compared without regard to case. A mailbox may
// appear more than once (also as primary); it is read once.
func NewMulti(primary *Mailbox, others map[string]*Mailbox) *Multi {
	m := &Multi{
		primary: primary,
		boxes:   []*Mailbox{primary},
		senders: make(map[string]*Sender, len(others)),
		mail:    make(chan []byte),
		done:    make(chan struct{}),
	}
	addrs := make([]string, 0, len(others))
	for addr := range others {
		addrs = append(addrs, addr)
	}
	slices.Sort(addrs) // start the readers in a stable order
	for _, addr := range addrs {
		b := others[addr]
		m.senders[strings.ToLower(addr)] = b.Sender
		if !slices.Contains(m.boxes, b) {
			m.boxes = append(m.boxes, b)
		}
	}
	m.errc = make(chan error, len(m.boxes))
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.wg.Add(len(m.boxes))
	for _, b := range m.boxes {
		go m.read(ctx, b.Watcher)
	}
	return m
}

// read hands w's messages to Next until ctx ends or w fails for good.
func (m *Multi) read(ctx context.Context, w *Watcher) {
	defer m.wg.Done()
	for {
		raw, err := w.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				m.errc <- err
			}
			return
		}
		select {
		case m.mail <- raw:
		case <-ctx.Done():
			return
		}
	}
}

// Next returns the next message that arrived in any of the mailboxes. It
// blocks until one arrives, ctx ends, or the Multi is closed (the error
// then wraps net.ErrClosed). When a Watcher fails for good, one Next call
// returns its error; the other mailboxes are still read.
func (m *Multi) Next(ctx context.Context) ([]byte, error) {
	select {
	case raw := <-m.mail:
		return raw, nil
	case err := <-m.errc:
		return nil, err
	case <-m.done:
		return nil, fmt.Errorf("wait for new mail: %w", net.ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for new mail: %w", context.Cause(ctx))
	}
}

// Expect calls [Watcher.Expect] on every mailbox.
func (m *Multi) Expect() {
	for _, b := range m.boxes {
		b.Expect()
	}
}

// Send submits raw through the Sender of the mailbox the address from
// lives in (compared without regard to case), or through the primary
// mailbox's Sender for an address NewMulti was not given.
func (m *Multi) Send(ctx context.Context, from string, to []string, raw []byte) error {
	s := m.senders[strings.ToLower(from)]
	if s == nil {
		s = m.primary.Sender
	}
	return s.Send(ctx, from, to, raw)
}

// Close stops the reading goroutines and waits until they have returned,
// then closes every mailbox. Messages read but not yet taken by Next are
// dropped. Close may be called more than once; later calls return the
// first call's result.
func (m *Multi) Close() error {
	m.once.Do(func() {
		close(m.done)
		m.cancel()
		m.wg.Wait()
		var errs []error
		for _, b := range m.boxes {
			errs = append(errs, b.Close())
		}
		m.err = errors.Join(errs...)
	})
	return m.err
}
