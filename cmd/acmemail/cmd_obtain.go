package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/cmd/internal/sandboxflags"
	"github.com/acmemail/acmemail/cmd/internal/secret"
	"github.com/acmemail/acmemail/cmd/internal/termout"
	"github.com/acmemail/acmemail/mailbox"
)

type obtainOptions struct {
	server          string
	imap, smtp      string
	user            string
	passwordFile    string
	mailboxName     string
	keyType         string
	usage           string
	out             string
	p12PasswordFile string
	p12Profile      string
	timeout         time.Duration
	json            bool
	join            string
	mailWait        time.Duration
	replySettle     time.Duration
	dnsResolver     string
	insecure        bool
	agreeTOS        bool
	contact         []string
	noContact       bool
	skipMailAuth    bool
	trustAuthserv   string
	smimeRoots      string
	issuerRoots     string
	eab             eabFlags
	cred            credFlags
	sandbox         sandboxflags.Flags
	also            alsoFlags
	split           bool
	force           bool
	ext             externalFlags // --manual, --pipe
	life            lifecycleFlags
	getenv          func(string) string // the run's environment
}

const obtainLong = `Obtain an S/MIME certificate for EMAIL from an ACME CA that supports RFC 8823.

acmemail creates the order, watches your IMAP mailbox for the CA's challenge mail,
checks that it is authentic (a DKIM signature by the From domain), answers it through
your submission server (which must DKIM-sign your mail), finalizes the order with a
fresh key, and writes the certificate, its key and a PKCS#12 file to the state
directory ($ACMEMAIL_HOME, else $XDG_DATA_HOME/acmemail, else ~/.local/share/acmemail).
The path of the PKCS#12 file is printed on stdout (or JSON with --json); progress goes
to stderr, and ends with what to do next: import the file into your mail client (see
"Importing the PKCS#12 file" in the README) and leave renewal to acmemail renew.

--server takes a directory URL or a name: "sandbox" (an embedded test CA and mail
world on loopback, nothing to configure), "castle" (CASTLE Platform ACME) or
"castle-staging".

--imap and --smtp take URLs: imaps://host:993 (TLS), imap://host:143 (STARTTLS),
smtps://host:465 (TLS), smtp://host:587 (STARTTLS). A bare host:port picks by port.
` + discoveryHelp + `

Passwords never come from flag values (they would show in ps).
` + credentialsHelp + `
The PKCS#12 password comes from --p12-password-file, ACMEMAIL_P12_PASSWORD or a
prompt. Extra trusted roots for HTTPS, IMAP and SMTP come from the PEM file named
by ACMEMAIL_CA_ROOTS.

Keys and files: --key-type rsa2048 (the default) is accepted by every S/MIME client;
p256 and p384 are smaller EC keys for current clients. --usage sign|encrypt|both sets
the CSR's keyUsage (encryption is keyEncipherment for RSA, keyAgreement for EC);
--split gets a signing and an encryption certificate in one run, with two keys.
--p12-profile modern (the default: AES-256, SHA-256 MAC) opens in every maintained
mail client; legacy (3DES, SHA-1 MAC) is for old Windows, macOS, iOS and Android.
--also ADDR puts more addresses into the same certificate (each challenge is answered
from the mailbox that receives it; see --also-imap). Internationalized addresses
work: the domain is sent in A-labels, a non-ASCII local part as an SmtpUTF8Mailbox.
The CA's certificate is checked before it is saved (our key, exactly the addresses,
emailProtection, the chain; --issuer-roots to verify it to the CA's root).

Without IMAP and SMTP (RFC 8823 keeps challenge and reply plain text):
--manual prints what will arrive, reads the challenge mail pasted on stdin (ended by
a line holding only "." or by Ctrl-D) or from --challenge-file FILE (after Enter),
checks it by the same rules as mail read over IMAP, prints the complete reply for
you to send from your own account, waits for Enter (or --yes), and only then asks
the CA to validate. A person takes longer to paste than --mail-wait allows, so with
--manual the challenge is POSTed only after the reply unless --mail-wait is given
(give a short one, such as 1s, for a CA that mails only after the POST).
--pipe waits instead for "acmemail respond", run by your mail filter (procmail, Sieve,
an MTA pipe), to hand over the challenge mail; it is checked here, by the same rules,
and respond sends or prints the reply. See acmemail respond --help.

--deploy-hook CMD runs CMD with sh -c (cmd.exe /c on Windows) once the certificate is saved (and after every
renewal: acmemail renew repeats it), with ACMEMAIL_EMAIL, ACMEMAIL_CERT_USAGE (sign,
encrypt or both), ACMEMAIL_P12_PATH, ACMEMAIL_CERT_PATH (the leaf),
ACMEMAIL_CHAIN_PATH (leaf first), ACMEMAIL_KEY_PATH, ACMEMAIL_SERIAL and
ACMEMAIL_NOT_AFTER (RFC 3339) in its environment, and no password. With --split it
runs once per certificate, the signing one (ACMEMAIL_CERT_USAGE=sign) first, then the
encryption one (encrypt), each with its own files in the state directory (not the
--out file); renew does the same. If it fails, acmemail exits 7; the certificates
stay saved.

A certificate that is valid and not due for renewal (renew's decision; both of a
--split pair) is kept, like certbot keeps it: obtain says so and when it is due,
prints its PKCS#12 path (--json: "action": "kept"), writes nothing and exits 0, even
when its flags would change what renew repeats (they are not recorded then).
--force gets a new certificate anyway (and applies such changes).

An interrupted obtain (Ctrl-C, a crash, even SIGKILL) is continued by the next run
for the same address: the same order and key, and an answered challenge is never
answered again. Two runs for one address never overlap: the second exits with
status 8, or waits with --wait-lock.`

const obtainExample = `  # Try it against the embedded sandbox CA:
  ACMEMAIL_P12_PASSWORD=test acmemail obtain --server sandbox alice@example.test

  # A real certificate; the mail password is asked on the terminal:
  acmemail obtain --server castle --imap imaps://imap.example.com \
      --smtp smtps://smtp.example.com alice@example.com

  # Servers found from the address (SRV, autoconfig), password from a password manager:
  acmemail obtain --server castle --password-command 'pass show mail/alice' alice@example.com

  # Gmail or Microsoft 365: OAuth2, the access token from a helper such as oama:
  acmemail obtain --server castle --oauth-token-command 'oama access alice@gmail.com' alice@gmail.com

  # Without IMAP and SMTP: paste the challenge mail, send the printed reply yourself:
  acmemail obtain --server castle --manual alice@example.com

  # Let procmail hand the challenge mail to "acmemail respond":
  acmemail obtain --server castle --pipe alice@example.com`

func newObtainCmd(g *globals) *cobra.Command {
	var o obtainOptions
	cmd := &cobra.Command{
		Use:     "obtain EMAIL",
		Short:   "Obtain an S/MIME certificate for EMAIL",
		Long:    obtainLong,
		Example: obtainExample,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ext.mailWaitSet = cmd.Flags().Changed("mail-wait")
			return runObtain(cmd.Context(), g, cmd, &o, args[0])
		},
	}
	o.addFlags(cmd.Flags())
	o.ext.addFlags(cmd.Flags())
	g.settingsCheck(cmd, func(email string) error {
		o.getenv = g.getenv
		_, err := o.settle(email, nil, cmd.Flags().Changed)
		return err
	})
	return cmd
}

func (o *obtainOptions) addFlags(f *pflag.FlagSet) {
	o.addServerMailFlags(f)
	f.StringVar(&o.keyType, "key-type", "rsa2048", "certificate key type: rsa2048, rsa3072, rsa4096, p256, p384")
	f.StringVar(&o.usage, "usage", "both", "what the certificate is for: sign, encrypt or both")
	f.StringVar(&o.out, "out", "", "also write the PKCS#12 file here (must not exist)")
	f.StringVar(&o.p12PasswordFile, "p12-password-file", "", "read the PKCS#12 password from the first line of this file")
	f.StringVar(&o.p12Profile, "p12-profile", "modern", "PKCS#12 encryption: modern (AES-256, SHA-256 MAC) or legacy (3DES, SHA-1 MAC, for old importers)")
	f.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up after this long")
	f.BoolVar(&o.json, "json", false, "print the result as JSON on stdout")
	f.StringVar(&o.join, "join", "", `how the CA joins token-part1 and token-part2: "string" or "octet" (default: per server; string for unknown CAs)`)
	f.DurationVar(&o.mailWait, "mail-wait", acmemail.DefaultMailWait, "how long to wait for the challenge mail before asking the CA to send it")
	f.DurationVar(&o.replySettle, "reply-settle", -1, "pause between sending the reply and asking the CA to validate (0 with the sandbox)")
	// -1 means "per server"; the help shows what that is, not -1ns.
	f.Lookup("reply-settle").DefValue = issuer.DefaultReplySettle.String()
	f.BoolVar(&o.agreeTOS, "agree-tos", false, "agree to the CA's terms of service when creating an account")
	f.StringSliceVar(&o.contact, "contact", nil, "contact address for a new ACME account (repeatable; default: EMAIL itself)")
	f.BoolVar(&o.noContact, "no-contact", false, "create a new ACME account without a contact address (some CAs refuse that)")
	f.BoolVar(&o.skipMailAuth, "insecure-skip-mail-auth", false, "answer challenge mail WITHOUT checking DKIM or S/MIME (test CAs only)")
	f.StringVar(&o.trustAuthserv, "trust-authserv-id", "", "trust Authentication-Results headers by this authserv-id (your own provider's receiving server only)")
	f.StringVar(&o.smimeRoots, "smime-roots", "", "PEM file of roots trusted for S/MIME-signed challenge mail")
	f.StringVar(&o.issuerRoots, "issuer-roots", "", "PEM file of the CA's roots: the issued chain must verify to one of them (default: the sandbox's root; else only checked to link up)")
	o.eab.addFlags(f)
	o.also.addFlags(f)
	f.BoolVar(&o.split, "split", false, "obtain two certificates in one run: one for signing and one for encryption (two orders, two keys)")
	f.BoolVar(&o.force, "force", false, "get a new certificate even if the current one is valid and not due for renewal (which obtain keeps)")
	o.life.addFlags(f)
}

// addServerMailFlags adds the flags that say which CA and which mail
// account to use; obtain and doctor share them (add new login flags here,
// and flags only obtain has to addFlags).
func (o *obtainOptions) addServerMailFlags(f *pflag.FlagSet) {
	f.StringVar(&o.server, "server", "castle", "ACME directory URL, or a name: sandbox, castle, castle-staging")
	f.StringVar(&o.imap, "imap", "", "IMAP server URL (imaps://host:993, imap://host:143 for STARTTLS)")
	f.StringVar(&o.mailboxName, "mailbox", "INBOX", "IMAP mailbox (folder) the challenge mail arrives in")
	f.StringVar(&o.dnsResolver, "dns-resolver", "", "DNS server (HOST:PORT) for DKIM key lookups (default: the system resolver)")
	o.addSubmissionFlags(f)
	o.cred.addFlags(f)
	o.sandbox.AddFlags(f, true)
}

// addSubmissionFlags adds the flags for logging in to the submission
// server (and IMAP, which uses the same login); respond has only these.
func (o *obtainOptions) addSubmissionFlags(f *pflag.FlagSet) {
	f.StringVar(&o.smtp, "smtp", "", "submission server URL (smtps://host:465, smtp://host:587 for STARTTLS)")
	f.StringVar(&o.user, "user", "", "mail login name (default EMAIL)")
	f.StringVar(&o.passwordFile, "password-file", "", "read the mail password from the first line of this file")
	f.BoolVar(&o.insecure, "insecure", false, "allow unencrypted IMAP/SMTP, to loopback addresses only")
}

func runObtain(ctx context.Context, g *globals, cmd *cobra.Command, o *obtainOptions, email string) error {
	o.getenv = g.getenv
	norm, err := checkEmail(email)
	if err != nil {
		return err
	}
	secrets := &secret.Run{Sources: g.secretSources()}
	is, err := newIssuer(g, secrets)
	if err != nil {
		return err
	}
	is.EAB = func() (*acmemail.EAB, error) { return o.eab.load(g) }
	// Obtain again for a managed address keeps what it is not told to change.
	var base *issuer.Profile
	if rec, _, err := is.LoadProfile(norm); err == nil && rec.Server != "sandbox" {
		base = &rec
	}
	p, err := o.settle(norm, base, cmd.Flags().Changed)
	if err != nil {
		return err
	}
	if err := checkOut(o.out); err != nil {
		return err
	}
	if err := settingErr(issuer.CheckHook(p.DeployHook)); err != nil {
		return err
	}
	if k := is.Keep(p, time.Now()); k != nil && !o.force {
		return printKept(g, o, k, base, p)
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	prog := newProgress(g.stderr)
	prog.Deadline, _ = ctx.Deadline()

	// Secrets first: fail before anything is sent if one is missing.
	if _, err := secrets.P12Password(ctx, &p); err != nil {
		return err
	}
	opts := issuer.ObtainOptions{Progress: prog, WaitLock: o.life.waitLock, AgreeTOS: o.agreeTOS}
	switch {
	case p.Server == "sandbox":
		w, err := startSandbox(ctx, g, o, &p, secrets)
		if err != nil {
			return err
		}
		defer w.Close()
		opts.World = w
	case !o.ext.active():
		if err := discoverServers(ctx, g, prog, &p, o.cred.rediscover); err != nil {
			return err
		}
	}
	if base != nil {
		if changes := describeChanges(*base, p); len(changes) > 0 {
			prog.Printf("%s was obtained before; this run changes what renew repeats: %s", norm, strings.Join(changes, "; "))
		}
	}
	if o.ext.active() {
		ext, err := openExternal(g, prog, is.Store.Dir, norm, &o.ext)
		if err != nil {
			return err
		}
		defer ext.Close()
		opts.Mail, opts.Observe = ext, ext.Observe
		if p, ok := ext.(*issuer.PipeMail); ok {
			// A challenge is claimed only while its respond is connected.
			opts.Guard = p.Guard
		}
		if o.ext.manual && !o.ext.mailWaitSet {
			opts.MailWait = manualMailWait(o.timeout)
		}
	}
	res, err := is.Obtain(ctx, p, opts)
	if err != nil && (res == nil || len(res.Certs) == 0) {
		return cliError(termout.TimeoutError(ctx, err, o.timeout))
	}
	if p.Split {
		if len(res.Certs) < 2 {
			return err
		}
		return errors.Join(printSplitResult(g, o, res), err)
	}
	hookErr := err
	c := res.Certs[0]
	p12Path := c.Paths.PKCS12
	if o.out != "" {
		if err := writeNewFile(o.out, c.P12); err != nil {
			return fmt.Errorf("write --out: %w (the certificate is saved in %s)", err, c.Paths.Dir)
		}
		p12Path = o.out
	}
	if opts.World != nil {
		prog.Printf("the sandbox issued it; it is trusted by no mail client (its root is a test root)")
	}
	prog.Printf("saved the certificate for %s (valid until %s)", norm, c.Meta.NotAfter.UTC().Format(time.DateOnly))
	if opts.World == nil {
		prog.Printf("next: import %s into your mail client with the PKCS#12 password; 'acmemail renew', run from cron, renews it when due (see acmemail renew --help)", p12Path)
	} else {
		prog.Printf("next: the files are in %s; for a real certificate, check your mail account with 'acmemail doctor EMAIL' first", c.Paths.Dir)
	}
	if o.json {
		if err := json.NewEncoder(g.stdout).Encode(issuer.IssuedResult(res, c, p12Path)); err != nil {
			return err
		}
	} else if _, err := fmt.Fprintln(g.stdout, p12Path); err != nil {
		return err
	}
	return hookErr
}

// startSandbox starts the in-process sandbox for p (issuer.StartSandbox)
// with the logins the secret sources make for it.
func startSandbox(ctx context.Context, g *globals, o *obtainOptions, p *issuer.Profile, secrets *secret.Run) (*sandbox.World, error) {
	opts, err := o.sandbox.Options()
	if err != nil {
		return nil, err
	}
	opts.Logger = g.logger().With("component", "sandbox")
	sb, err := issuer.StartSandbox(ctx, opts, p, func(w *sandbox.World) (mailbox.Credentials, error) {
		return secrets.Sources.SandboxLogin(ctx, p, w, opts.OAuth)
	})
	if err != nil {
		return nil, err
	}
	secrets.SandboxLogin, secrets.SandboxAlso = &sb.Login, sb.AlsoPasswords
	return sb.World, nil
}

// printKept says that obtain kept the current certificate k (nothing is
// written) and prints it as a run that issued it would.
func printKept(g *globals, o *obtainOptions, k *issuer.Kept, base *issuer.Profile, p issuer.Profile) error {
	var changes []string
	if base != nil {
		p.IMAP, p.SMTP = cmp.Or(p.IMAP, base.IMAP), cmp.Or(p.SMTP, base.SMTP) // not looked up again
		changes = describeChanges(*base, p)
	}
	prog := newProgress(g.stderr)
	for _, m := range k.Message(changes, o.out) {
		prog.Printf("%s", m)
	}
	rs := k.Results()
	switch {
	case o.json && len(rs) == 2:
		return json.NewEncoder(g.stdout).Encode(splitResult{Action: issuer.ActionKept, Signing: rs[0], Encryption: rs[1]})
	case o.json:
		return json.NewEncoder(g.stdout).Encode(rs[0])
	}
	for _, r := range rs {
		if _, err := fmt.Fprintln(g.stdout, r.PKCS12); err != nil {
			return err
		}
	}
	return nil
}

// checkEmail validates an address given on the command line, in the
// environment or in the configuration file and returns it normalized
// (acmemail.NormalizeAddress): in Unicode NFC, the domain lowercased and
// in A-labels, the local part's case as given (it may be
// internationalized). Every address is normalized here, once, at the edge.
func checkEmail(s string) (string, error) {
	if strings.HasPrefix(s, "*") {
		return "", usageErrorf("%q: wildcards are not allowed in email identifiers", s)
	}
	n, err := acmemail.NormalizeAddress(s)
	if err != nil {
		err = usageErrorf("%q is not a mail address (want local@domain): %v", s, err)
		if !strings.Contains(s, "@") && strings.Contains(s, ".") {
			err = withHint(err, termout.Escape(s)+" looks like a host name: mail servers' certificates have their own commands (acmemail server --help)")
		}
		return "", err
	}
	return n, nil
}

// checkOut finds, before anything is ordered, what would keep --out from
// being written after the certificate was issued.
func checkOut(path string) error {
	err := issuer.CheckNewFile(path)
	switch {
	case errors.Is(err, fs.ErrExist):
		return withHint(usageErrorf("--out %s exists; acmemail never overwrites it", path), "remove it first, or choose another path")
	case errors.Is(err, fs.ErrNotExist):
		return withHint(usageErrorf("--out %s: the directory %s does not exist", path, filepath.Dir(path)), "create it first (mkdir -p "+filepath.Dir(path)+"), or choose another path")
	case err != nil:
		return withHint(usageErrorf("--out %s: the file cannot be written there: %w", path, err), "choose a directory you can write to")
	}
	return nil
}

func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// plaintextHint explains a refused imap+insecure:// or smtp+insecure://
// URL in the CLI's terms.
const plaintextHint = "imap+insecure:// and smtp+insecure:// are for a test server on this machine: they need --insecure and a loopback address; anything else takes imaps:// or smtps:// (TLS) or imap:// or smtp:// (STARTTLS)"

func imapHints(err error, u string) []string {
	var hints []string
	if errors.Is(err, mailbox.ErrAuthFailed) {
		return nil // printError adds the login hint
	}
	if errors.Is(err, mailbox.ErrPlaintext) {
		return []string{plaintextHint}
	}
	msg := err.Error()
	if strings.Contains(msg, "tls") || strings.Contains(msg, "TLS") || strings.Contains(msg, "handshake") {
		hints = append(hints, "if the server uses STARTTLS on port 143, use imap://HOST:143; for implicit TLS on 993, imaps://HOST:993")
	}
	if strings.Contains(msg, "certificate") {
		hints = append(hints, "for a private CA, put its root in a PEM file and set ACMEMAIL_CA_ROOTS to its path")
	}
	if strings.Contains(msg, "refused") || strings.Contains(msg, "no such host") {
		hints = append(hints, "check the host and port in --imap "+u)
	}
	if strings.Contains(msg, "imap greeting from") || strings.Contains(msg, `unknown tag "220"`) {
		// A "220 ..." greeting is an SMTP server's.
		hints = append(hints, "the server did not greet like an IMAP server: is "+u+" the IMAP server's port (993 for imaps://, 143 for imap://)? 465 and 587 are submission ports, for --smtp")
	}
	return hints
}

func smtpHints(err error) []string {
	if errors.Is(err, mailbox.ErrAuthFailed) {
		return nil
	}
	if errors.Is(err, mailbox.ErrPlaintext) {
		return []string{plaintextHint}
	}
	msg := err.Error()
	var hints []string
	if strings.Contains(msg, "tls") || strings.Contains(msg, "TLS") || strings.Contains(msg, "STARTTLS") {
		hints = append(hints, "port 465 wants smtps:// (implicit TLS); port 587 wants smtp:// (STARTTLS)")
	}
	if strings.Contains(msg, "certificate") {
		hints = append(hints, "for a private CA, put its root in a PEM file and set ACMEMAIL_CA_ROOTS to its path")
	}
	if strings.Contains(msg, "* OK") || strings.Contains(msg, "* PREAUTH") {
		// An IMAP server's greeting where SMTP's 220 belongs.
		hints = append(hints, "the server greeted like an IMAP server: is --smtp the submission server's port (465 for smtps://, 587 for smtp://)? 993 and 143 are IMAP ports, for --imap")
	}
	return hints
}
