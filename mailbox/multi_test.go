package mailbox_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/mailbox"
)

// testMailbox is a Mailbox on its own IMAP and submission servers.
type testMailbox struct {
	*mailbox.Mailbox
	imap *imapTestServer
	smtp *smtpTestServer
}

func newTestMailbox(t *testing.T) testMailbox {
	t.Helper()
	imapSrv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	smtpSrv := newSMTPServer(t, mailbox.TLS, nil, false)
	s := mailbox.NewSender(smtpSrv.Config(t))
	t.Cleanup(func() { s.Close() })
	return testMailbox{&mailbox.Mailbox{Watcher: watch(t, imapSrv.Config(t)), Sender: s}, imapSrv, smtpSrv}
}

// mailFrom returns the envelope senders of what srv was given.
func mailFrom(srv *smtpTestServer) []string {
	var from []string
	for _, m := range srv.Backend.Messages() {
		from = append(from, m.From)
	}
	return from
}

func TestMailbox(t *testing.T) {
	mb := newTestMailbox(t)
	mb.imap.Deliver(t, testMessage(1))
	mb.Expect()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if got, err := mb.Next(ctx); err != nil || string(got) != testMessage(1) {
		t.Errorf("Next() = %q, %v; want %q", got, err, testMessage(1))
	}
	if err := mb.Send(ctx, testUser, []string{"ca@example.net"}, []byte(testMessage(2))); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	if got := mailFrom(mb.smtp); !slices.Equal(got, []string{testUser}) {
		t.Errorf("the submission server got mail from %q, want %q", got, testUser)
	}
	if err := mb.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if _, err := mb.Next(ctx); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Next() after Close = %v, want net.ErrClosed", err)
	}
	if err := mb.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}

// TestMultiKeepsMail: Next calls that give up while mail is being read
// (here most of them, with a deadline of 2 ms) lose nothing: every message
// of every mailbox comes out once, each mailbox's in order.
func TestMultiKeepsMail(t *testing.T) {
	a, b := newTestMailbox(t), newTestMailbox(t)
	m := mailbox.NewMulti(a.Mailbox, map[string]*mailbox.Mailbox{"bob@example.org": b.Mailbox})
	t.Cleanup(func() { m.Close() })
	var want []string
	for i := range 4 {
		a.imap.Deliver(t, testMessage(10+i))
		b.imap.Deliver(t, testMessage(20+i))
		want = append(want, testMessage(10+i), testMessage(20+i))
	}
	// Give the readers time to fetch while no Next waits.
	time.Sleep(300 * time.Millisecond)
	var got []string
	timeouts := 0
	for deadline := time.Now().Add(20 * time.Second); len(got) < len(want) && time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Millisecond)
		raw, err := m.Next(ctx)
		cancel()
		switch {
		case err == nil:
			got = append(got, string(raw))
		case errors.Is(err, context.DeadlineExceeded):
			timeouts++
		default:
			t.Fatalf("Next() = %v", err)
		}
	}
	if timeouts == 0 {
		t.Log("no Next call gave up: the test did not exercise what it is for")
	}
	for _, box := range []int{10, 20} {
		var order []string
		for _, g := range got {
			if strings.Contains(g, fmt.Sprintf("Subject: test %d", box/10)) {
				order = append(order, g)
			}
		}
		wantOrder := []string{testMessage(box), testMessage(box + 1), testMessage(box + 2), testMessage(box + 3)}
		if !slices.Equal(order, wantOrder) {
			t.Errorf("mailbox %d: Next returned %q, want %q (%d messages in all, %d calls gave up)", box/10, order, wantOrder, len(got), timeouts)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if raw, err := m.Next(ctx); err == nil {
		t.Errorf("Next() returned %q after every message was read", raw)
	}
}

// TestMultiSend: a reply goes out through the mailbox of its From
// address, whatever the case, and through the primary one for any other
// address.
func TestMultiSend(t *testing.T) {
	a, b := newTestMailbox(t), newTestMailbox(t)
	m := mailbox.NewMulti(a.Mailbox, map[string]*mailbox.Mailbox{"Bob@Example.org": b.Mailbox})
	t.Cleanup(func() { m.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, from := range []string{"bob@example.ORG", testUser, "carol@example.org"} {
		if err := m.Send(ctx, from, []string{"ca@example.net"}, []byte(testMessage(1))); err != nil {
			t.Fatalf("Send(from %s) = %v", from, err)
		}
	}
	if got, want := mailFrom(a.smtp), []string{testUser, "carol@example.org"}; !slices.Equal(got, want) {
		t.Errorf("primary submission server got mail from %q, want %q", got, want)
	}
	if got, want := mailFrom(b.smtp), []string{"bob@example.ORG"}; !slices.Equal(got, want) {
		t.Errorf("bob's submission server got mail from %q, want %q", got, want)
	}
}

// TestMultiWatcherFails: a mailbox whose watcher fails for good is
// reported once by Next; the others are still read.
func TestMultiWatcherFails(t *testing.T) {
	a, b := newTestMailbox(t), newTestMailbox(t)
	m := mailbox.NewMulti(a.Mailbox, map[string]*mailbox.Mailbox{"bob@example.org": b.Mailbox})
	t.Cleanup(func() { m.Close() })
	b.Watcher.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := m.Next(ctx); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Next() after a watcher closed = %v, want its net.ErrClosed", err)
	}
	a.imap.Deliver(t, testMessage(1))
	if got, err := m.Next(ctx); err != nil || string(got) != testMessage(1) {
		t.Errorf("Next() = %q, %v; want %q from the primary mailbox", got, err, testMessage(1))
	}
}

// multiGoroutines returns the goroutines that run Multi code or were
// started by NewMulti.
func multiGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "mailbox.(*Multi).") || strings.Contains(g, "mailbox.NewMulti") {
			found = append(found, g)
		}
	}
	return found
}

// TestMultiClose: Close ends a waiting Next, returns only when its
// goroutines have ended, and closes every mailbox.
func TestMultiClose(t *testing.T) {
	a, b := newTestMailbox(t), newTestMailbox(t)
	m := mailbox.NewMulti(a.Mailbox, map[string]*mailbox.Mailbox{"bob@example.org": b.Mailbox, "carol@example.org": b.Mailbox})
	if g := multiGoroutines(); len(g) != 2 {
		t.Errorf("%d goroutines run Multi code, want 2 (one per distinct mailbox):\n%s", len(g), strings.Join(g, "\n\n"))
	}
	errc := make(chan error, 1)
	go func() {
		_, err := m.Next(context.Background())
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := m.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("a waiting Next returned %v at Close, want net.ErrClosed", err)
	}
	// Close has waited: what is left is on its way out, not waiting.
	for _, g := range multiGoroutines() {
		if head, _, _ := strings.Cut(g, "\n"); !strings.Contains(head, "[runnable") && !strings.Contains(head, "[running") {
			t.Errorf("a goroutine of the Multi still waits after Close:\n%s", g)
		}
	}
	for deadline := time.Now().Add(2 * time.Second); len(multiGoroutines()) > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if g := multiGoroutines(); len(g) != 0 {
		t.Errorf("%d goroutines of the Multi are left after Close:\n%s", len(g), strings.Join(g, "\n\n"))
	}
	for name, box := range map[string]testMailbox{"primary": a, "bob": b} {
		if _, err := box.Watcher.Next(context.Background()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s watcher: Next() after Close = %v, want net.ErrClosed", name, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}
