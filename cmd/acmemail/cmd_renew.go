package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"golang.org/x/term"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
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

Several addresses are renewed concurrently (--parallel); two runs never work on the
same address at once (see --wait-lock). A revoked certificate is not renewed unless
--force is given.

--deploy-hook (or the one given to obtain) runs after each renewal; see obtain. For
an obtain --split pair it runs once per renewed certificate, as obtain --split runs it.

A certificate that is not due is passed over in silence (cron mails nothing), except
with -v, or when EMAIL is given at a terminal: then a line on stderr says when it is
due.

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
	return cmd
}

// renewOutcome is what happened to one address.
type renewOutcome struct {
	Email    string     `json:"email"`
	Status   string     `json:"status"` // renewed, not-due, skipped, failed
	Reason   string     `json:"reason,omitempty"`
	Error    string     `json:"error,omitempty"`
	RenewAt  *time.Time `json:"renew_at,omitempty"` // when it will be due (not-due)
	Serial   string     `json:"serial,omitempty"`   // of the new certificate (renewed)
	NotAfter *time.Time `json:"not_after,omitempty"`
	PKCS12   string     `json:"pkcs12,omitempty"`
	Replaced string     `json:"replaced,omitempty"` // serial of the certificate it replaces
	// The encryption certificate of an obtain --split pair, renewed along.
	EncryptionSerial string `json:"encryption_serial,omitempty"`
	EncryptionPKCS12 string `json:"encryption_pkcs12,omitempty"`

	err error
}

// renewFailedError is returned when some addresses could not be renewed.
type renewFailedError struct{ failed, total int }

func (e *renewFailedError) Error() string {
	return fmt.Sprintf("%d of %d certificates could not be renewed (see the errors above)", e.failed, e.total)
}

// renewer runs the renewals of one renew command.
type renewer struct {
	g     *globals
	o     *renewOptions
	store *keystore.Store
	hooks *hookRunner
	out   sync.Mutex // stdout and stderr lines

	sayNotDue bool // print "not due" lines without -v

	secretsMu sync.Mutex // one prompt at a time
	p12PW     string
}

func runRenew(ctx context.Context, g *globals, cmd *cobra.Command, o *renewOptions, args []string) error {
	if o.parallel < 1 {
		return usageErrorf("--parallel %d: must be at least 1", o.parallel)
	}
	if o.p12Profile != "" {
		if _, err := keystore.ParseP12Profile(o.p12Profile); err != nil {
			return usageErrorf("--p12-profile %q: choose modern or legacy", o.p12Profile)
		}
	}
	store, err := openState(g.getenv)
	if err != nil {
		return err
	}
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
	r := &renewer{g: g, o: o, store: store, hooks: &hookRunner{stderr: g.stderr}}
	// Someone who typed "acmemail renew EMAIL" at a terminal wants an
	// answer; cron (no terminal) keeps its silence.
	r.sayNotDue = explicit && (newProgress(g.stderr).tty || atTerminal())
	outcomes := make([]renewOutcome, len(emails))
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	for i, email := range emails {
		// The configuration file's table for this address (password
		// source, deploy hook, ...) applies to its renewal only: the flags
		// are set for it here, one address at a time, and copied.
		if err := g.settingsForIdentity(cmd, email); err != nil {
			outcomes[i] = renewOutcome{Email: email, Status: "failed", err: err, Error: err.Error()}
			r.report(&outcomes[i])
			continue
		}
		oi := *o
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				outcomes[i] = renewOutcome{Email: email, Status: "failed", err: ctx.Err()}
				return
			}
			defer func() { <-sem }()
			outcomes[i] = r.one(ctx, &oi, email, explicit)
			r.report(&outcomes[i])
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	failed := 0
	for i := range outcomes {
		if outcomes[i].Status == "failed" || outcomes[i].Status == "renewed" && outcomes[i].err != nil {
			failed++
		}
	}
	if o.json {
		if outcomes == nil {
			outcomes = []renewOutcome{}
		}
		if err := json.NewEncoder(g.stdout).Encode(outcomes); err != nil {
			return err
		}
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
		if oc.err != nil { // the deploy hook failed
			printError(r.g.stderr, oc.err)
		}
	case "failed":
		printError(r.g.stderr, fmt.Errorf("renew %s: %w", oc.Email, oc.err))
	case "skipped":
		if oc.err != nil || r.g.verbose > 0 {
			fmt.Fprintf(r.g.stderr, "acmemail: skipped %s: %s\n", oc.Email, oc.Reason)
		}
	case "not-due":
		if r.g.verbose > 0 || r.sayNotDue {
			fmt.Fprintf(r.g.stderr, "acmemail: %s is not due until %s (%s); --force renews now\n", oc.Email, oc.RenewAt.UTC().Format(time.RFC3339), oc.Reason)
		}
	}
}

// secrets loads the session's mail login (per address: the sources may
// name the address) and returns the PKCS#12 password, read once for all
// addresses; both only when a renewal needs them, and one prompt at a time.
func (r *renewer) secrets(ctx context.Context, s *session, p12File string) (string, error) {
	r.secretsMu.Lock()
	defer r.secretsMu.Unlock()
	if err := s.loadCredentials(ctx); err != nil {
		return "", err
	}
	if r.p12PW == "" {
		pw, err := r.g.secret(secretSource{what: "PKCS#12 password", envVar: "ACMEMAIL_P12_PASSWORD", file: p12File, flag: "p12-password-file", confirm: true})
		if err != nil {
			return "", err
		}
		r.p12PW = pw
	}
	return r.p12PW, nil
}

// identityFromMeta rebuilds the identity obtain used from what it
// recorded with the certificate.
func identityFromMeta(meta keystore.CertMeta) (*identity, error) {
	set := meta.Settings
	if set == nil {
		return nil, withHint(fmt.Errorf("the certificate of %s was obtained by an acmemail that did not record how", meta.Email),
			"run acmemail obtain for it once more; later renewals repeat what it does")
	}
	usage, err := acmemail.ParseUsage(meta.Usage)
	if err != nil {
		return nil, fmt.Errorf("the recorded usage of %s: %w", meta.Email, err)
	}
	id := &identity{
		email: meta.Email, server: set.Server, join: set.Join, imapURL: set.IMAP, smtpURL: set.SMTP,
		user: set.User, mailbox: set.Mailbox, keyType: meta.KeyType, usage: usage,
		profile: keystore.P12Profile(set.P12Profile), insecure: set.Insecure, skipMailAuth: set.SkipMailAuth,
		trustAuthserv: set.TrustAuthservID, smimeRoots: set.SMIMERoots, dnsResolver: set.DNSResolver,
		mailWait: acmemail.DefaultMailWait, replySettle: -1, contact: set.Contact, deployHook: set.DeployHook,
		cred: credFlags{smtpUser: set.SMTPUser, authMech: set.AuthMech},
	}
	if meta.Also != "" {
		id.also = strings.Split(meta.Also, ",")
	}
	id.restoreLogin(set)
	if err := id.restoreKeySettings(set); err != nil {
		return nil, fmt.Errorf("the recorded settings of %s: %w", meta.Email, err)
	}
	if id.cred.authMech == "" {
		id.cred.authMech = "auto"
	}
	if id.mailbox == "" {
		id.mailbox = "INBOX"
	}
	if id.profile == "" {
		id.profile = "modern"
	}
	if set.MailWait != "" {
		if id.mailWait, err = time.ParseDuration(set.MailWait); err != nil {
			return nil, fmt.Errorf("the recorded mail wait of %s: %w", meta.Email, err)
		}
	}
	if set.ReplySettle != "" {
		if id.replySettle, err = time.ParseDuration(set.ReplySettle); err != nil {
			return nil, fmt.Errorf("the recorded reply settle of %s: %w", meta.Email, err)
		}
	}
	return id, nil
}

// one renews email if it is due (or forced).
func (r *renewer) one(ctx context.Context, o *renewOptions, email string, explicit bool) (oc renewOutcome) {
	oc = renewOutcome{Email: email}
	fail := func(err error) renewOutcome {
		oc.Status, oc.err, oc.Error = "failed", err, err.Error()
		return oc
	}
	skip := func(reason string, notify bool) renewOutcome {
		oc.Status, oc.Reason = "skipped", reason
		if notify {
			oc.err = errors.New(reason)
		}
		return oc
	}
	_, _, meta, _, err := r.store.LoadCertificate(email)
	if errors.Is(err, keystore.ErrNotFound) {
		return fail(withHint(fmt.Errorf("no certificate for %s is managed here", email), "get one with acmemail obtain "+email))
	}
	if err != nil {
		return fail(err)
	}
	if meta.Settings != nil && meta.Settings.Server == "sandbox" {
		// Its CA lived only as long as the obtain process.
		if explicit {
			return fail(withHint(fmt.Errorf("the certificate of %s came from an in-process sandbox, which no longer runs", email),
				"run a sandbox with acmemail sandbox and obtain from its directory URL to test renewals"))
		}
		return skip("its certificate came from an in-process sandbox, which no longer runs", false)
	}
	id, err := identityFromMeta(meta)
	if err != nil {
		return fail(err)
	}
	if o.life.deployHook != "" {
		id.deployHook = o.life.deployHook
	}
	if o.p12Profile != "" {
		id.profile, _ = keystore.ParseP12Profile(o.p12Profile)
	}
	// Where the login comes from is given to renew (flags, config,
	// ACMEMAIL_* variables); what obtain recorded fills the gaps.
	id.cred = id.renewCred(o.cred, r.g.getenv)
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	var progOut io.Writer = io.Discard
	if r.g.verbose > 0 {
		progOut = &lockedWriter{mu: &r.out, w: r.g.stderr}
	}
	s := newSession(r.g, id, newProgress(progOut))
	defer s.Close()
	if err := s.resolveServer(ctx, &sandboxFlags{}); err != nil {
		return fail(err)
	}
	s.store = r.store
	if err := s.lock(ctx, o.life.waitLock); err != nil {
		var le *lockedError
		if errors.As(err, &le) {
			return skip("another acmemail run is working on it", true)
		}
		return fail(err)
	}
	// Read again under the lock: another run may just have renewed it.
	_, chain, meta, _, err := r.store.LoadCertificate(email)
	if err != nil {
		return fail(err)
	}
	leaf := chain[0]
	st := loadRenewalState(r.store, email, meta.Serial)
	if st.Revoked != nil && !o.force {
		return skip(fmt.Sprintf("its certificate was revoked (%s); renew --force or obtain gets a new one", st.RevocationReason), explicit)
	}
	if err := s.newClient(ctx); err != nil {
		return fail(err)
	}
	now := time.Now()
	if !o.force {
		refreshRenewalInfo(ctx, s.client, r.store, email, leaf, &st, now)
		at, why := st.renewAt(leaf)
		if now.Before(at) {
			oc.Status, oc.RenewAt, oc.Reason = "not-due", &at, why
			return oc
		}
	}
	replaces := ""
	if !st.NoRenewalInfo && st.Revoked == nil && now.Before(leaf.NotAfter) {
		if ok, err := s.client.SupportsRenewalInfo(ctx); err == nil && ok {
			replaces, _ = acmemail.CertID(leaf)
		}
	}
	p12PW, err := r.secrets(ctx, s, o.p12PasswordFile)
	if err != nil {
		return fail(err)
	}
	if err := s.openMail(ctx); err != nil {
		return fail(err)
	}
	if err := s.openAlso(ctx); err != nil {
		return fail(err)
	}
	s.client.Mail = s.clientMail()
	res, err := s.issue(ctx, p12PW, issueRequest{replaces: replaces, reuseKey: o.reuseKey})
	var pe *acmemail.ProblemError
	if replaces != "" && errors.As(err, &pe) && pe.ShortType() == "alreadyReplaced" {
		// An earlier order (perhaps one that was given up) already
		// claimed the replacement; order without the claim.
		s.prog.printf("the CA says %s is already being replaced; ordering without replaces", meta.Serial)
		replaces = ""
		res, err = s.issue(ctx, p12PW, issueRequest{reuseKey: o.reuseKey})
	}
	if err != nil {
		return fail(err)
	}
	na := res.meta.NotAfter
	oc.Status, oc.Serial, oc.NotAfter, oc.PKCS12, oc.Replaced = "renewed", res.meta.Serial, &na, res.p12Out, meta.Serial
	enc, err := s.renewEncryptSlot(ctx, r.store, id, p12PW, o.reuseKey)
	if err != nil {
		// The signing certificate is saved; the run still fails, so it is seen.
		oc.err, oc.Error = err, err.Error()
	} else if enc != nil {
		oc.EncryptionSerial, oc.EncryptionPKCS12 = enc.meta.Serial, enc.p12Out
	}
	// The hook runs once per new certificate: for an obtain --split pair
	// also for the encryption one (with ACMEMAIL_CERT_USAGE=encrypt), as
	// obtain --split runs it.
	if err := r.hooks.run(ctx, id.deployHook, res, res.p12Out); err != nil {
		// The certificate is saved; the run still fails, so it is seen.
		oc.err = errors.Join(oc.err, err)
		oc.Error = oc.err.Error()
	}
	if enc != nil {
		if err := r.hooks.run(ctx, id.deployHook, enc, enc.p12Out); err != nil {
			oc.err = errors.Join(oc.err, err)
			oc.Error = oc.err.Error()
		}
	}
	return oc
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
