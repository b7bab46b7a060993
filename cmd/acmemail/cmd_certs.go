package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/cmd/internal/servercmd"
	"github.com/acmemail/acmemail/cmd/internal/termout"
)

// certInfo is what list and show tell about a managed certificate.
type certInfo = issuer.Status

const listLong = `List the certificates acmemail manages in the state directory, one line each:
address, serial number, expiry, when renew will renew it, key type, usage, state and
CA. The two certificates of an obtain --split pair are two lines (usage sign and
encrypt), each with its own state: valid, expired or revoked; pending for an
address whose first obtain failed or was interrupted (a pending key or order is
kept for the next run: run obtain again); broken for one whose certificate files
are missing, damaged or cannot be read. Each broken one is named on stderr with
the file and what is wrong with it, and list exits 1. It reads only the state
directory (no network) and writes nothing there: a read-only state directory can
be listed. --json prints an array, one entry per address, with the same fields as
acmemail show --json, file paths included (a --split pair's encryption
certificate under "encryption"); "state" is one of those above, and "reason" says
why an entry is pending or broken. The mail servers' certificates (acmemail server)
follow, usage "server"; in --json as acmemail server list --json prints them ("host").`

const showLong = `Show one managed certificate: address, serial number, validity, key type, usage,
CA, when renew will renew it (and whether that comes from the CA's renewal window,
RFC 9773, or from its lifetime), revocation, an interrupted order, the paths of its
files, the certificate's other addresses (obtain --also) and the encryption
certificate of an obtain --split pair. It reads only the state directory and the
configuration file (no network), and writes nothing.

The state is valid, expired or revoked; pending for an address whose first obtain
failed or was interrupted (run obtain again); broken when the certificate's files
(or those of the encryption certificate of a pair) are missing, damaged or cannot
be read: then stderr says which file and what is wrong, and show exits 1. --json
has them as "state", and "reason" says why it is pending or broken.

Under "renew repeats:" it says what acmemail renew will do for the certificate, from
what obtain (or the last renew) recorded with it: the CA, the IMAP and SMTP servers
with their logins and the folder watched, where the mail login comes from (the
password command, password file or OAuth token command as given, never what they
give; "nothing recorded" when renew must find it in ACMEMAIL_PASSWORD, the OS
keyring or a prompt), a separate submission login, each --also address (read from
the primary mailbox, or its own servers, login and password source), the deploy
hook, the key type and usage, the encryption certificate of a --split pair, the
PKCS#12 profile and file, and any other recorded option (--issuer-roots,
--insecure, ...). Settings not recorded are left out. A warning says what will
make an unattended renew fail or stop to ask: no recorded mail login, a recorded
file that no longer exists, a certificate whose state records nothing (from an
older acmemail). The PKCS#12 password is never recorded: renew needs
ACMEMAIL_P12_PASSWORD or --p12-password-file.

What the configuration file gives renew for the address (its identity table or
[defaults]) wins over what was recorded, as it does in renew: show puts its mail
login source, submission password source, deploy hook, PKCS#12 profile and
--p12-password-file in place of the recorded ones, with the file and line, and
lists its other renew settings as "config file:". It does not look at the
environment (cron's is not your shell's) nor at flags given to renew.

--json prints the same as the object "renew": recorded (false: nothing recorded),
skip (why renew leaves it alone: an in-process sandbox, a revocation), server,
imap, smtp, user, smtp_user, mailbox, auth_mech, login and smtp_login (each
{source, command, file}; source is password-command, password-file,
oauth-token-command or not-recorded), also ([{email, mailbox: own or primary,
imap, smtp, user, login}], login source also primary or prompt), deploy_hook,
key_type, usage, split, p12_profile, pkcs12, issuer_roots, smime_roots,
trust_authserv_id, dns_resolver, join, mail_wait, reply_settle, contact, insecure,
insecure_skip_mail_auth, p12_password_file, config ([{flag, value, from}], from
the configuration file; a login from it has "from": FILE:LINE) and warnings;
fields not set are left out.`

const showExample = `  acmemail show alice@example.com
  acmemail show --json alice@example.com | jq -r .renewal_due
  # Will a cron renew log in without asking?
  acmemail show --json alice@example.com | jq -r '.renew.login.source, .renew.warnings[]?'`

func newListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the managed certificates",
		Long:    listLong,
		Example: "  acmemail list\n  acmemail list --json | jq -r '.[] | select(.expired) | .email'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) (rerr error) {
			store, err := openStateToRead(g.getenv)
			if err != nil {
				return err
			}
			infos := []certInfo{}
			if store != nil {
				if infos, err = issuer.Statuses(store, time.Now()); err != nil {
					return err
				}
			}
			for _, ci := range infos {
				if ci.Renew != nil {
					planWithConfig(ci.Renew, g, ci.Email)
				}
			}
			var srvRows [][]string // and the mail servers' certificates
			var srvJSON []any
			if store != nil {
				var err error
				srvRows, srvJSON, err = servercmd.ListRows(g.serverEnv().WithStore(store))
				defer func() { rerr = cmp.Or(rerr, err) }()
			}
			if asJSON {
				if err := json.NewEncoder(g.stdout).Encode(servercmd.Merge(infos, srvJSON)); err != nil {
					return err
				}
				return brokenError(infos)
			}
			if len(infos)+len(srvRows) == 0 {
				fmt.Fprintln(g.stderr, "acmemail: no certificates yet; get one with acmemail obtain EMAIL")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			first := "EMAIL" // a mail server's row has its host there
			if len(srvRows) > 0 {
				first = "EMAIL/HOST"
			}
			fmt.Fprintln(tw, first+"\tSERIAL\tNOT AFTER\tRENEW AT\tKEY\tUSAGE\tSTATE\tCA")
			for _, c := range infos {
				// The encryption certificate of an obtain --split pair
				// gets a line of its own: its serial, expiry and state.
				for _, e := range []*certInfo{&c, c.Encryption} {
					if e != nil {
						fmt.Fprintln(tw, strings.Join(listRow(e), "\t"))
					}
				}
			}
			for _, row := range srvRows {
				fmt.Fprintln(tw, strings.Join(row, "\t"))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return brokenError(infos)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array on stdout")
	return cmd
}

// listRow is the line of list for a certificate: "-" for what a pending
// or broken one does not have; escaped, as a file may say anything.
func listRow(e *certInfo) []string {
	row := []string{e.Email, "-", "-", "-", "-", "-", e.State, "-"}
	if e.State == issuer.StatePending || e.State == issuer.StateBroken {
		if e.CA != "" {
			row[7] = e.CA
		}
	} else {
		row = []string{e.Email, e.Serial, e.NotAfter.Format(time.DateOnly), e.RenewalDue.Format(time.DateOnly),
			e.KeyType, e.Usage, e.State, e.CA}
	}
	for i, f := range row {
		row[i] = termout.Escape(f)
	}
	return row
}

// brokenError is list's and show's error when a certificate's files
// cannot be read: each address with the file and what is wrong; nil
// when there is none.
func brokenError(infos []certInfo) error {
	var lines, emails []string
	for _, c := range infos {
		if !c.Broken() {
			continue
		}
		emails = append(emails, c.Email)
		if c.State == issuer.StateBroken {
			lines = append(lines, fmt.Sprintf("the certificate of %s: %s", c.Email, c.Reason))
		}
		if e := c.Encryption; e != nil && e.State == issuer.StateBroken {
			lines = append(lines, fmt.Sprintf("the encryption certificate of %s: %s", c.Email, e.Reason))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	what := "the files of " + emails[0] + " cannot be read"
	if len(emails) > 1 {
		what = fmt.Sprintf("the files of %d addresses cannot be read", len(emails))
	}
	return withHint(fmt.Errorf("%s:\n  %s", what, strings.Join(lines, "\n  ")),
		"restore the file from a backup; or move the address's directory out of the state directory, keeping it (its keys decrypt mail sent to its certificates), and get a new certificate with acmemail obtain EMAIL")
}

func newShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "show EMAIL",
		Short:   "Show a managed certificate",
		Long:    showLong,
		Example: showExample,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			email, err := checkEmail(args[0])
			if err != nil {
				return err
			}
			store, err := openStateToRead(g.getenv)
			if err != nil {
				return err
			}
			var ci certInfo
			err = issuer.ErrNotManaged // without a state directory
			if store != nil {
				ci, err = issuer.StatusOf(store, email, time.Now())
			}
			if errors.Is(err, issuer.ErrNotManaged) {
				return withHint(fmt.Errorf("no certificate for %s is managed here", email), issuer.NotManagedHints(store, email, "see acmemail list, or get one with acmemail obtain "+email)...)
			}
			if err != nil {
				return err
			}
			if ci.Renew != nil {
				planWithConfig(ci.Renew, g, email)
			}
			if asJSON {
				if err := json.NewEncoder(g.stdout).Encode(ci); err != nil {
					return err
				}
				return brokenError([]certInfo{ci})
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			row := func(k, v string) {
				if v != "" {
					fmt.Fprintf(tw, "%s\t%s\n", k, termout.Escape(v))
				}
			}
			row("email:", ci.Email)
			row("state:", ci.State)
			if ci.State == issuer.StatePending || ci.State == issuer.StateBroken {
				// What is wrong with a broken one is the error, below.
				if ci.State == issuer.StatePending {
					row("why:", ci.Reason)
				}
				row("CA:", ci.CA)
				row("pending order:", ci.PendingOrder)
				row("certificate:", ci.Files.Certificate)
				row("chain:", ci.Files.Chain)
				row("key:", ci.Files.Key)
				row("meta:", ci.Files.Meta)
				row("directory:", ci.Files.Dir)
				if err := tw.Flush(); err != nil {
					return err
				}
				return brokenError([]certInfo{ci})
			}
			row("serial:", ci.Serial)
			row("not before:", ci.NotBefore.Format(time.RFC3339))
			row("not after:", ci.NotAfter.Format(time.RFC3339))
			row("key type:", ci.KeyType)
			row("usage:", ci.Usage)
			row("also:", strings.Join(ci.Also, ", "))
			if e := ci.Encryption; e != nil {
				switch e.State {
				case issuer.StatePending:
					row("encryption:", "pending: "+e.Reason)
				case issuer.StateBroken:
					row("encryption:", "broken (see below)")
				default:
					state := e.State
					if e.RevocationReason != "" {
						state += " (" + e.RevocationReason + ")"
					}
					row("encryption:", fmt.Sprintf("serial %s, %s, not after %s, %s", e.Serial, state, e.NotAfter.Format(time.RFC3339), e.Files.PKCS12))
				}
			}
			row("CA:", ci.CA)
			basis := "a third of the lifetime left"
			if ci.RenewalBasis == "ari" {
				basis = fmt.Sprintf("in the CA's renewal window %s to %s", ci.RenewalWindow[0], ci.RenewalWindow[1])
			}
			row("renewal due:", ci.RenewalDue.Format(time.RFC3339)+" ("+basis+")")
			row("revoked:", ci.RevocationReason)
			row("learned timing:", ci.Timing.Text())
			row("pending order:", ci.PendingOrder)
			row("PKCS#12:", ci.Files.PKCS12)
			row("certificate:", ci.Files.Certificate)
			row("chain:", ci.Files.Chain)
			row("key:", ci.Files.Key)
			row("directory:", ci.Files.Dir)
			if err := tw.Flush(); err != nil {
				return err
			}
			// What a cron renew will do, as obtain recorded it; a block of
			// its own, aligned on its own.
			fmt.Fprintln(g.stdout, "renew repeats:")
			tw = tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			for _, kv := range planRows(ci.Renew) {
				fmt.Fprintf(tw, "  %s\t%s\n", kv[0], kv[1])
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return brokenError([]certInfo{ci})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON object on stdout")
	return cmd
}
