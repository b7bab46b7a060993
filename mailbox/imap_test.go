package mailbox_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/acmemail/acmemail/mailbox"
)

func watch(t *testing.T, cfg mailbox.IMAPConfig) *mailbox.Watcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	w, err := mailbox.Watch(ctx, cfg)
	if err != nil {
		t.Fatalf("Watch() = %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func next(t *testing.T, w *mailbox.Watcher, d time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	msg, err := w.Next(ctx)
	if err != nil {
		t.Fatalf("Next() = %v", err)
	}
	return string(msg)
}

func expectNothing(t *testing.T, w *mailbox.Watcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	msg, err := w.Next(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next() = %q, %v; want context.DeadlineExceeded", msg, err)
	}
}

func TestWatchSeesOnlyNewMail(t *testing.T) {
	for _, sec := range []mailbox.Security{mailbox.TLS, mailbox.StartTLS, mailbox.Insecure} {
		t.Run(sec.String(), func(t *testing.T) {
			srv := newIMAPServer(t, imapServerOptions{security: sec})
			srv.Deliver(t, testMessage(0))
			var trace syncBuffer
			cfg := srv.Config(t)
			cfg.DebugWriter = &trace
			w := watch(t, cfg)
			if !w.UsesIdle() {
				t.Errorf("UsesIdle() = false with a server that offers IDLE")
			}

			go func() {
				time.Sleep(50 * time.Millisecond) // let IDLE start
				if err := srv.deliver(testMessage(1)); err != nil {
					t.Errorf("Append: %v", err)
				}
			}()
			if got, want := next(t, w, 5*time.Second), testMessage(1); got != want {
				t.Errorf("Next() = %q, want %q", got, want)
			}
			expectNothing(t, w)

			w.Close()
			tr := trace.String()
			checkNoSecret(t, "protocol trace", tr)
			for _, want := range []string{" LOGIN [redacted]", "IDLE", "BODY.PEEK[]", "LOGOUT"} {
				if !strings.Contains(tr, want) {
					t.Errorf("protocol trace lacks %q:\n%s", want, tr)
				}
			}
		})
	}
}

func TestWatchSeveralInOrder(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.StartTLS})
	w := watch(t, srv.Config(t))
	for i := 1; i <= 3; i++ {
		srv.Deliver(t, testMessage(i))
	}
	for i := 1; i <= 3; i++ {
		if got, want := next(t, w, 5*time.Second), testMessage(i); got != want {
			t.Errorf("Next() #%d = %q, want %q", i, got, want)
		}
	}
	srv.Deliver(t, testMessage(4))
	if got, want := next(t, w, 5*time.Second), testMessage(4); got != want {
		t.Errorf("Next() #4 = %q, want %q", got, want)
	}
	expectNothing(t, w)

	// BODY.PEEK[] must leave the messages unseen.
	c, err := imapclient.DialStartTLS(srv.Endpoint.Address(), &imapclient.Options{TLSConfig: getPKI().client})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	bufs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, UID: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bufs {
		for _, f := range b.Flags {
			if f == imap.FlagSeen {
				t.Errorf("message UID %d is marked \\Seen after Next", b.UID)
			}
		}
	}
}

func TestWatchWrongPassword(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	cfg := srv.Config(t)
	cfg.Password = "wrong-password-123"
	var trace syncBuffer
	cfg.DebugWriter = &trace
	_, err := mailbox.Watch(t.Context(), cfg)
	if !errors.Is(err, mailbox.ErrAuthFailed) {
		t.Fatalf("Watch() = %v, want an error wrapping ErrAuthFailed", err)
	}
	if strings.Contains(err.Error(), cfg.Password) || strings.Contains(trace.String(), cfg.Password) {
		t.Errorf("error or trace contains the password: %v\n%s", err, trace.String())
	}
	t.Logf("error: %v", err)
}

func TestWatchAuthenticatePlain(t *testing.T) {
	// A server that disables LOGIN but offers AUTHENTICATE PLAIN.
	srv := newIMAPServer(t, imapServerOptions{
		security: mailbox.Insecure,
		rewrite: func(p []byte) []byte {
			return bytes.ReplaceAll(p, []byte("AUTH=PLAIN"), []byte("AUTH=PLAIN LOGINDISABLED"))
		},
	})
	var trace syncBuffer
	cfg := srv.Config(t)
	cfg.DebugWriter = &trace
	w := watch(t, cfg)
	srv.Deliver(t, testMessage(1))
	if got, want := next(t, w, 5*time.Second), testMessage(1); got != want {
		t.Errorf("Next() = %q, want %q", got, want)
	}
	tr := trace.String()
	checkNoSecret(t, "protocol trace", tr)
	if !strings.Contains(tr, "AUTHENTICATE PLAIN") || strings.Contains(tr, " LOGIN ") {
		t.Errorf("want AUTHENTICATE PLAIN and no LOGIN in the trace:\n%s", tr)
	}

	// Wrong password over AUTHENTICATE.
	cfg.Password = "wrong-password-123"
	_, err := mailbox.Watch(t.Context(), cfg)
	if !errors.Is(err, mailbox.ErrAuthFailed) {
		t.Fatalf("Watch() = %v, want an error wrapping ErrAuthFailed", err)
	}
}

func TestWatchPlaintextRefused(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.Insecure})
	tests := []struct {
		name  string
		edit  func(*mailbox.IMAPConfig)
		want  string
		dials bool
	}{
		{"not allowed", func(c *mailbox.IMAPConfig) { c.AllowInsecure = false }, "plaintext connection refused", false},
		{"not loopback", func(c *mailbox.IMAPConfig) { c.Host = "192.0.2.1" }, "not a loopback address", false},
		{"mapped not loopback", func(c *mailbox.IMAPConfig) { c.Host = "::ffff:192.0.2.1" }, "not a loopback address", false},
		{"skip verify", func(c *mailbox.IMAPConfig) {
			c.Security = mailbox.TLS
			c.TLSConfig = &tls.Config{InsecureSkipVerify: true}
		}, "InsecureSkipVerify", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.ln.Accepted()
			cfg := srv.Config(t)
			tt.edit(&cfg)
			_, err := mailbox.Watch(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Watch() = %v, want an error containing %q", err, tt.want)
			}
			if got := srv.ln.Accepted() - before; got != 0 {
				t.Errorf("server accepted %d connections, want 0", got)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestWatchUnknownCA(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	cfg := srv.Config(t)
	cfg.TLSConfig = nil // system roots do not know the test CA
	_, err := mailbox.Watch(t.Context(), cfg)
	var uerr x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &uerr) {
		t.Fatalf("Watch() = %v, want a certificate verification error", err)
	}
}

func TestWatchWrongSecurity(t *testing.T) {
	tests := []struct {
		name      string
		server    mailbox.Security
		client    mailbox.Security
		wantError string
	}{
		{"implicit TLS to STARTTLS server", mailbox.StartTLS, mailbox.TLS, "for STARTTLS use imap://"},
		{"STARTTLS not offered", mailbox.Insecure, mailbox.StartTLS, "imap STARTTLS with"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newIMAPServer(t, imapServerOptions{security: tt.server})
			var trace syncBuffer
			cfg := srv.Config(t)
			cfg.Security = tt.client
			cfg.DebugWriter = &trace
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			_, err := mailbox.Watch(ctx, cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantError) {
				t.Fatalf("Watch() = %v, want an error containing %q", err, tt.wantError)
			}
			if strings.Contains(trace.String(), "LOGIN") {
				t.Errorf("client tried to log in:\n%s", trace.String())
			}
			t.Logf("error: %v", err)
		})
	}
}

// TestWatchStartTLSToImplicitTLSPort: imap:// for an implicit-TLS server
// fails at once and names imaps:// with the port given, not 993.
func TestWatchStartTLSToImplicitTLSPort(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	cfg := srv.Config(t)
	cfg.Security = mailbox.StartTLS
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := mailbox.Watch(ctx, cfg)
	want := "use imaps://" + cfg.Endpoint.Address() + ")"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Watch() = %v, want an error naming %s", err, want)
	}
}

func TestWatchLocalhost(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.Insecure})
	cfg := srv.Config(t)
	cfg.Host = "localhost" // may resolve to ::1 first; the server listens on 127.0.0.1
	w := watch(t, cfg)
	srv.Deliver(t, testMessage(1))
	if got, want := next(t, w, 5*time.Second), testMessage(1); got != want {
		t.Errorf("Next() = %q, want %q", got, want)
	}
}

func TestWatchPolling(t *testing.T) {
	// imapserver always offers IDLE; hide it so that the watcher polls.
	srv := newIMAPServer(t, imapServerOptions{
		security: mailbox.Insecure,
		rewrite: func(p []byte) []byte {
			if !bytes.Contains(p, []byte("CAPABILITY")) {
				return p
			}
			return bytes.ReplaceAll(p, []byte(" IDLE"), nil)
		},
	})
	var trace syncBuffer
	cfg := srv.Config(t)
	cfg.DebugWriter = &trace
	cfg.PollInterval = 20 * time.Millisecond
	w := watch(t, cfg)
	if w.UsesIdle() {
		t.Errorf("UsesIdle() = true with a server that does not offer IDLE")
	}
	time.Sleep(50 * time.Millisecond)
	srv.Deliver(t, testMessage(1))
	srv.Deliver(t, testMessage(2))
	for i := 1; i <= 2; i++ {
		if got, want := next(t, w, 5*time.Second), testMessage(i); got != want {
			t.Errorf("Next() = %q, want %q", got, want)
		}
	}
	if strings.Contains(trace.String(), " IDLE\r\n") {
		t.Errorf("watcher sent IDLE to a server that does not offer it:\n%s", trace.String())
	}
	if !strings.Contains(trace.String(), " NOOP\r\n") {
		t.Errorf("watcher did not poll with NOOP:\n%s", trace.String())
	}
}

func TestWatchIdleRestart(t *testing.T) {
	restore := mailbox.SetIdleRestartInterval(20 * time.Millisecond)
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	var trace syncBuffer
	cfg := srv.Config(t)
	cfg.DebugWriter = &trace
	w := watch(t, cfg)
	for deadline := time.Now().Add(5 * time.Second); strings.Count(trace.String(), " IDLE\r\n") < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("IDLE was not re-issued:\n%s", trace.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.Deliver(t, testMessage(1))
	if got, want := next(t, w, 5*time.Second), testMessage(1); got != want {
		t.Errorf("Next() = %q, want %q", got, want)
	}
	w.Close()
	restore()
	if strings.Count(trace.String(), "DONE\r\n") < 2 {
		t.Errorf("IDLE was not ended with DONE before being re-issued:\n%s", trace.String())
	}
}

func TestWatchMaxMessageSize(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	cfg := srv.Config(t)
	cfg.MaxMessageSize = 1000
	w := watch(t, cfg)
	srv.Deliver(t, testMessage(1)+strings.Repeat("x", 2000)+"\r\n")
	srv.Deliver(t, testMessage(2))
	if got, want := next(t, w, 5*time.Second), testMessage(2); got != want {
		t.Errorf("Next() = %q, want %q (the large message must be skipped)", got, want)
	}
}

func TestWatchReconnect(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	w := watch(t, srv.Config(t))
	srv.Deliver(t, testMessage(1))
	if got, want := next(t, w, 5*time.Second), testMessage(1); got != want {
		t.Errorf("Next() = %q, want %q", got, want)
	}

	// The server drops the connection; mail arriving meanwhile is not lost.
	srv.ln.KillConns()
	srv.Deliver(t, testMessage(2))
	if got, want := next(t, w, 5*time.Second), testMessage(2); got != want {
		t.Errorf("Next() after reconnect = %q, want %q", got, want)
	}
	if got := srv.ln.Accepted(); got != 2 {
		t.Errorf("server accepted %d connections, want 2", got)
	}

	// Dropped again right away: give up with a clear error.
	srv.ln.KillConns()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := w.Next(ctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("Next() = %v, want a lost-connection error", err)
	}
	t.Logf("error: %v", err)
}

func TestWatchClose(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	w := watch(t, srv.Config(t))
	errc := make(chan error, 1)
	go func() {
		_, err := w.Next(context.Background())
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := w.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Next() after Close = %v, want net.ErrClosed", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}

func TestWatchCancelledNext(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	w := watch(t, srv.Config(t))
	expectNothing(t, w)
	// A message arriving after a cancelled Next is still delivered once.
	srv.Deliver(t, testMessage(1))
	if got, want := next(t, w, 5*time.Second), testMessage(1); got != want {
		t.Errorf("Next() = %q, want %q", got, want)
	}
	expectNothing(t, w)
}

func TestWatchMissingMailbox(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	cfg := srv.Config(t)
	cfg.Mailbox = "Nope"
	_, err := mailbox.Watch(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), `imap select "Nope"`) {
		t.Fatalf("Watch() = %v, want an imap select error", err)
	}
}

// BenchmarkIdleReaction measures the time from a delivery to Next
// returning the message, with the watcher in IDLE.
func BenchmarkIdleReaction(b *testing.B) {
	srv := newIMAPServer(b, imapServerOptions{security: mailbox.TLS})
	cfg := srv.Config(b)
	cfg.Logger = nil
	w, err := mailbox.Watch(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	msg := testMessage(1)
	ctx := b.Context()
	// Let IDLE start before each delivery, outside the timing.
	settle := func() {
		b.StopTimer()
		time.Sleep(2 * time.Millisecond)
		b.StartTimer()
	}
	for b.Loop() {
		settle()
		srv.Deliver(b, msg)
		if _, err := w.Next(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRemove deletes exactly the messages with the given Message-ID.
func TestRemove(t *testing.T) {
	for _, uidplus := range []bool{true, false} {
		t.Run(fmt.Sprintf("uidplus=%v", uidplus), func(t *testing.T) {
			srv := newIMAPServer(t, imapServerOptions{security: mailbox.Insecure, uidplus: uidplus})
			for i := range 3 {
				srv.Deliver(t, testMessage(i))
			}
			var trace syncBuffer
			cfg := srv.Config(t)
			cfg.DebugWriter = &trace
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := mailbox.Remove(ctx, cfg, "<1@example.net>")
			if err != nil {
				t.Fatal(err)
			}
			if res.Found != 1 || res.Expunged != uidplus {
				t.Errorf("Remove = %+v, want 1 found, expunged %v", res, uidplus)
			}
			again, err := mailbox.Remove(ctx, cfg, "<1@example.net>")
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 0, false: 1}[uidplus]; again.Found != want {
				t.Errorf("second Remove found %d, want %d", again.Found, want)
			}
			if other, err := mailbox.Remove(ctx, cfg, "<9@example.net>"); err != nil || other.Found != 0 {
				t.Errorf("Remove of an absent message = %+v, %v; want 0 found", other, err)
			}
			tr := trace.String()
			checkNoSecret(t, "protocol trace", tr)
			for _, line := range strings.Split(tr, "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] != "*" && f[1] == "EXPUNGE" {
					t.Errorf("Remove sent a plain EXPUNGE: %q", line)
				}
			}
			if _, err := mailbox.Remove(ctx, cfg, "not-an-id"); err == nil {
				t.Errorf("Remove accepted a malformed Message-ID")
			}
		})
	}
}
