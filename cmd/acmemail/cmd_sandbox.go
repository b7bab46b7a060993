package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/acmemail/sandbox/standalone"
)

// sandboxFlags configure the sandbox's imitation of real RFC 8823 CAs.
type sandboxFlags struct {
	mailTiming      string
	tokenLength     int
	join            string
	noAutoSubmitted bool
	window          time.Duration
	hostile         bool
	noDKIMSign      bool
	renewalWindow   string
	noRenewalInfo   bool
	badCert         string
	eab             bool
	oauth           string
}

func (s *sandboxFlags) addFlags(f *pflag.FlagSet, hidden bool) {
	f.StringVar(&s.mailTiming, "sandbox-mail-timing", "authz", `when the sandbox CA mails the challenge: "authz" (when the authorization is fetched, like acme2certifier) or "challenge" (after the challenge POST, like secsy-pki)`)
	f.IntVar(&s.tokenLength, "sandbox-token-length", 43, "length of the sandbox's token-part1: 22 (CASTLE), 32 (acme2certifier) or 43")
	f.StringVar(&s.join, "sandbox-join", "string", `how the sandbox CA joins the token parts: "string" or "octet"`)
	f.BoolVar(&s.noAutoSubmitted, "sandbox-no-auto-submitted", false, "the sandbox's challenge mail has no Auto-Submitted header (like acme2certifier)")
	f.DurationVar(&s.window, "sandbox-validation-window", 30*time.Second, "how long after the challenge POST the sandbox CA looks for the reply")
	f.BoolVar(&s.hostile, "sandbox-hostile", false, "deliver forged challenge mails around the genuine one (a client must ignore them)")
	f.BoolVar(&s.noDKIMSign, "sandbox-no-dkim-sign", false, "the sandbox's submission server does not DKIM-sign (like a provider that does not sign; the CA then rejects replies)")
	f.StringVar(&s.renewalWindow, "sandbox-renewal-window", "", `renewalInfo (ARI) window as START,END after issuance, e.g. "-1h,1h" (due now) (default: the last third of the lifetime)`)
	f.BoolVar(&s.noRenewalInfo, "sandbox-no-renewal-info", false, "the sandbox CA offers no renewalInfo (ARI), like CAs without RFC 9773")
	f.StringVar(&s.badCert, "sandbox-bad-cert", "", "the sandbox CA issues a certificate a client must refuse or warn about: foreign-key, wrong-san, no-email-protection or changed-key-usage")
	f.BoolVar(&s.eab, "sandbox-eab", false, "require an external account binding for new accounts; 'acmemail sandbox' prints the key identifier and writes the HMAC key to DIR/eab.hmac")
	f.StringVar(&s.oauth, "sandbox-oauth", "off", `OAuth2 logins (OAUTHBEARER, XOAUTH2) at the sandbox's IMAP and submission servers: "off", "also" (besides passwords) or "only" (passwords refused, like Gmail)`)
	if hidden {
		f.MarkHidden("sandbox-eab")
		f.MarkHidden("sandbox-oauth")
		for _, n := range []string{"sandbox-bad-cert", "sandbox-renewal-window", "sandbox-no-renewal-info", "sandbox-hostile", "sandbox-no-dkim-sign", "sandbox-mail-timing", "sandbox-token-length", "sandbox-join", "sandbox-no-auto-submitted", "sandbox-validation-window"} {
			f.MarkHidden(n)
		}
	}
}

func (s *sandboxFlags) options() (sandbox.Options, error) {
	var o sandbox.Options
	switch s.mailTiming {
	case "authz":
		o.MailTiming = sandbox.MailAtAuthorization
	case "challenge":
		o.MailTiming = sandbox.MailAfterChallenge
	default:
		return o, usageErrorf("--sandbox-mail-timing %q: choose authz or challenge", s.mailTiming)
	}
	switch s.tokenLength {
	case 22, 32, 43:
		o.TokenLength = s.tokenLength
	default:
		return o, usageErrorf("--sandbox-token-length %d: choose 22, 32 or 43", s.tokenLength)
	}
	if s.join != "string" && s.join != "octet" {
		return o, usageErrorf("--sandbox-join %q: choose string or octet", s.join)
	}
	o.Join = s.join
	o.OmitAutoSubmitted = s.noAutoSubmitted
	o.ValidationWindow = s.window
	o.Hostile = s.hostile
	switch s.oauth {
	case "off", "":
		o.OAuth = sandbox.OAuthOff
	case "also":
		o.OAuth = sandbox.OAuthAlso
	case "only":
		o.OAuth = sandbox.OAuthOnly
	default:
		return o, usageErrorf("--sandbox-oauth %q: choose off, also or only", s.oauth)
	}
	o.NoDKIMSign = s.noDKIMSign
	if s.renewalWindow != "" {
		rw, err := sandbox.ParseRenewalWindow(s.renewalWindow)
		if err != nil {
			return o, usageErrorf("--sandbox-renewal-window: %w", err)
		}
		o.RenewalWindow = &rw
	}
	o.NoRenewalInfo = s.noRenewalInfo
	if s.badCert != "" && !slices.Contains(sandbox.BadCerts, sandbox.BadCert(s.badCert)) {
		return o, usageErrorf("--sandbox-bad-cert %q: choose foreign-key, wrong-san, no-email-protection or changed-key-usage", s.badCert)
	}
	o.BadCert = sandbox.BadCert(s.badCert)
	o.ExternalAccountRequired = s.eab
	return o, nil
}

type sandboxOptions struct {
	users    []string
	aliases  []string // ALIAS=USER
	dir      string
	sandbox  sandboxFlags
	mail     sandboxMailFlags
	duration time.Duration
}

const sandboxLong = `Run the embedded RFC 8823 sandbox as a server until interrupted: an ACME CA
(HTTPS), an IMAP server, a DKIM-signing submission server and a DNS server for the
DKIM keys, all on loopback. It prints how to reach them (stdout), and an
acmemail obtain command for the first --user, ready to paste (stderr).

Each --user gets a mailbox; its password is written to DIR/<address>.password
(0600), with --sandbox-oauth also or only an OAuth2 access token to
DIR/<address>.token, and the roots to trust to DIR/roots.pem. Point acmemail (or another RFC 8823
client) at it:

  ACMEMAIL_CA_ROOTS=DIR/roots.pem ACMEMAIL_PASSWORD=$(cat DIR/alice@example.test.password) \
    acmemail obtain --server <directory URL> --imap <IMAP URL> --smtp <SMTP URL> \
    --dns-resolver <DNS address> alice@example.test

The --sandbox-* flags make it imitate the real CAs described in the documentation.
With --sandbox-eab the CA requires an external account binding: the key identifier
is printed (eab-kid) and the HMAC key written to DIR/eab.hmac (0600), for
--eab-kid and --eab-hmac-file.

With --mail-address the CA uses a real mail system instead of its own: it sends
its challenges through --mail-smtp (whose server must DKIM-sign them for the CA's
domain), reads the replies from --mail-imap and checks their DKIM signatures with
keys from DNS (--dns-resolver). No sandbox mailboxes are created then, and the CA
accepts orders for any address. The password comes from --mail-password-file or
ACMEMAIL_PASSWORD; roots for the mail servers from ACMEMAIL_CA_ROOTS.`

const sandboxExample = `  acmemail sandbox --user alice@example.test --dir /tmp/sandbox

  # The CA on a real mail system (Postfix, Dovecot, OpenDKIM):
  acmemail sandbox --dir /tmp/sandbox --mail-address acme@ca.example.net \
      --mail-imap imap://127.0.0.1:143 --mail-smtp smtp://127.0.0.1:587 \
      --mail-password-file ca.password --dns-resolver 127.0.0.1:53`

func newSandboxCmd(g *globals) *cobra.Command {
	var o sandboxOptions
	cmd := &cobra.Command{
		Use:     "sandbox",
		Short:   "Run the embedded test CA and mail world",
		Long:    sandboxLong,
		Example: sandboxExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.mail.checkFlags(cmd.Flags()); err != nil {
				return err
			}
			return runSandbox(cmd.Context(), g, &o)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.users, "user", []string{"alice@example.test"}, "mail address to create a mailbox for (repeatable)")
	f.StringArrayVar(&o.aliases, "alias", nil, "ALIAS=USER: another address delivered into USER's mailbox, that USER may send as (repeatable; for obtain --also)")
	f.StringVar(&o.dir, "dir", "", "where to write roots.pem and the passwords (default: a new temporary directory)")
	f.DurationVar(&o.duration, "duration", 0, "stop after this long (default: run until interrupted)")
	o.sandbox.addFlags(f, false)
	o.mail.addFlags(f)
	return cmd
}

func runSandbox(ctx context.Context, g *globals, o *sandboxOptions) error {
	opts, err := o.sandbox.options()
	if err != nil {
		return err
	}
	opts.Logger = g.logger().With("component", "sandbox")
	cfg := standalone.Config{Options: opts, Dir: o.dir}
	if o.mail.enabled() {
		if cfg.Mail, err = o.mail.config(g, opts); err != nil {
			return err
		}
		o.users = nil
	}
	sb, err := standalone.Start(ctx, cfg)
	if err != nil {
		return cliError(err)
	}
	defer sb.Close()
	w := sb.World
	var users []string
	for _, u := range o.users {
		email, err := checkEmail(u)
		if err != nil {
			return err
		}
		if err := sb.AddUser(email); err != nil {
			return err
		}
		users = append(users, email)
	}
	for _, kv := range o.aliases {
		a, u, ok := strings.Cut(kv, "=")
		if !ok {
			return usageErrorf("--alias %q: want ALIAS=USER", kv)
		}
		alias, err := checkEmail(a)
		if err != nil {
			return err
		}
		user, err := checkEmail(u)
		if err != nil {
			return err
		}
		if err := w.AddAlias(alias, user); err != nil {
			return usageErrorf("--alias %s: %w", kv, err)
		}
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	if cfg.Mail != nil {
		fmt.Fprintf(g.stdout, "directory   %s\nca-address  %s\nmail-imap   %s\nmail-smtp   %s\nroots       %s\n",
			w.DirectoryURL, cfg.Mail.Address, o.mail.imap, o.mail.smtp, sb.RootsFile)
	} else {
		fmt.Fprintf(g.stdout, "directory      %s\nimap           %s\nimap-starttls  %s\nsmtp           %s\nsmtp-starttls  %s\ndns            %s\nroots          %s\nissuer-root    %s\npasswords      %s/<address>.password\n",
			w.DirectoryURL, w.IMAPURL, w.IMAPStartTLSURL, w.SMTPURL, w.SMTPStartTLSURL, w.DNSAddr, sb.RootsFile, sb.IssuerRootFile, sb.Dir)
	}
	if sb.EABHMACFile != "" {
		fmt.Fprintf(g.stdout, "eab-kid     %s\neab-hmac    %s\n", w.EABKeyID, sb.EABHMACFile)
	}
	if opts.OAuth != sandbox.OAuthOff {
		fmt.Fprintf(g.stdout, "tokens      %s/<address>.token (OAuth2 %s)\n", sb.Dir, opts.OAuth)
	}
	if cfg.Mail == nil && len(users) > 0 {
		fmt.Fprintf(g.stderr, "acmemail: try, in another terminal:\n  %s\n", sb.ObtainCommand(users[0]))
	}
	fmt.Fprintf(g.stderr, "acmemail: sandbox running; press Ctrl-C to stop\n")
	if err := sb.Serve(ctx); err != nil {
		return err
	}
	fmt.Fprintln(g.stderr, "acmemail: sandbox stopped")
	return nil
}
