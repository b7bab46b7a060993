package mailbox

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"
)

// ErrAuthFailed is wrapped by the errors of [Watch], [Sender.Prepare] and
// [Sender.Send] when the server refuses the user name or password (IMAP NO
// to LOGIN or AUTHENTICATE, SMTP 535).
var ErrAuthFailed = errors.New("authentication failed")

// ErrPlaintext is wrapped by the errors for an Insecure (plaintext)
// endpoint that is refused: the caller did not allow plaintext
// (AllowInsecure), or the host is not a loopback address.
var ErrPlaintext = errors.New("plaintext connection refused")

// ErrNoOAuthMechanism is wrapped by the errors of [Watch], [Sender.Prepare]
// and [Sender.Send] when Credentials.OAuthToken is set but the server
// offers neither OAUTHBEARER nor XOAUTH2, so the login needs a password.
// The error is an [*OAuthMechanismError], which says what the server
// offers.
var ErrNoOAuthMechanism = errors.New("the server offers no OAuth2 mechanism (OAUTHBEARER or XOAUTH2)")

// OAuthMechanismError reports a server that offers no OAuth2 SASL
// mechanism to a login with an OAuth token. It wraps
// [ErrNoOAuthMechanism].
type OAuthMechanismError struct {
	Protocol string   // "imap" or "smtp"
	Offered  []string // the SASL mechanisms the server offers, upper case; none if it offers none
}

func (e *OAuthMechanismError) Error() string {
	have := "no SASL mechanism"
	if len(e.Offered) > 0 {
		have = strings.Join(e.Offered, ", ")
	}
	return fmt.Sprintf("%s login: %s, only %s; log in with a password instead of an OAuth token", e.Protocol, ErrNoOAuthMechanism, have)
}

func (e *OAuthMechanismError) Unwrap() error { return ErrNoOAuthMechanism }

// ReplyError is a negative reply of an SMTP server. Errors of
// [Sender.Send] wrap it when the server refused a command, so that callers
// can inspect the code with [errors.As].
type ReplyError struct {
	Code         int    // basic reply code, such as 553
	EnhancedCode string // RFC 3463 enhanced status code, such as "5.7.1"; "" if absent
	Message      string // the server's text, lines joined with spaces
}

// Error returns the reply as the server sent it, for example
// "553 5.7.1 sender not owned by user".
func (e *ReplyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%03d", e.Code)
	if e.EnhancedCode != "" {
		b.WriteString(" " + e.EnhancedCode)
	}
	if e.Message != "" {
		b.WriteString(" " + e.Message)
	}
	return b.String()
}

// Temporary reports whether the reply is a transient (4xx) failure.
func (e *ReplyError) Temporary() bool { return e.Code/100 == 4 }

// replyError converts a go-smtp error into a *ReplyError, or returns nil if
// err is not a server reply.
func replyError(err error) *ReplyError {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return nil
	}
	re := &ReplyError{Code: se.Code, Message: strings.Join(strings.Fields(se.Message), " ")}
	ec := se.EnhancedCode
	if ec != smtp.EnhancedCodeNotSet && ec != smtp.NoEnhancedCode && ec[0] > 0 {
		re.EnhancedCode = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
	}
	return re
}
