package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// orderSaver keeps the state of one certificate's order in its slot of
// the state directory, as durably as acmemail.SaveModeFor says.
type orderSaver struct {
	store  *keystore.Store
	email  string
	hook   func(acmemail.OrderState)
	warn   func(format string, args ...any) // nil: no warnings
	warned bool                             // a write failed and was told
	onDisk *acmemail.OrderState             // the state last read or written
	last   *acmemail.OrderState             // the state last seen (for an interrupted run)
}

// load returns the state of the interrupted order, if one was recorded,
// for acmemail to continue it.
func (o *orderSaver) load(prog Reporter) *acmemail.OrderState {
	data, err := o.store.ReadOrderState(o.email)
	if err != nil {
		if !errors.Is(err, keystore.ErrNotFound) {
			prog.Printf("warning: %v; starting a new order", err)
		}
		return nil
	}
	var st acmemail.OrderState
	if err := json.Unmarshal(data, &st); err != nil {
		prog.Printf("warning: the recorded state of the interrupted order is unreadable (%v); starting a new order", err)
		return nil
	}
	onDisk := st
	o.onDisk = &onDisk
	return &st
}

func (o *orderSaver) save(st acmemail.OrderState) error {
	seen := st
	seen.Authorizations = append([]acmemail.AuthzState(nil), st.Authorizations...)
	o.last = &seen
	var write func(string, []byte) error
	mode := acmemail.SaveModeFor(o.onDisk, st)
	switch mode {
	case acmemail.SaveDurable:
		write = o.store.WriteOrderState
	case acmemail.SaveAtomic:
		write = o.store.UpdateOrderState
	}
	if write != nil {
		data, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		switch err := write(o.email, append(data, '\n')); {
		case err != nil && mode == acmemail.SaveAtomic:
			// The order itself is recorded; this write only lets a run
			// killed before the challenge is POSTed continue the order.
			// Stopping here (a full disk) would give up the order whose
			// reply was just sent; going on loses nothing, as the CA's
			// own state tells a later run what was done once the
			// challenge is POSTed. The next change is written again.
			if o.warn != nil && !o.warned {
				o.warn("warning: %v (going on: the order itself is recorded)", err)
				o.warned = true
			}
		case err != nil:
			return err
		default:
			onDisk := st
			onDisk.Authorizations = append([]acmemail.AuthzState(nil), st.Authorizations...)
			o.onDisk = &onDisk
		}
	}
	if o.hook != nil {
		o.hook(st)
	}
	return nil
}

// interrupted wraps err of a run stopped by its context with what the
// order state says the next run does.
func (o *orderSaver) interrupted(err error, claimed func(challengeURL string) bool) error {
	return &InterruptedError{Err: err, Resumption: o.next(claimed)}
}

// inputEnded wraps err of a --manual or --pipe run whose input ended
// with what the order state says the next run does.
func (o *orderSaver) inputEnded(err error, claimed func(challengeURL string) bool) error {
	return &InputEndedError{Err: err, Resumption: o.next(claimed)}
}

// next is what the next run does with the order this one leaves, decided
// as acmemail.Client decides whether an interrupted order can be
// continued: a challenge not yet valid must have been claimed by a reply
// and either the reply was sent or the challenge POSTed (the CA then
// looks for the reply whatever the next run does). claimed reports
// whether this run claimed (or found claimed) a challenge.
func (o *orderSaver) next(claimed func(challengeURL string) bool) Resumption {
	st := o.last
	if st == nil || st.OrderURL == "" {
		return Resumption{}
	}
	r := Resumption{Ordered: true, Answered: st.Finalized || len(st.Authorizations) > 0}
	for _, a := range st.Authorizations {
		r.Answered = r.Answered && (a.Valid || a.ReplySent || a.Posted && claimed(a.ChallengeURL))
	}
	return r
}

// claimLog is a run's reply guard that notes which challenges were
// claimed, by this run or (found when an order is continued) an earlier
// one, for orderSaver.next.
type claimLog struct {
	acmemail.ReplyGuard
	mu   sync.Mutex
	keys []string
}

func (c *claimLog) Claim(key string) (bool, error) {
	ok, err := c.ReplyGuard.Claim(key)
	if err == nil {
		c.note(key) // claimed now, or before (ok false)
	}
	return ok, err
}

func (c *claimLog) Claimed(key string) (bool, error) {
	ok, err := c.ReplyGuard.Claimed(key)
	if ok && err == nil {
		c.note(key)
	}
	return ok, err
}

func (c *claimLog) note(key string) {
	if acmemail.IsChallengeKey(key) {
		c.mu.Lock()
		c.keys = append(c.keys, key)
		c.mu.Unlock()
	}
}

// has reports whether the challenge at challengeURL was noted as claimed.
func (c *claimLog) has(challengeURL string) bool {
	if c == nil || challengeURL == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.keys {
		if strings.HasSuffix(k, " "+challengeURL) {
			return true
		}
	}
	return false
}

// inputWatch is the mail of obtain --manual or --pipe, noting whether
// reading the challenge mail or handing out the reply failed other than
// by the run's end: then the run stopped because its input did.
type inputWatch struct {
	acmemail.Mail
	failed atomic.Bool
}

func (m *inputWatch) Next(ctx context.Context) ([]byte, error) {
	raw, err := m.Mail.Next(ctx)
	if err != nil && ctx.Err() == nil {
		m.failed.Store(true)
	}
	return raw, err
}

func (m *inputWatch) Send(ctx context.Context, from string, to []string, raw []byte) error {
	err := m.Mail.Send(ctx, from, to, raw)
	if err != nil && ctx.Err() == nil {
		m.failed.Store(true)
	}
	return err
}
