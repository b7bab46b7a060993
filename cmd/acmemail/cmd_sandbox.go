package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/acmemail/sandbox/standalone"
	"github.com/acmemail/acmemail/cmd/internal/sandboxflags"
	"github.com/acmemail/acmemail/cmd/internal/secret"
)

type sandboxOptions struct {
	users    []string
	aliases  []string // ALIAS=USER
	dir      string
	sandbox  sandboxflags.Flags
	mail     sandboxflags.MailFlags
	duration time.Duration
}

const sandboxLong = `Run the embedded RFC 8823 sandbox as a server until interrupted: an ACME CA
(HTTPS), an IMAP server, a DKIM-signing submission server and a DNS server for the
DKIM keys and the users' domains, all on loopback. It prints how to reach them (stdout), and an
acmemail obtain command for the first --user, ready to paste (stderr).

Each --user gets a mailbox; its password is written to DIR/<address>.password
(0600), with --sandbox-oauth also or only an OAuth2 access token to
DIR/<address>.token, and the roots to trust to DIR/roots.pem. Point acmemail (or another RFC 8823
client) at it:

  ACMEMAIL_CA_ROOTS=DIR/roots.pem ACMEMAIL_PASSWORD=$(cat DIR/alice@example.test.password) \
    acmemail obtain --server <directory URL> --imap <IMAP URL> --smtp <SMTP URL> \
    --dns-resolver <DNS address> alice@example.test

The CA also issues server certificates (dns-01, and the experimental
dns-service-01) for names in the users' domains and --sandbox-zone. Its DNS server
(dns) takes RFC 2136 updates signed with the TSIG key in DIR/tsig.key (dns-update;
0600): RFC2136_NAMESERVER=HOST:PORT RFC2136_TSIG_FILE=DIR/tsig.key for --dns rfc2136.

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
			if err := o.mail.CheckFlags(cmd.Flags()); err != nil {
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
	o.sandbox.AddFlags(f, false)
	o.mail.AddFlags(f)
	return cmd
}

func runSandbox(ctx context.Context, g *globals, o *sandboxOptions) error {
	opts, err := o.sandbox.Options()
	if err != nil {
		return err
	}
	opts.Logger = g.logger().With("component", "sandbox")
	cfg := standalone.Config{Options: opts, Dir: o.dir}
	if o.mail.Enabled() {
		password := func(spec secret.Spec) (string, error) { return g.secretSources().Get(spec) }
		if cfg.Mail, err = o.mail.Config(opts, checkEmail, g.logger(), password, func() (*x509.CertPool, error) { return g.rootPool() }); err != nil {
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
		imap, smtp := o.mail.URLs()
		fmt.Fprintf(g.stdout, "directory   %s\nca-address  %s\nmail-imap   %s\nmail-smtp   %s\nroots       %s\n",
			w.DirectoryURL, cfg.Mail.Address, imap, smtp, sb.RootsFile)
	} else {
		fmt.Fprintf(g.stdout, "directory      %s\nimap           %s\nimap-starttls  %s\nsmtp           %s\nsmtp-starttls  %s\ndns            %s\ndns-update     %s\nroots          %s\nissuer-root    %s\npasswords      %s/<address>.password\n",
			w.DirectoryURL, w.IMAPURL, w.IMAPStartTLSURL, w.SMTPURL, w.SMTPStartTLSURL, w.DNSAddr, sb.TSIGKeyFile, sb.RootsFile, sb.IssuerRootFile, sb.Dir)
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
