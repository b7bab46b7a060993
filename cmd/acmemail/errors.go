package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/acmemail/acmemail/cmd/internal/servercmd"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/cmd/internal/termout"
	"github.com/acmemail/acmemail/mailbox"
)

// Exit statuses. Documented in each command's help and man page, from the
// tables in exitstatus.go.
const (
	exitOK          = 0
	exitError       = 1   // any other error
	exitUsage       = 2   // bad command line or configuration
	exitMailAuth    = 3   // the mail server refused the login
	exitMailTimeout = 4   // no acceptable challenge mail arrived in time
	exitCA          = 5   // the CA refused or failed the request
	exitSomeFailed  = 6   // renew: at least one identity failed (the others are done)
	exitHookFailed  = 7   // the certificate is saved, but the deploy hook failed
	exitLocked      = 8   // another acmemail run is working on the identity
	exitInterrupted = 130 // interrupted: SIGINT (Ctrl-C); 128 + the signal's number
	exitTerminated  = 143 // terminated: SIGTERM (128 + 15)
)

// usageError marks a mistake in the command line (issuer.UsageError: the
// lifecycle reports mistakes in what it was asked the same way).
type usageError = issuer.UsageError

func usageErrorf(format string, args ...any) error { return issuer.Usagef(format, args...) }

// hintError carries hints printed after the error, age style.
type hintError = issuer.HintError

func withHint(err error, hints ...string) error { return issuer.WithHint(err, hints...) }

// exitCode maps an error to the documented exit status.
func exitCode(err error) int {
	var ue *usageError
	var pe *acmemail.ProblemError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue), errors.As(err, new(*issuer.SettingError)):
		return exitUsage
	case errors.As(err, new(*renewFailedError)), errors.As(err, new(*servercmd.RenewFailedError)):
		return exitSomeFailed
	case errors.As(err, new(*issuer.HookError)):
		return exitHookFailed
	case errors.As(err, new(*issuer.LockedError)):
		return exitLocked
	case errors.Is(err, mailbox.ErrAuthFailed):
		return exitMailAuth
	case errors.Is(err, acmemail.ErrMailTimeout), errors.Is(err, errNotAnswered):
		return exitMailTimeout
	case errors.As(err, &pe), errors.Is(err, acmemail.ErrCertificateRefused):
		return exitCA
	}
	return exitError
}

// printError writes the error and its hints to w.
func printError(w io.Writer, err error) {
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(w, "acmemail: interrupted")
		return
	}
	// An error may quote a mail, a CA's problem document or a server's
	// greeting: nothing of it reaches the terminal unescaped.
	fmt.Fprintf(w, "acmemail: error: %s\n", termout.EscapeLines(strings.TrimSpace(err.Error())))
	var he *hintError
	for e := err; errors.As(e, &he); e = he.Err {
		for _, h := range he.Hints {
			fmt.Fprintf(w, "acmemail: hint: %s\n", termout.EscapeLines(h))
		}
	}
	var pe *acmemail.ProblemError
	// The hints below are about orders; a revocation's problem has its own.
	if errors.As(err, &pe) && !errors.As(err, new(*revokeCAError)) {
		switch pe.ShortType() {
		case "malformed", "invalidContact", "unsupportedContact":
			if strings.HasPrefix(pe.Op, "register the ACME account") {
				// The request that failed is the account's, not the order's.
				fmt.Fprintln(w, "acmemail: hint: the CA refused to create the ACME account; check --contact (the default is the address itself; --no-contact leaves it out) and whether the CA wants --eab-kid or other terms")
				break
			}
			fallthrough
		case "rejectedIdentifier", "unsupportedIdentifier":
			fmt.Fprintln(w, "acmemail: hint: the CA does not accept this address; check the spelling, or ask the CA which addresses it serves")
		case "incorrectResponse":
			fmt.Fprintln(w, "acmemail: hint: the CA rejected the reply; check that your mail provider DKIM-signs outgoing mail for your domain, and try --join octet if this CA joins tokens as octets")
		case "userActionRequired":
			fmt.Fprintln(w, "acmemail: hint: visit the URL above, then run the command again")
		}
	}
	if de := (*acmemail.DirectoryError)(nil); errors.As(err, &de) {
		// Not reached (DNS, connect, TLS verification), or reached and
		// not an ACME directory.
		unreached := errors.As(err, new(*net.OpError)) || errors.As(err, new(*net.DNSError)) ||
			errors.As(err, new(*tls.CertificateVerificationError))
		if !unreached {
			fmt.Fprintln(w, "acmemail: hint: --server takes the URL of the CA's ACME directory (a JSON document naming newNonce, newAccount and newOrder; see the CA's documentation), or sandbox, castle, castle-staging")
		} else {
			fmt.Fprintln(w, "acmemail: hint: check the host in --server and your network (a proxy goes in HTTPS_PROXY); for a private CA, put its root in a PEM file named by ACMEMAIL_CA_ROOTS")
		}
		fmt.Fprintln(w, "acmemail: hint: acmemail doctor --server URL EMAIL checks the CA without ordering anything")
	}
	if errors.Is(err, mailbox.ErrAuthFailed) {
		fmt.Fprintln(w, "acmemail: hint: check --user and the password (or the token --oauth-token-command prints); many providers need an app password, and Gmail and Microsoft 365 need OAuth2 (--oauth-token-command)")
	}
	if re := (*mailbox.ReplyError)(nil); errors.As(err, &re) && (re.Code == 553 || re.EnhancedCode == "5.7.1") {
		// Postfix's reject_sender_login_mismatch and most providers say
		// "553 5.7.1 ... not owned by user" for a From the login may not use.
		fmt.Fprintln(w, "acmemail: hint: the submission server does not let this login send as the address; log in (--user) as the address's owner, or have your provider allow the login to send as it")
	}
	if errors.Is(err, acmemail.ErrMailTimeout) {
		fmt.Fprintln(w, "acmemail: hint: the CA may have filtered it as spam, or mails another folder; check the mailbox and try --mailbox")
		fmt.Fprintln(w, "acmemail: hint: re-run with -v to see the mailbox activity, or raise --timeout")
	}
	for _, h := range libraryHints(err) {
		fmt.Fprintf(w, "acmemail: hint: %s\n", h)
	}
}

// libraryHints turns the typed errors of the libraries, which name their
// own fields and never a flag, into what to do on this command line. A
// mail timeout wraps why the challenge mails that came were ignored, so
// these hints also explain a wait that ran out.
func libraryHints(err error) []string {
	var hints []string
	if errors.Is(err, acmemail.ErrNoSMIMERoots) {
		hints = append(hints, "the challenge mail is S/MIME signed: pass the PEM file of the root that issued the CA's signing certificate with --smime-roots")
	}
	if ue := (*acmemail.UntrustedSignerError)(nil); errors.As(err, &ue) {
		hints = append(hints, "the challenge mail's S/MIME signer does not chain to a root in --smime-roots: add the root that issued the CA's signing certificate to that file")
	}
	if errors.Is(err, mailbox.ErrNoOAuthMechanism) {
		hints = append(hints, "the mail server does not take OAuth2 tokens: use a password (an app password for many providers) instead of --oauth-token-command")
	}
	return hints
}
