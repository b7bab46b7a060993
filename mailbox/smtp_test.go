package mailbox_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/acmemail/acmemail/mailbox"
)

const (
	testFrom  = "alice@example.org"
	testReply = "From: alice@example.org\r\nTo: ca@example.net\r\nSubject: Re: ACME: x\r\n\r\nhello\r\n"
)

var testTo = []string{"ca@example.net"}

func send(t *testing.T, s *mailbox.Sender) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	return s.Send(ctx, testFrom, testTo, []byte(testReply))
}

func checkSent(t *testing.T, be *smtpBackend, n int) {
	t.Helper()
	msgs := be.Messages()
	if len(msgs) != n {
		t.Fatalf("server received %d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if m.AuthUser != testUser || m.From != testFrom || !slices.Equal(m.To, testTo) || m.Data != testReply {
			t.Errorf("message %d = %+v, want auth %s, from %s, to %v, data %q", i, m, testUser, testFrom, testTo, testReply)
		}
	}
}

func TestSend(t *testing.T) {
	tests := []struct {
		name  string
		sec   mailbox.Security
		mechs []string
	}{
		{"implicit TLS", mailbox.TLS, nil},
		{"STARTTLS", mailbox.StartTLS, nil},
		{"insecure loopback", mailbox.Insecure, nil},
		{"AUTH LOGIN", mailbox.TLS, []string{sasl.Login}},
		{"PLAIN preferred", mailbox.TLS, []string{sasl.Login, sasl.Plain}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newSMTPServer(t, tt.sec, &smtpBackend{Mechs: tt.mechs}, false)
			var trace syncBuffer
			cfg := srv.Config(t)
			cfg.DebugWriter = &trace
			if err := send(t, mailbox.NewSender(cfg)); err != nil {
				t.Fatalf("Send() = %v", err)
			}
			checkSent(t, srv.Backend, 1)

			tr := trace.String()
			checkNoSecret(t, "protocol trace", tr)
			want := []string{"EHLO client.example.org", "MAIL FROM:<alice@example.org>", "RCPT TO:<ca@example.net>", "Subject: Re: ACME: x", "QUIT"}
			if tt.mechs == nil || slices.Contains(tt.mechs, sasl.Plain) {
				want = append(want, "AUTH PLAIN [redacted]")
			} else {
				want = append(want, "AUTH LOGIN [redacted]")
			}
			for _, w := range want {
				if !strings.Contains(tr, w) {
					t.Errorf("protocol trace lacks %q:\n%s", w, tr)
				}
			}
			if strings.Contains(tr, "acmemail-starttls-done") {
				t.Errorf("protocol trace shows the synthetic greeting:\n%s", tr)
			}
		})
	}
}

func TestSendNoSTARTTLS(t *testing.T) {
	srv := newSMTPServer(t, mailbox.StartTLS, nil, true)
	err := send(t, mailbox.NewSender(srv.Config(t)))
	if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("Send() = %v, want a missing-STARTTLS error", err)
	}
	if n := srv.Backend.AuthAttempts(); n != 0 {
		t.Errorf("server saw %d AUTH attempts, want 0", n)
	}
	t.Logf("error: %v", err)
}

func TestSendPlaintextRefused(t *testing.T) {
	srv := newSMTPServer(t, mailbox.Insecure, nil, false)
	tests := []struct {
		name string
		edit func(*mailbox.SMTPConfig)
		want string
	}{
		{"not allowed", func(c *mailbox.SMTPConfig) { c.AllowInsecure = false }, "plaintext connection refused"},
		{"not loopback", func(c *mailbox.SMTPConfig) { c.Host = "192.0.2.1" }, "not a loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.ln.Accepted()
			cfg := srv.Config(t)
			tt.edit(&cfg)
			err := send(t, mailbox.NewSender(cfg))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Send() = %v, want an error containing %q", err, tt.want)
			}
			if got := srv.ln.Accepted() - before; got != 0 {
				t.Errorf("server accepted %d connections, want 0", got)
			}
		})
	}
}

func TestSendServerRefuses(t *testing.T) {
	tests := []struct {
		name     string
		be       *smtpBackend
		want     string
		code     int
		authFail bool
	}{
		{
			name: "sender",
			be:   &smtpBackend{MailErr: &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender not owned by user"}},
			want: "smtp MAIL FROM alice@example.org: 553 5.7.1 sender not owned by user",
			code: 553,
		},
		{
			name: "recipient",
			be:   &smtpBackend{RcptErr: map[string]error{"ca@example.net": &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}},
			want: "smtp RCPT TO ca@example.net: 550 5.1.1 no such user",
			code: 550,
		},
		{
			name: "data",
			be:   &smtpBackend{DataErr: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "message rejected as spam"}},
			want: "smtp DATA: 554 5.7.1 message rejected as spam",
			code: 554,
		},
		{
			name:     "credentials",
			be:       &smtpBackend{AuthErr: smtp.ErrAuthFailed},
			want:     "smtp AUTH PLAIN as alice@example.org: authentication failed (535 5.7.8 Authentication failed)",
			code:     535,
			authFail: true,
		},
		{
			name: "temporary",
			be:   &smtpBackend{MailErr: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}},
			want: "smtp MAIL FROM alice@example.org: 451 4.3.0 try again later",
			code: 451,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newSMTPServer(t, mailbox.TLS, tt.be, false)
			err := send(t, mailbox.NewSender(srv.Config(t)))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Send() = %v, want %q", err, tt.want)
			}
			var re *mailbox.ReplyError
			if !errors.As(err, &re) || re.Code != tt.code {
				t.Errorf("errors.As(%v, *ReplyError) = %v, want code %d", err, re, tt.code)
			}
			if got := errors.Is(err, mailbox.ErrAuthFailed); got != tt.authFail {
				t.Errorf("errors.Is(%v, ErrAuthFailed) = %v, want %v", err, got, tt.authFail)
			}
			checkNoSecret(t, "error", err.Error())
			checkSent(t, srv.Backend, 0)
		})
	}
}

func TestSendWrongPassword(t *testing.T) {
	srv := newSMTPServer(t, mailbox.StartTLS, nil, false)
	cfg := srv.Config(t)
	cfg.Password = "wrong-password-123"
	err := send(t, mailbox.NewSender(cfg))
	if !errors.Is(err, mailbox.ErrAuthFailed) || strings.Contains(err.Error(), cfg.Password) {
		t.Fatalf("Send() = %v, want an error wrapping ErrAuthFailed without the password", err)
	}
}

func TestPrepareSend(t *testing.T) {
	srv := newSMTPServer(t, mailbox.StartTLS, nil, false)
	s := mailbox.NewSender(srv.Config(t))
	defer s.Close()
	ctx := t.Context()

	if err := s.Prepare(ctx); err != nil {
		t.Fatalf("Prepare() = %v", err)
	}
	if err := s.Prepare(ctx); err != nil { // keeps the live session
		t.Fatalf("second Prepare() = %v", err)
	}
	if err := send(t, s); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	if got := srv.ln.Accepted(); got != 1 {
		t.Errorf("Prepare+Send used %d connections, want 1", got)
	}
	if got := srv.Backend.AuthAttempts(); got != 1 {
		t.Errorf("Prepare+Send authenticated %d times, want 1", got)
	}

	// The prepared session dies (server restart): Send falls back to a new
	// connection.
	if err := s.Prepare(ctx); err != nil {
		t.Fatalf("Prepare() = %v", err)
	}
	srv.ln.KillConns()
	if err := send(t, s); err != nil {
		t.Fatalf("Send() after the prepared session died = %v", err)
	}
	if got := srv.ln.Accepted(); got != 3 {
		t.Errorf("server saw %d connections, want 3", got)
	}
	checkSent(t, srv.Backend, 2)

	// Without Prepare each Send has its own session.
	if err := send(t, s); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	checkSent(t, srv.Backend, 3)
}

func TestPrepareFails(t *testing.T) {
	srv := newSMTPServer(t, mailbox.TLS, &smtpBackend{AuthErr: smtp.ErrAuthFailed}, false)
	s := mailbox.NewSender(srv.Config(t))
	if err := s.Prepare(t.Context()); !errors.Is(err, mailbox.ErrAuthFailed) {
		t.Fatalf("Prepare() = %v, want ErrAuthFailed", err)
	}
}

func TestSendDeadline(t *testing.T) {
	// A server that accepts the connection and never says a word.
	ln := listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	t.Cleanup(func() { ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	for _, sec := range []mailbox.Security{mailbox.StartTLS, mailbox.Insecure} {
		t.Run(sec.String(), func(t *testing.T) {
			s := mailbox.NewSender(mailbox.SMTPConfig{
				Endpoint:      mailbox.Endpoint{Host: "127.0.0.1", Port: port, Security: sec},
				Credentials:   mailbox.Credentials{Username: testUser, Password: testPassword},
				AllowInsecure: true,
			})
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := s.Send(ctx, testFrom, testTo, []byte(testReply))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Send() = %v, want context.DeadlineExceeded", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Send took %v with a 200ms deadline", d)
			}
		})
	}
}

// An implicit-TLS server (465) given as smtp:// waits silently for the TLS
// handshake: the STARTTLS greeting wait ends long before the run's deadline
// and the error names smtps://.
func TestSendStartTLSToImplicitTLSPort(t *testing.T) {
	srv := newSMTPServer(t, mailbox.TLS, nil, false)
	cfg := srv.Config(t)
	cfg.Endpoint.Security = mailbox.StartTLS
	defer mailbox.SetSMTPGreetingTimeout(50 * time.Millisecond)()
	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	err := mailbox.NewSender(cfg).Send(ctx, testFrom, testTo, []byte(testReply))
	want := "use smtps://" + cfg.Endpoint.Address()
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "said nothing") {
		t.Fatalf("Send() = %v, want an error naming %s", err, want)
	}
	if ctx.Err() != nil {
		t.Fatalf("Send() waited for the run's deadline: %v", err)
	}
}

func TestSendArguments(t *testing.T) {
	s := mailbox.NewSender(mailbox.SMTPConfig{Endpoint: mailbox.Endpoint{Host: "127.0.0.1", Port: 1}})
	for _, tc := range []struct {
		from string
		to   []string
	}{
		{"alice@example.org", nil},
		{"alice@example.org\r\nRCPT TO:<x@y>", testTo},
		{"alice@example.org", []string{"x@y>"}},
	} {
		if err := s.Send(t.Context(), tc.from, tc.to, []byte(testReply)); err == nil {
			t.Errorf("Send(%q, %q) = nil, want an error", tc.from, tc.to)
		}
	}
}
