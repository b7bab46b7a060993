package acmemail

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

// verifierFunc is a Verifier made of a function.
type verifierFunc func(raw []byte, from string) (*Verified, error)

func (f verifierFunc) Verify(_ context.Context, raw []byte, from string) (*Verified, error) {
	return f(raw, from)
}

// deadlineAfter is a context that reaches its deadline when done is
// closed.
type deadlineAfter struct {
	context.Context
	done chan struct{}
}

func (c *deadlineAfter) Done() <-chan struct{} { return c.done }

func (c *deadlineAfter) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// TestMailTimeoutKeepsIgnoredReasons: when no acceptable challenge mail
// came, the timeout error still reads as before, and wraps why the most
// recent mails were ignored, so that a caller can find a typed reason such
// as ErrNoSMIMERoots in it.
func TestMailTimeoutKeepsIgnoredReasons(t *testing.T) {
	const (
		user  = "alice@example.com"
		caTok = "V4nE8NhYh6edBpfQTg5qqQ"
	)
	total := mailTimeoutMaxIgnored + 3
	var (
		mu    sync.Mutex
		calls int
	)
	var mailsSeen sync.WaitGroup
	mailsSeen.Add(total)
	c := &Client{
		MailWait: time.Hour, // never ask the CA to send the mail again
		Verifier: verifierFunc(func(raw []byte, from string) (*Verified, error) {
			defer mailsSeen.Done()
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == total {
				return nil, refusal{ErrNoSMIMERoots, errors.New("no DKIM signature")}
			}
			return nil, fmt.Errorf("refusal %d", calls)
		}),
	}
	inbox := make(chan inMail, total)
	for range total {
		inbox <- inMail{raw: challengeTestMail("From: ca@ca.example", "To: "+user, "Subject: ACME: "+caTok), at: time.Now()}
	}
	// The wait ends, as at its deadline, once every mail was refused.
	ctx := &deadlineAfter{Context: t.Context(), done: make(chan struct{})}
	go func() {
		mailsSeen.Wait()
		close(ctx.done)
	}()
	work := []*pending{{email: user, challenge: acme.Challenge{From: "ca@ca.example"}}}
	err := c.answer(ctx, work, time.Now(), inbox, nil, nil, acme.Order{})

	if want := "no acceptable challenge mail arrived for " + user + " in time"; err == nil || err.Error() != want {
		t.Fatalf("answer() = %v, want %q", err, want)
	}
	if !errors.Is(err, ErrMailTimeout) || !errors.Is(err, ErrNoSMIMERoots) {
		t.Errorf("answer() = %v: wraps ErrMailTimeout %v, ErrNoSMIMERoots %v; want both", err, errors.Is(err, ErrMailTimeout), errors.Is(err, ErrNoSMIMERoots))
	}
	var te *mailTimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("answer() = %T, want a *mailTimeoutError", err)
	}
	if len(te.ignored) != mailTimeoutMaxIgnored {
		t.Fatalf("the timeout kept %d reasons, want the last %d", len(te.ignored), mailTimeoutMaxIgnored)
	}
	if got, want := te.ignored[0].Error(), fmt.Sprintf("refusal %d", total-mailTimeoutMaxIgnored+1); got != want {
		t.Errorf("the oldest reason kept is %q, want %q", got, want)
	}
	if got := te.ignored[len(te.ignored)-1].Error(); !strings.Contains(got, "no S/MIME trust anchors") {
		t.Errorf("the newest reason kept is %q, want the S/MIME one", got)
	}
}
