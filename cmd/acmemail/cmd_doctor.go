package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/cmd/internal/doctorout"
	"github.com/acmemail/acmemail/cmd/internal/secret"
	"github.com/acmemail/acmemail/mailbox"
)

type doctorOptions struct {
	obtainOptions
	mailTimeout time.Duration
	keepTest    bool
}

const doctorLong = `Check, before any CA is contacted for a certificate, that everything acmemail obtain
needs for EMAIL works, and say how to fix what does not. The checks, in order:

  imap-login     log in to --imap and open --mailbox
  imap-idle      the IMAP server supports IDLE (without it acmemail polls every 5 s;
                 a warning, not a failure)
  smtp-login     log in to the submission server --smtp
  dkim           a test message sent as EMAIL to EMAIL through --smtp arrives in
                 --mailbox DKIM-signed with d= equal to EMAIL's domain, and the signature
                 verifies (the check a CA makes on the reply); the test message has the
                 header fields of an RFC 8823 reply, and is deleted afterwards
                 (--keep-test-message keeps it). A signature whose h= leaves out some
                 of those fields (Message-ID, Content-Type, ...) is a warning
  ca-directory   the CA's directory (--server) can be fetched over HTTPS, names the
                 newNonce, newAccount and newOrder resources, and newNonce answers
  ca-email       whether the CA accepts "email" identifiers: an ACME directory does not
                 list the identifier types a CA supports, so this is known only for the
                 sandbox and the CAs acmemail knows by name; for any other CA it is a
                 warning. doctor never creates an account or places an order.
  ca-timing      what was learned about the CA's challenge mail timing (only with a state
                 directory); a warning when its file is damaged (the next run replaces it)

Each check prints one line, PASS, WARN, FAIL or SKIP (skipped because an earlier check
it needs failed), and each failure a "fix:" line. --json prints an array of
{"name", "ok", "status", "detail", "fix"} objects instead; ok is false for FAIL and SKIP.
Progress goes to stderr.

The flags that choose the CA and the mail account are obtain's; the password comes
from the same sources as obtain's (--password-command, --password-file, ACMEMAIL_PASSWORD,
the OS keyring, a prompt; or --oauth-token-command). With --server sandbox, doctor
starts the embedded sandbox, as obtain does.`

const doctorExample = `  # Everything against the embedded sandbox (passes):
  acmemail doctor --server sandbox alice@example.test

  # The sandbox with a submission server that does not DKIM-sign (the dkim check fails):
  acmemail doctor --server sandbox --sandbox-no-dkim-sign alice@example.test

  # Your own account, as JSON:
  acmemail doctor --server castle --imap imaps://imap.example.com \
      --smtp smtps://smtp.example.com --json alice@example.com`

func newDoctorCmd(g *globals) *cobra.Command {
	var o doctorOptions
	cmd := &cobra.Command{
		Use:     "doctor EMAIL",
		Short:   "Check the mail account and the CA before obtaining a certificate",
		Long:    doctorLong,
		Example: doctorExample,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDoctor(cmd.Context(), g, &o, args[0])
		},
	}
	f := cmd.Flags()
	o.addServerMailFlags(f)
	f.BoolVar(&o.json, "json", false, "print the checks as a JSON array on stdout")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after this long")
	f.DurationVar(&o.mailTimeout, "mail-timeout", 2*time.Minute, "how long to wait for the test message to arrive")
	f.BoolVar(&o.keepTest, "keep-test-message", false, "do not delete the test message after the dkim check")
	return cmd
}

// doctorCheck is one line of the report, as --json prints it.
type doctorCheck = doctorout.Check

// checksWithFixes are the report's checks with the CLI's fix lines.
func checksWithFixes(r *issuer.Report, p *issuer.Profile) []doctorCheck {
	out := make([]doctorCheck, 0, len(r.Checks))
	for _, c := range r.Checks {
		out = append(out, doctorCheck{Name: c.Name, OK: c.OK(), Status: string(c.Status), Detail: c.Detail, Fix: doctorFix(c, p)})
	}
	return out
}

var printDoctorChecks = doctorout.Print

func runDoctor(ctx context.Context, g *globals, o *doctorOptions, email string) error {
	// doctor has no certificate flags; the profile wants valid values.
	o.keyType, o.usage, o.p12Profile, o.replySettle = "rsa2048", "both", "modern", -1
	o.getenv = g.getenv
	p, err := o.profile(email, nil, nil)
	if err != nil {
		return err
	}
	if o.mailTimeout <= 0 {
		return usageErrorf("--mail-timeout must be positive")
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	prog := newProgress(g.stderr)
	secrets := &secret.Run{Sources: g.secretSources()}
	var world *sandbox.World
	if p.Server == "sandbox" {
		w, err := startSandbox(ctx, g, &o.obtainOptions, &p, secrets)
		if err != nil {
			return err
		}
		defer w.Close()
		world = w
		prog.Printf("started the sandbox CA at %s", w.DirectoryURL)
	} else if err := discoverServers(ctx, g, prog, &p, o.cred.rediscover); err != nil {
		return err
	}
	d := &issuer.Doctor{
		Profile: p, World: world, Secrets: secrets, Logger: g.logger(), Trace: g.protocolTrace, Progress: prog,
		MailTimeout: o.mailTimeout, KeepTestMessage: o.keepTest, TermsNote: "obtain asks you to agree with --agree-tos",
	}
	d.Store, _ = openStateToRead(g.getenv) // for ca-timing; none yet: nothing learned
	r, err := d.Run(ctx)
	if err != nil && r == nil { // before the checks
		return settingErr(err)
	}
	checks := checksWithFixes(r, &p)
	if err != nil {
		// ctx ended: on --timeout, the checks done so far and a clear
		// error; on an interrupt, that.
		if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		printDoctorChecks(g.stderr, checks)
		return withHint(fmt.Errorf("doctor did not finish within --timeout %s (%d checks done, shown above)", o.timeout, len(checks)),
			"a server that does not answer is the likely cause; raise --timeout to wait longer")
	}

	if o.json {
		if err := json.NewEncoder(g.stdout).Encode(checks); err != nil {
			return err
		}
	} else if err := printDoctorChecks(g.stdout, checks); err != nil {
		return err
	}
	if failed := r.Names(issuer.CheckFail); len(failed) > 0 {
		return fmt.Errorf("%d of %d checks failed: %s", len(failed), len(checks), strings.Join(failed, ", "))
	}
	if warned := r.Names(issuer.CheckWarn); len(warned) > 0 {
		prog.Printf("no check failed for %s; %d warned (%s): see their fix lines", p.Email, len(warned), strings.Join(warned, ", "))
		return nil
	}
	prog.Printf("all checks passed for %s", p.Email)
	return nil
}

// doctorFix says what to do about a check that failed or warned, in the
// CLI's words.
func doctorFix(c issuer.Check, p *issuer.Profile) string {
	email := p.Email
	domain := email[strings.LastIndexByte(email, '@')+1:]
	auth := errors.Is(c.Err, mailbox.ErrAuthFailed)
	switch c.Cause {
	case issuer.CauseIMAPLogin:
		if auth {
			return "check --user and the password (ACMEMAIL_PASSWORD or --password-file); many providers need an app password for IMAP"
		}
		if fix := strings.Join(imapHints(c.Err, p.IMAP), "; "); fix != "" {
			return fix
		}
		return "check the host, port and scheme in --imap " + p.IMAP + " (imaps:// for TLS on 993, imap:// for STARTTLS on 143)"
	case issuer.CauseNoIdle:
		return "nothing is needed; it is only slower (a CA with a short validation window may need --mail-wait raised)"
	case issuer.CauseSMTPLogin:
		if auth {
			return "check --user and the password; many providers need an app password for SMTP submission"
		}
		if fix := strings.Join(smtpHints(c.Err), "; "); fix != "" {
			return fix
		}
		return "check the host, port and scheme in --smtp (smtps:// for TLS on 465, smtp:// for STARTTLS on 587)"
	case issuer.CauseSendRefused:
		return "the submission server must accept mail from " + email + " to " + email + "; check that --user may send as " + email
	case issuer.CauseNotArrived:
		return "look for it in the spam folder (then use --mailbox Junk) or raise --mail-timeout; some providers do not deliver mail you send to yourself to the inbox"
	case issuer.CauseUnsigned:
		return "your provider does not DKIM-sign mail submitted through --smtp: turn on DKIM signing for " + domain +
			" in its settings (and publish the key it gives you in DNS), or use a provider that signs; RFC 8823 CAs reject unsigned replies"
	case issuer.CauseForeignSigner:
		return "your provider signs with its own domain, not with " + domain + ": set up DKIM for your own domain (\"custom domain DKIM\") in its settings"
	case issuer.CauseKeyNotInDNS:
		return "the DKIM key is not published (or not reachable) in DNS: publish the selector's TXT record for " + domain + ", or check --dns-resolver"
	case issuer.CauseFieldsUnsigned:
		return "the provider's DKIM signature leaves out header fields a reply has; ask it to sign From, To, Subject, Date, Message-ID and the Content-* fields"
	case issuer.CauseNotVerified:
		return "make sure mail submitted through --smtp is DKIM-signed by " + domain + " and not changed on the way to your inbox"
	case issuer.CauseFieldsUncovered:
		return "a CA that checks h= strictly may refuse such a reply: have the signer also sign Date, Message-ID, In-Reply-To, References, Content-Type and Content-Transfer-Encoding (OpenDKIM: SignHeaders)"
	case issuer.CauseCAUnreachable:
		return "check --server " + p.Server + " and your network; for a private CA, put its root in a PEM file named by ACMEMAIL_CA_ROOTS"
	case issuer.CauseCANotWorking:
		return "the CA is not working; try again later or ask its operator"
	case issuer.CauseEABRequired:
		return "get an EAB key ID and HMAC key from the CA before creating an account"
	case issuer.CauseEmailUnknown:
		return "check the CA's documentation for RFC 8823 (email-reply-00); if obtain fails with unsupportedIdentifier, the CA does not support it"
	case issuer.CauseTimingDamaged:
		return "nothing is needed: the next run uses the safe defaults and replaces the file (or remove it)"
	}
	return ""
}
