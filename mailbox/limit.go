package mailbox

import (
	"context"
	"fmt"
)

// Limiter bounds how many logins to one server are in progress at once, so
// that a run that opens sessions for many addresses does not hit a
// provider with all of them in the same moment. Acquire blocks until one
// more login may start, or ctx ends; release ends it. The connection
// set-up (dial, TLS, login, and for IMAP the SELECT) runs between the two,
// reconnections included; a session once set up does not count.
type Limiter interface {
	Acquire(ctx context.Context) (release func(), err error)
}

// NewLimiter returns a Limiter that lets n logins (at least one) run at
// once, the others waiting in no particular order.
func NewLimiter(n int) Limiter { return make(limiter, max(n, 1)) }

type limiter chan struct{}

func (l limiter) Acquire(ctx context.Context) (func(), error) {
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a login slot: %w", context.Cause(ctx))
	}
}

// acquire takes a slot of l, if there is one.
func acquire(ctx context.Context, l Limiter) (func(), error) {
	if l == nil {
		return func() {}, nil
	}
	return l.Acquire(ctx)
}
