package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/cmd/internal/secret"
	"github.com/acmemail/acmemail/mailbox"
)

// errNotAnswered is wrapped when respond did not answer the mail: it is
// not an acceptable challenge, or no obtain --pipe waits for it.
var errNotAnswered = issuer.ErrNotAnswered

type respondOptions struct {
	obtainOptions
	print bool
}

const respondLong = `Answer one RFC 8823 challenge mail read from stdin, for mail filters: procmail,
Sieve's "pipe", an MTA alias or a .forward pipe.

respond works with a waiting "acmemail obtain --pipe EMAIL" of the same user (same
state directory): that run created the order and knows the challenge. respond hands
it the mail over a Unix socket in the state directory; obtain checks it by exactly
the rules of the IMAP path (DKIM by the From domain or S/MIME, From equal to the
CA's announced address, To equal to EMAIL, Subject, Auto-Submitted, its age, and
that no challenge is ever answered twice) and, for the genuine challenge, returns
the reply. respond then sends it through --smtp (which must DKIM-sign it for your
domain), or with --print writes it to stdout for "sendmail -t -oi"; only then does
obtain ask the CA to validate, and finish the order. Any other mail is refused with
the reason on stderr, and exit status 4.

--print wins over an --smtp from the configuration file. The address comes from
EMAIL, or else from the mail's To. The SMTP login comes from the same sources as
obtain's (--password-command, --password-file, ACMEMAIL_PASSWORD, the OS keyring,
--smtp-user with --smtp-password-*, or --oauth-token-command; a mail filter has no
terminal to prompt on). respond logs in before it hands the mail over, so a wrong
password never costs a challenge.
With --print, the reply is sent after respond exits; obtain waits --reply-settle
(3 s) before asking the CA.`

const respondExample = `  # In one terminal (or in the background):
  acmemail obtain --pipe --server castle alice@example.com

  # procmail (~/.procmailrc): answer through the submission server ...
  :0 c
  * ^Subject: ACME:
  | acmemail respond --smtp smtps://smtp.example.com --password-file $HOME/.mailpw

  # ... or through the local MTA:
  :0 c
  * ^Subject: ACME:
  | acmemail respond --print | /usr/sbin/sendmail -t -oi`

func newRespondCmd(g *globals) *cobra.Command {
	var o respondOptions
	cmd := &cobra.Command{
		Use:     "respond [EMAIL]",
		Short:   "Answer a challenge mail read from stdin (for procmail, Sieve, MTA pipes)",
		Long:    respondLong,
		Example: respondExample,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			email := ""
			if len(args) == 1 {
				email = args[0]
			}
			return runRespond(cmd.Context(), g, &o, email)
		},
	}
	f := cmd.Flags()
	o.addSubmissionFlags(f)
	o.cred.addFlags(f)
	f.MarkHidden("rediscover") // respond discovers nothing
	f.BoolVar(&o.print, "print", false, "write the reply to stdout instead of sending it through --smtp (e.g. into sendmail -t -oi)")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up after this long")
	return cmd
}

func runRespond(ctx context.Context, g *globals, o *respondOptions, email string) error {
	if !o.print && o.smtp == "" {
		return withHint(usageErrorf("give either --smtp URL (send the reply) or --print (write it to stdout)"),
			"e.g. acmemail respond --print | sendmail -t -oi")
	}
	if email != "" {
		var err error
		if email, err = checkEmail(email); err != nil {
			return err
		}
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	ro := issuer.RespondOptions{
		Email: email, Progress: newProgress(g.stderr), Logger: g.logger(),
		StateDir: func() (string, error) {
			store, err := openState(g.getenv)
			if err != nil {
				return "", err
			}
			return store.Dir, nil
		},
		Login: func(ctx context.Context, email string) (*mailbox.Sender, error) {
			return respondSender(ctx, g, o, email)
		},
	}
	if o.print {
		ro.Print = g.stdout
	}
	err := issuer.Respond(ctx, g.stdin, ro)
	if me := (*issuer.MailError)(nil); errors.As(err, &me) && me.SMTP {
		return withHint(err, smtpHints(me.Err)...)
	}
	return err
}

// respondSender logs in to the submission server before anything is
// handed over. The login comes from the same sources as obtain's
// (secret.Sources.MailLogin).
func respondSender(ctx context.Context, g *globals, o *respondOptions, email string) (*mailbox.Sender, error) {
	ep, err := mailbox.ParseSMTPURL(o.smtp)
	if err != nil {
		return nil, usageErrorf("--smtp: %w", err)
	}
	user := o.user
	if user == "" {
		user = email
	}
	p := issuer.Profile{Email: email, User: user, SMTP: o.smtp, Insecure: o.insecure, SMTPUser: o.cred.smtpUser, AuthMech: o.cred.authMech,
		Login: issuer.Login{PasswordCommand: o.cred.passwordCommand, PasswordFile: o.passwordFile, OAuthTokenCommand: o.cred.oauthTokenCommand,
			SMTPPasswordCommand: o.cred.smtpPasswordCommand, SMTPPasswordFile: o.cred.smtpPasswordFile}}
	pool, err := g.rootPool()
	if err != nil {
		return nil, err
	}
	_, creds, err := g.secretSources().MailLogin(ctx, &p, secret.Recorded{})
	if err != nil {
		return nil, err
	}
	sender := mailbox.NewSender(mailbox.SMTPConfig{
		Endpoint: ep, Credentials: creds, TLSConfig: tlsConfig(pool), AllowInsecure: o.insecure,
		Logger: g.logger().With("component", "smtp"), DebugWriter: g.protocolTrace("smtp"),
	})
	if err := sender.Prepare(ctx); err != nil {
		sender.Close()
		return nil, withHint(fmt.Errorf("log in to the submission server: %w", err), smtpHints(err)...)
	}
	return sender, nil
}
