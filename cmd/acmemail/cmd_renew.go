package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/cmd/internal/secret"
	"github.com/acmemail/acmemail/cmd/internal/servercmd"
	"github.com/acmemail/acmemail/cmd/internal/termout"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

type renewOptions struct {
	force           bool
	reuseKey        bool
	cred            credFlags
	p12PasswordFile string
	p12Profile      string // "" = as recorded at obtain
	timeout         time.Duration
	parallel        int
	json            bool
	life            lifecycleFlags
}

const renewLong = `Renew the managed certificates that are due: those of the addresses given, or all
of them. Made to run from cron or a systemd timer, every hour if you like: it is quiet
when nothing is due and prints one line per renewed certificate on stdout.

A certificate is due when the CA's renewal window has opened (ACME Renewal
Information, RFC 9773: acmemail picks a random time inside the window the CA
suggests, and asks again when the CA says to), or, when the CA offers no renewal
information, when a third of its lifetime is left. --force renews now. Renewal orders
tell the CA which certificate they replace when the CA supports it. Each renewal gets
a new key unless --reuse-key is given; the old certificate and key are archived,
never deleted (you need old keys to read old mail).

Renew repeats what obtain did: the CA, the mail servers, login, mailbox, key type,
usage, PKCS#12 profile, deploy hook, the own mailboxes of --also addresses (--also-imap,
--also-smtp, --also-user, --also-password-file, --also-password-command) and where the
mail login came from were recorded with the certificate (commands and file paths,
never a password), as certbot records its hooks.

The mail login: a source given to renew wins, for this run (--password-command,
--password-file, --oauth-token-command, ACMEMAIL_PASSWORD, or the configuration
file); a command or file given to renew is recorded in place of obtain's, the
variable is not, so the recorded source stays. Else renew runs the --password-command
or --oauth-token-command, or reads the --password-file, that obtain was given (the
command again, so a password manager's current answer is used), else the OS keyring,
else a prompt. A separate submission password likewise (--smtp-password-command,
--smtp-password-file, ACMEMAIL_SMTP_PASSWORD, or obtain's). A certificate obtained
by an acmemail that did not record these needs them given to renew, as before.
The PKCS#12 password comes from ACMEMAIL_P12_PASSWORD or --p12-password-file.
Passwords are read only when something is due.

Several addresses are renewed concurrently (--parallel), so their waits for mail
overlap; two runs never work on the same address at once (see --wait-lock). However
many run at once, at most 4 log in to one IMAP or submission server at a time and at
most 8 requests to one CA are in flight, and the addresses of one mailbox share one
IMAP connection. With -v each progress line names its address. A revoked certificate
is not renewed unless --force is given.

--deploy-hook (or the one given to obtain) runs after each renewal; see obtain. For
an obtain --split pair it runs once per renewed certificate, as obtain --split runs it.

A certificate that is not due is passed over in silence (cron mails nothing), except
with -v, or when EMAIL is given at a terminal: then a line on stderr says when it is
due.

Without EMAIL, the mail servers' certificates (acmemail server obtain) that are due are
renewed too, as acmemail server renew does; in --json their entries have "host".

For scripts: stdout is empty exactly when nothing was renewed (--json: one array with
the status of every address: renewed, not-due, skipped or failed). The exit status is
0 when nothing failed, whether or not anything was due; 6 when at least one address
could not be renewed (or its deploy hook failed), the others being done; 2 for usage
errors before anything was tried.`

const renewExample = `  # From cron, every hour; mail only when something happened. The mail login is the
  # --password-command (or file, or token command) obtain recorded:
  17 * * * *  acmemail renew --p12-password-file ~/.config/acmemail/p12.pw

  # Or give the mail password's source here (it wins over the recorded one):
  17 * * * *  acmemail renew --password-file ~/.config/acmemail/mail.pw --p12-password-file ~/.config/acmemail/p12.pw

  # Renew one address now, keeping its key:
  acmemail renew --force --reuse-key alice@example.com

  # What was renewed, for a script:
  acmemail renew --json | jq -r '.[] | select(.status=="renewed") | .email'`

func newRenewCmd(g *globals) *cobra.Command {
	var o renewOptions
	cmd := &cobra.Command{
		Use:     "renew [EMAIL...]",
		Short:   "Renew the certificates that are due",
		Long:    renewLong,
		Example: renewExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRenew(cmd.Context(), g, cmd, &o, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.force, "force", false, "renew now, whether due or not (also a revoked certificate)")
	f.BoolVar(&o.reuseKey, "reuse-key", false, "keep the certificate's key instead of making a new one")
	f.StringVar(&o.cred.passwordFile, "password-file", "", "read the mail password from the first line of this file")
	o.cred.addFlags(f)
	f.StringVar(&o.p12PasswordFile, "p12-password-file", "", "read the PKCS#12 password from the first line of this file")
	f.StringVar(&o.p12Profile, "p12-profile", "", "PKCS#12 encryption of the new files: modern or legacy (default: the profile obtain used)")
	f.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up on one address after this long")
	f.IntVar(&o.parallel, "parallel", 16, "renew at most this many addresses at once")
	f.BoolVar(&o.json, "json", false, "print one JSON array with the outcome for every address on stdout")
	o.life.addFlags(f)
	g.settingsCheck(cmd, func(string) error { return o.check() })
	return cmd
}

// check refuses the settings renew cannot use, before it reads a secret or
// sends anything: what acmemail config checks of renew's settings too
// (checkSettings).
func (o *renewOptions) check() error {
	if o.parallel < 1 {
		return usageErrorf("--parallel %d: must be at least 1", o.parallel)
	}
	if o.p12Profile != "" {
		if _, err := keystore.ParseP12Profile(o.p12Profile); err != nil {
			return usageErrorf("--p12-profile %q: choose modern or legacy", o.p12Profile)
		}
	}
	if _, err := mailbox.ParseMechanism(o.cred.authMech); err != nil {
		return usageErrorf("--auth-mech: %w", err)
	}
	return nil
}

// renewOutcome is what happened to one address.
type renewOutcome = issuer.Outcome

// renewFailedError is returned when some addresses could not be renewed.
type renewFailedError struct{ failed, total int }

func (e *renewFailedError) Error() string {
	return fmt.Sprintf("%d of %d certificates could not be renewed (see the errors above)", e.failed, e.total)
}

// renewer runs the renewals of one renew command.
type renewer struct {
	g       *globals
	o       *renewOptions
	is      *issuer.Issuer
	secrets *secret.Run // the PKCS#12 password is read once for all
	out     sync.Mutex  // stdout and stderr lines

	sayNotDue bool // print "not due" lines without -v
}

func runRenew(ctx context.Context, g *globals, cmd *cobra.Command, o *renewOptions, args []string) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	secrets := &secret.Run{Sources: g.secretSources()}
	is, err := newIssuer(g, secrets)
	if err != nil {
		return err
	}
	store := is.Store
	var emails []string
	explicit := len(args) > 0
	for _, a := range args {
		e, err := checkEmail(a)
		if err != nil {
			return err
		}
		emails = append(emails, e)
	}
	if !explicit {
		if emails, err = store.ListCertificates(); err != nil {
			return err
		}
	}
	r := &renewer{g: g, o: o, is: is, secrets: secrets}
	// The logs (-v) of concurrent renewals take the lock of their progress lines.
	is.Logger = termout.Logger(&termout.LockedWriter{Mu: &r.out, W: g.stderr}, g.verbose)
	// Someone who typed "acmemail renew EMAIL" at a terminal wants an
	// answer; cron (no terminal) keeps its silence.
	r.sayNotDue = explicit && (newProgress(g.stderr).TTY || atTerminal())
	outcomes := is.RenewAll(ctx, emails, o.parallel, func(email string) (issuer.RenewOptions, error) {
		// The configuration file's table for this address (password
		// source, deploy hook, ...) applies to its renewal only: the flags
		// are set for it here, one address at a time, and checked as
		// renew EMAIL checks them.
		if err := g.settingsForIdentity(cmd, email); err != nil {
			return issuer.RenewOptions{}, err
		}
		if err := o.check(); err != nil {
			return issuer.RenewOptions{}, err
		}
		return r.options(o, explicit, email, len(emails) > 1 && o.parallel > 1), nil
	}, r.report)
	if err := ctx.Err(); err != nil {
		return err
	}
	failed, locked := 0, 0
	for i := range outcomes {
		if outcomes[i].Status == issuer.Failed || outcomes[i].Status == issuer.Renewed && outcomes[i].Err != nil {
			failed++
		}
		if outcomes[i].Status == issuer.Failed && errors.As(outcomes[i].Err, new(*issuer.LockedError)) {
			locked++
		}
	}
	var srv []servercmd.Renewed // the mail servers' certificates too, unless addresses are named
	if serr := error(nil); !explicit {
		srv, serr = servercmd.RenewAll(ctx, g.serverEnv(), nil, o.force, o.life.waitLock)
		defer func() { err = cmp.Or(err, serr) }()
	}
	if o.json {
		if err := json.NewEncoder(g.stdout).Encode(servercmd.Merge(outcomes, srv)); err != nil {
			return err
		}
	} else {
		servercmd.PrintRenewed(g.stdout, srv)
	}
	if failed > 0 && failed == locked {
		// An address named while another run works on it: exit 8, as
		// for obtain (printed above already).
		return &issuer.LockedError{Err: fmt.Errorf("%d of %d certificates were not renewed: another acmemail run is working on them (see above)", failed, len(outcomes))}
	}
	if failed > 0 {
		return &renewFailedError{failed: failed, total: len(outcomes)}
	}
	return nil
}

// report prints one outcome as it happens: a line on stdout per renewal,
// errors and notes on stderr, nothing for a certificate not due (unless -v,
// or sayNotDue).
func (r *renewer) report(oc *renewOutcome) {
	if oc.Status == issuer.Failed {
		oc.Err = cliError(oc.Err)
		oc.Error = oc.Err.Error()
	}
	r.out.Lock()
	defer r.out.Unlock()
	switch oc.Status {
	case "renewed":
		if !r.o.json {
			fmt.Fprintf(r.g.stdout, "renewed %s: serial %s, valid until %s, %s\n", oc.Email, oc.Serial, oc.NotAfter.UTC().Format(time.DateOnly), oc.PKCS12)
			if oc.EncryptionSerial != "" {
				fmt.Fprintf(r.g.stdout, "renewed %s (encryption certificate): serial %s, %s\n", oc.Email, oc.EncryptionSerial, oc.EncryptionPKCS12)
			}
		}
		if oc.Err != nil { // the deploy hook failed
			printError(r.g.stderr, oc.Err)
		}
	case "failed":
		printError(r.g.stderr, fmt.Errorf("renew %s: %w", oc.Email, settingErr(oc.Err)))
	case "skipped":
		if oc.Err != nil || r.g.verbose > 0 {
			fmt.Fprintf(r.g.stderr, "acmemail: skipped %s: %s\n", oc.Email, oc.Reason)
		}
	case "not-due":
		if r.g.verbose > 0 || r.sayNotDue {
			fmt.Fprintf(r.g.stderr, "acmemail: %s is not due until %s (%s); --force renews now\n", oc.Email, oc.RenewAt.UTC().Format(time.RFC3339), oc.Reason)
		}
	}
}

// options are the renewal options of an address from renew's flags as they
// are set for it.
// With several at once (many), its progress lines name it.
func (r *renewer) options(o *renewOptions, explicit bool, email string, many bool) issuer.RenewOptions {
	given := issuer.Given{
		Login: issuer.Login{
			PasswordCommand: o.cred.passwordCommand, PasswordFile: o.cred.passwordFile, OAuthTokenCommand: o.cred.oauthTokenCommand,
			SMTPPasswordCommand: o.cred.smtpPasswordCommand, SMTPPasswordFile: o.cred.smtpPasswordFile,
		},
		MailPassword: r.g.getenv("ACMEMAIL_PASSWORD") != "", SMTPPassword: r.g.getenv("ACMEMAIL_SMTP_PASSWORD") != "",
		SMTPUser: o.cred.smtpUser, AuthMech: o.cred.authMech, DeployHook: o.life.deployHook,
		P12Profile: o.p12Profile, P12PasswordFile: o.p12PasswordFile, CARoots: r.g.getenv("ACMEMAIL_CA_ROOTS"),
	}
	var progOut io.Writer = io.Discard
	if r.g.verbose > 0 {
		progOut = &termout.LockedWriter{Mu: &r.out, W: r.g.stderr}
	}
	// The secrets of this address: its own login sources, the PKCS#12
	// password shared by all.
	sec := r.secrets.ForAddress(secret.Recorded{
		Mail: !given.Login.HasMail() && !given.MailPassword, SMTP: !given.Login.HasSMTP() && !given.SMTPPassword})
	prog := newProgress(progOut)
	if many {
		prog.Prefix = email + ": "
	}
	return issuer.RenewOptions{
		Force: o.force, ReuseKey: o.reuseKey, WaitLock: o.life.waitLock, Explicit: explicit, Timeout: o.timeout,
		Given: given, Progress: prog, Secrets: sec,
	}
}

// atTerminal reports whether acmemail runs with a controlling terminal (a
// person at it), as the prompts find one; cron has none.
func atTerminal() bool {
	tty, err := openTTY()
	if err != nil {
		return false
	}
	defer tty.Close()
	return term.IsTerminal(int(tty.Fd()))
}
