package main

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/cmd/internal/secret/secrettest"
	"github.com/acmemail/acmemail/mailbox"
)

// TestLibraryErrorHints: the libraries' typed errors, which name their own
// fields and no flag, get a hint naming the flag to use, wherever they are
// in the error chain; other errors get none of these hints.
func TestLibraryErrorHints(t *testing.T) {
	signer := &x509.Certificate{Subject: pkix.Name{CommonName: "ca.test challenge signer"}}
	untrusted := &acmemail.UntrustedSignerError{Signer: signer, Err: x509.UnknownAuthorityError{}}
	oauth := &mailbox.OAuthMechanismError{Protocol: "imap", Offered: []string{"PLAIN"}}
	tests := []struct {
		name string
		err  error
		want []string // hints, in order
	}{
		{"no S/MIME roots, in a mail timeout", errors.Join(acmemail.ErrMailTimeout, acmemail.ErrNoSMIMERoots), []string{"--smime-roots"}},
		{"untrusted S/MIME signer", fmt.Errorf("wait for the mail: %w", untrusted), []string{"does not chain to a root in --smime-roots"}},
		{"no OAuth mechanism", fmt.Errorf("watch the mailbox: %w", oauth), []string{"instead of --oauth-token-command"}},
		{"unrelated", errors.New("the mail is S/MIME signed"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hints := libraryHints(tt.err)
			if len(hints) != len(tt.want) {
				t.Fatalf("libraryHints(%v) = %q, want %d hints", tt.err, hints, len(tt.want))
			}
			var out bytes.Buffer
			printError(&out, tt.err)
			for i, w := range tt.want {
				if !strings.Contains(hints[i], w) {
					t.Errorf("hint %d = %q, want it to contain %q", i, hints[i], w)
				}
				if !strings.Contains(out.String(), "acmemail: hint: "+hints[i]+"\n") {
					t.Errorf("printError output lacks the hint %q:\n%s", hints[i], out.String())
				}
			}
			// The libraries' own text names no flag.
			if strings.Contains(tt.err.Error(), "--") {
				t.Errorf("the error %q names a flag", tt.err)
			}
		})
	}
}

// TestOAuthNotOfferedHint: a token command against a server that offers
// no OAuth2 mechanism fails before the CA is contacted, and the hint says
// which flag to drop.
func TestOAuthNotOfferedHint(t *testing.T) {
	secrettest.NoKeyring(t)
	w, env := world(t, sandbox.Options{})
	delete(env, "ACMEMAIL_PASSWORD")
	r := runCLI(t, env, obtainArgs(w, "--oauth-token-command", "echo t0ken")...)
	if r.code == 0 {
		t.Fatalf("obtain succeeded with a token against a password-only server\n%s", r.stderr)
	}
	for _, want := range []string{"offers no OAuth2 mechanism", "acmemail: hint: the mail server does not take OAuth2 tokens: use a password (an app password for many providers) instead of --oauth-token-command"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if st := w.Stats(); st.Orders != 0 {
		t.Errorf("orders = %d, want 0", st.Orders)
	}
}
