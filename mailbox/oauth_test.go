package mailbox_test

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/acmemail/acmemail/mailbox"
)

// tokenFunc returns a token source that counts its calls.
func tokenFunc(tok string, calls *atomic.Int32) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		calls.Add(1)
		return tok, nil
	}
}

// checkNoToken fails if s holds tok or its base64 forms.
func checkNoToken(t *testing.T, what, s, tok string) {
	t.Helper()
	for _, f := range []string{tok, base64.StdEncoding.EncodeToString([]byte("n,a=" + testUser + ",\x01auth=Bearer " + tok + "\x01\x01")),
		base64.StdEncoding.EncodeToString([]byte("user=" + testUser + "\x01auth=Bearer " + tok + "\x01\x01"))} {
		if strings.Contains(s, f) {
			t.Errorf("%s contains the token (as %q):\n%s", what, f, s)
		}
	}
}

func TestWatchOAuth(t *testing.T) {
	tests := []struct {
		name    string
		offered []string
		forced  string
		want    string
	}{
		{"OAUTHBEARER preferred", []string{mailbox.MechXOAuth2, mailbox.MechOAuthBearer}, "", "AUTHENTICATE OAUTHBEARER"},
		{"XOAUTH2 only", []string{mailbox.MechXOAuth2}, "", "AUTHENTICATE XOAUTH2"},
		{"XOAUTH2 forced", []string{mailbox.MechOAuthBearer, mailbox.MechXOAuth2}, mailbox.MechXOAuth2, "AUTHENTICATE XOAUTH2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS, oauth: tt.offered})
			cfg := srv.Config(t)
			var calls atomic.Int32
			cfg.Password = ""
			cfg.OAuthToken = tokenFunc(testToken, &calls)
			cfg.Mechanism = tt.forced
			var trace syncBuffer
			cfg.DebugWriter = &trace
			w := watch(t, cfg)
			srv.Deliver(t, testMessage(1))
			if got, want := next(t, w, 5*time.Second), testMessage(1); got != want {
				t.Errorf("Next() = %q, want %q", got, want)
			}
			if calls.Load() != 1 {
				t.Errorf("token fetched %d times for one login, want 1", calls.Load())
			}
			tr := trace.String()
			if !strings.Contains(tr, tt.want+" [redacted]") {
				t.Errorf("trace lacks %q:\n%s", tt.want+" [redacted]", tr)
			}
			checkNoToken(t, "protocol trace", tr, testToken)
		})
	}
}

func TestWatchOAuthRefused(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS, oauth: []string{mailbox.MechOAuthBearer}})
	cfg := srv.Config(t)
	var calls atomic.Int32
	const bad = "expired-token-0123456789"
	cfg.OAuthToken = tokenFunc(bad, &calls)
	var trace syncBuffer
	cfg.DebugWriter = &trace
	_, err := mailbox.Watch(t.Context(), cfg)
	if !errors.Is(err, mailbox.ErrAuthFailed) {
		t.Fatalf("Watch() = %v, want an error wrapping ErrAuthFailed", err)
	}
	if !strings.Contains(err.Error(), "invalid or expired (invalid_token)") || !strings.Contains(err.Error(), "OAUTHBEARER") {
		t.Errorf("Watch() = %v, want the mechanism and the server's invalid_token status", err)
	}
	checkNoToken(t, "error", err.Error(), bad)
	checkNoToken(t, "protocol trace", trace.String(), bad)
}

func TestWatchOAuthNotOffered(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS})
	cfg := srv.Config(t)
	var calls atomic.Int32
	cfg.OAuthToken = tokenFunc(testToken, &calls)
	_, err := mailbox.Watch(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "offers no OAuth2 mechanism") || !strings.Contains(err.Error(), "PLAIN") {
		t.Fatalf("Watch() = %v, want an error saying no OAuth2 mechanism is offered, naming PLAIN", err)
	}
	var me *mailbox.OAuthMechanismError
	if !errors.Is(err, mailbox.ErrNoOAuthMechanism) || !errors.As(err, &me) || me.Protocol != "imap" || !slices.Contains(me.Offered, "PLAIN") {
		t.Errorf("Watch() = %v, want one wrapping ErrNoOAuthMechanism and an *OAuthMechanismError for imap offering PLAIN (got %+v)", err, me)
	}
	if strings.Contains(err.Error(), "--") {
		t.Errorf("Watch() = %v names a command-line flag", err)
	}
}

func TestWatchTokenErrors(t *testing.T) {
	srv := newIMAPServer(t, imapServerOptions{security: mailbox.TLS, oauth: []string{mailbox.MechOAuthBearer}})
	for _, tt := range []struct {
		name string
		fn   func(context.Context) (string, error)
		want string
	}{
		{"helper fails", func(context.Context) (string, error) { return "", errors.New("helper exited 1") }, "get the OAuth access token: helper exited 1"},
		{"empty", func(context.Context) (string, error) { return "  \n", nil }, "token is empty"},
		{"control characters", func(context.Context) (string, error) { return "a\x01b", nil }, "control characters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := srv.Config(t)
			cfg.OAuthToken = tt.fn
			_, err := mailbox.Watch(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Watch() = %v, want %q", err, tt.want)
			}
		})
	}
	cfg := srv.Config(t)
	cfg.Mechanism = mailbox.MechOAuthBearer // without a token
	if _, err := mailbox.Watch(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "needs an OAuth access token") {
		t.Errorf("Watch(OAUTHBEARER without token) = %v", err)
	}
}

func TestSendOAuth(t *testing.T) {
	tests := []struct {
		name   string
		mechs  []string
		forced string
		want   string
	}{
		{"OAUTHBEARER", []string{sasl.Plain, mailbox.MechXOAuth2, mailbox.MechOAuthBearer}, "", "AUTH OAUTHBEARER [redacted]"},
		{"XOAUTH2", []string{sasl.Plain, mailbox.MechXOAuth2}, "", "AUTH XOAUTH2 [redacted]"},
		{"forced XOAUTH2", []string{mailbox.MechOAuthBearer, mailbox.MechXOAuth2}, mailbox.MechXOAuth2, "AUTH XOAUTH2 [redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newSMTPServer(t, mailbox.StartTLS, &smtpBackend{Mechs: tt.mechs}, false)
			cfg := srv.Config(t)
			var calls atomic.Int32
			cfg.Password = ""
			cfg.OAuthToken = tokenFunc(testToken, &calls)
			cfg.Mechanism = tt.forced
			var trace syncBuffer
			cfg.DebugWriter = &trace
			s := mailbox.NewSender(cfg)
			defer s.Close()
			for range 2 {
				if err := send(t, s); err != nil {
					t.Fatalf("Send() = %v", err)
				}
			}
			checkSent(t, srv.Backend, 2)
			if calls.Load() != 2 {
				t.Errorf("token fetched %d times for two sessions, want 2 (a fresh token per login)", calls.Load())
			}
			tr := trace.String()
			if !strings.Contains(tr, tt.want) {
				t.Errorf("trace lacks %q:\n%s", tt.want, tr)
			}
			checkNoToken(t, "protocol trace", tr, testToken)
		})
	}
}

func TestSendOAuthRefused(t *testing.T) {
	for _, mech := range []string{mailbox.MechOAuthBearer, mailbox.MechXOAuth2} {
		t.Run(mech, func(t *testing.T) {
			srv := newSMTPServer(t, mailbox.TLS, &smtpBackend{Mechs: []string{mech}}, false)
			cfg := srv.Config(t)
			const bad = "expired-token-0123456789"
			var calls atomic.Int32
			cfg.OAuthToken = tokenFunc(bad, &calls)
			var trace syncBuffer
			cfg.DebugWriter = &trace
			err := send(t, mailbox.NewSender(cfg))
			if !errors.Is(err, mailbox.ErrAuthFailed) {
				t.Fatalf("Send() = %v, want an error wrapping ErrAuthFailed", err)
			}
			if !strings.Contains(err.Error(), "invalid_token") {
				t.Errorf("Send() = %v, want the server's invalid_token status", err)
			}
			checkNoToken(t, "error", err.Error(), bad)
			checkNoToken(t, "protocol trace", trace.String(), bad)
			checkSent(t, srv.Backend, 0)
		})
	}
}

func TestSendOAuthNotOffered(t *testing.T) {
	srv := newSMTPServer(t, mailbox.TLS, &smtpBackend{Mechs: []string{sasl.Plain, sasl.Login}}, false)
	cfg := srv.Config(t)
	var calls atomic.Int32
	cfg.OAuthToken = tokenFunc(testToken, &calls)
	err := send(t, mailbox.NewSender(cfg))
	if err == nil || !strings.Contains(err.Error(), "offers no OAuth2 mechanism") {
		t.Fatalf("Send() = %v, want an error saying no OAuth2 mechanism is offered", err)
	}
	var me *mailbox.OAuthMechanismError
	if !errors.Is(err, mailbox.ErrNoOAuthMechanism) || !errors.As(err, &me) || me.Protocol != "smtp" || !slices.Equal(me.Offered, []string{"PLAIN", "LOGIN"}) {
		t.Errorf("Send() = %v, want one wrapping ErrNoOAuthMechanism and an *OAuthMechanismError for smtp offering PLAIN, LOGIN (got %+v)", err, me)
	}
	if srv.Backend.AuthAttempts() != 0 {
		t.Errorf("the password was tried although a token was configured")
	}
}

func TestParseMechanism(t *testing.T) {
	for in, want := range map[string]string{"": "", "auto": "", "plain": "PLAIN", "Login": "LOGIN", "oauthbearer": "OAUTHBEARER", "XOAUTH2": "XOAUTH2"} {
		if got, err := mailbox.ParseMechanism(in); err != nil || got != want {
			t.Errorf("ParseMechanism(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	if _, err := mailbox.ParseMechanism("CRAM-MD5"); err == nil {
		t.Errorf("ParseMechanism(CRAM-MD5) succeeded")
	}
}
