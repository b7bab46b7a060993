package mailbox_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/mailbox"
)

// NoIdle makes the watcher poll although the server offers IDLE.
func TestWatchNoIdle(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	var trace syncBuffer
	cfg := srv.Config(t)
	cfg.DebugWriter = &trace
	cfg.NoIdle = true
	cfg.PollInterval = 20 * time.Millisecond
	w := watch(t, cfg)
	if w.UsesIdle() {
		t.Errorf("UsesIdle() = true with NoIdle set")
	}
	srv.Deliver(t, testMessage(1))
	if got, want := next(t, w, 10*time.Second), testMessage(1); got != want {
		t.Errorf("Next() = %q, want %q", got, want)
	}
	if strings.Contains(trace.String(), " IDLE\r\n") {
		t.Errorf("watcher sent IDLE although NoIdle is set:\n%s", trace.String())
	}
}

// Expect makes a polling watcher look at once: with an hour between polls,
// Next can only return because of it.
func TestWatchExpect(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	cfg := srv.Config(t)
	cfg.NoIdle = true
	cfg.PollInterval = time.Hour
	w := watch(t, cfg)
	type result struct {
		msg []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		msg, err := w.Next(ctx)
		got <- result{msg, err}
	}()
	srv.Deliver(t, testMessage(1))
	w.Expect()
	if r := <-got; r.err != nil || string(r.msg) != testMessage(1) {
		t.Errorf("Next() = %q, %v; want %q", r.msg, r.err, testMessage(1))
	}
}
