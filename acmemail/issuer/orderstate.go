package issuer

import (
	"encoding/json"
	"errors"

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
func (o *orderSaver) interrupted(err error) error {
	ie := &InterruptedError{Err: err}
	if st := o.last; st != nil && st.OrderURL != "" {
		ie.Ordered = true
		ie.Answered = st.Finalized || len(st.Authorizations) > 0
		for _, a := range st.Authorizations {
			ie.Answered = ie.Answered && (a.ReplySent || a.Valid)
		}
	}
	return ie
}
