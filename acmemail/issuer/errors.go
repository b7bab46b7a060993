package issuer

import (
	"errors"
	"fmt"
)

// UsageError marks a mistake in what the caller asked for (a setting, a
// file it names): the CLI exits with its usage status.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Errorf(format, args...)}
}

// HintError carries what to do next, printed after the error.
type HintError struct {
	Err   error
	Hints []string
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

// WithHint adds hints to err (nil stays nil).
func WithHint(err error, hints ...string) error {
	if err == nil {
		return nil
	}
	return &HintError{Err: err, Hints: hints}
}

// LockedError: another run holds the address's lock.
type LockedError struct{ Err error }

func (e *LockedError) Error() string { return e.Err.Error() }
func (e *LockedError) Unwrap() error { return e.Err }

// HookError: a deploy hook failed after its certificate was saved.
type HookError struct{ Err error }

func (e *HookError) Error() string { return e.Err.Error() }
func (e *HookError) Unwrap() error { return e.Err }

// ErrNotManaged: the state directory has no certificate for the address.
var ErrNotManaged = errors.New("no certificate for the address is managed here")

// Resumption is what the next run for the address does with the order a
// run stopped with: none was recorded (Ordered false: nothing to
// continue, a key already made is kept), it continues the order
// (Answered: every challenge of it not yet valid was answered, with its
// reply sent or already POSTed, and no challenge is answered twice), or
// it orders anew with the same key (the challenge mail went to the run
// that stopped, or its reply may never have left).
type Resumption struct {
	Ordered  bool // an order was recorded
	Answered bool // and the next run continues it
}

// NextRun is what the next run does (the errors below carry it).
func (r Resumption) NextRun() Resumption { return r }

// InterruptedError is a run stopped by its context (Ctrl-C, a signal, its
// timeout), with what it leaves for the next run.
type InterruptedError struct {
	Err error
	Resumption
}

func (e *InterruptedError) Error() string { return e.Err.Error() }
func (e *InterruptedError) Unwrap() error { return e.Err }

// InputEndedError is an obtain --manual or --pipe run that stopped
// because what it reads the challenge mail from, or the confirmation
// that the reply was sent, failed or ended (stdin ended, "abort" was
// typed, a --challenge-file was refused, respond went away), with what
// it leaves for the next run.
type InputEndedError struct {
	Err error
	Resumption
}

func (e *InputEndedError) Error() string { return e.Err.Error() }
func (e *InputEndedError) Unwrap() error { return e.Err }
