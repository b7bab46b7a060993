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

// InterruptedError is a run stopped by its context (Ctrl-C, a signal, its
// timeout), with what it leaves for the next run: whether an order was
// recorded, and whether its challenges were all answered (then the next
// run continues it; otherwise the challenge mail went to this run and the
// next run orders anew, with the same key).
type InterruptedError struct {
	Err      error
	Ordered  bool // an order was recorded
	Answered bool // and every challenge of it was answered
}

func (e *InterruptedError) Error() string { return e.Err.Error() }
func (e *InterruptedError) Unwrap() error { return e.Err }
