package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
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

// doctorCheck is one line of the report.
type doctorCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Status string `json:"status"` // pass, warn, fail, skip
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

type doctorReport struct{ checks []doctorCheck }

func (r *doctorReport) add(name, status, detail, fix string) {
	r.checks = append(r.checks, doctorCheck{Name: name, OK: status == "pass" || status == "warn", Status: status, Detail: detail, Fix: fix})
}

func (r *doctorReport) pass(name, format string, args ...any) {
	r.add(name, "pass", fmt.Sprintf(format, args...), "")
}

func (r *doctorReport) skip(name, why string) { r.add(name, "skip", why, "") }

func (r *doctorReport) failed() []string {
	var names []string
	for _, c := range r.checks {
		if c.Status == "fail" {
			names = append(names, c.Name)
		}
	}
	return names
}

func (r *doctorReport) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range r.checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", strings.ToUpper(c.Status), c.Name, c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", c.Fix)
		}
	}
	return tw.Flush()
}

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
	secrets := &runSecrets{g: g}
	d := &doctorRun{p: &p, prog: prog}
	if p.Server == "sandbox" {
		w, err := startSandbox(ctx, g, &o.obtainOptions, &p, secrets)
		if err != nil {
			return err
		}
		defer w.Close()
		d.world = w
		prog.printf("started the sandbox CA at %s", w.DirectoryURL)
	} else if err := discoverServers(ctx, g, prog, &p, o.cred.rediscover); err != nil {
		return err
	}
	switch {
	case d.world != nil:
		d.lookupTXT = d.world.LookupTXT
	case p.DNSResolver != "":
		res, err := issuer.Resolver(p.DNSResolver)
		if err != nil {
			return settingErr(err)
		}
		d.lookupTXT = res.LookupTXT
	}
	if d.dirURL, _, err = p.Directory(d.world); err != nil {
		return settingErr(err)
	}
	var extra []byte
	if d.world != nil {
		extra = d.world.TLSRootsPEM
	}
	if d.pool, err = issuer.RootPool(p.CARoots, extra); err != nil {
		return settingErr(err)
	}
	imapCreds, smtpCreds, err := secrets.MailLogin(ctx, &p)
	if err != nil {
		return err
	}
	imapCfg, smtpCfg, err := issuer.MailConfigs(&p, d.pool, g.logger(), g.protocolTrace, p.IMAP, p.SMTP, imapCreds, smtpCreds, "")
	if err != nil {
		return settingErr(err)
	}

	var r doctorReport
	// stopped reports the checks done so far when ctx ended: on --timeout
	// with a clear error, on an interrupt as such.
	stopped := func() error {
		err := ctx.Err()
		if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		r.print(g.stderr)
		return withHint(fmt.Errorf("doctor did not finish within --timeout %s (%d checks done, shown above)", o.timeout, len(r.checks)),
			"a server that does not answer is the likely cause; raise --timeout to wait longer")
	}
	watcher := doctorIMAP(ctx, &r, imapCfg, p.IMAP)
	if watcher != nil {
		defer watcher.Close()
	}
	if ctx.Err() != nil {
		return stopped()
	}
	sender := doctorSMTP(ctx, &r, smtpCfg)
	if sender != nil {
		defer sender.Close()
	}
	if ctx.Err() != nil {
		return stopped()
	}
	switch {
	case watcher == nil && sender == nil:
		r.skip("dkim", "needs imap-login and smtp-login")
	case watcher == nil:
		r.skip("dkim", "needs imap-login")
	case sender == nil:
		r.skip("dkim", "needs smtp-login")
	default:
		doctorDKIM(ctx, d, &r, watcher, sender, imapCfg, o)
	}
	if ctx.Err() != nil {
		return stopped()
	}
	doctorCA(ctx, d, &r)
	if ctx.Err() != nil {
		return stopped()
	}

	if o.json {
		if err := json.NewEncoder(g.stdout).Encode(r.checks); err != nil {
			return err
		}
	} else if err := r.print(g.stdout); err != nil {
		return err
	}
	if failed := r.failed(); len(failed) > 0 {
		return fmt.Errorf("%d of %d checks failed: %s", len(failed), len(r.checks), strings.Join(failed, ", "))
	}
	var warned []string
	for _, c := range r.checks {
		if c.Status == "warn" {
			warned = append(warned, c.Name)
		}
	}
	if len(warned) > 0 {
		prog.printf("no check failed for %s; %d warned (%s): see their fix lines", p.Email, len(warned), strings.Join(warned, ", "))
		return nil
	}
	prog.printf("all checks passed for %s", p.Email)
	return nil
}

// doctorIMAP logs in and reports imap-login and imap-idle. It returns the
// watcher (nil if the login failed), which already watches for new mail.
func doctorIMAP(ctx context.Context, r *doctorReport, cfg mailbox.IMAPConfig, imapURL string) *mailbox.Watcher {
	w, err := mailbox.Watch(ctx, cfg)
	if err != nil {
		fix := strings.Join(imapHints(err, imapURL), "; ")
		if errors.Is(err, mailbox.ErrAuthFailed) {
			fix = "check --user and the password (ACMEMAIL_PASSWORD or --password-file); many providers need an app password for IMAP"
		}
		if fix == "" {
			fix = "check the host, port and scheme in --imap " + imapURL + " (imaps:// for TLS on 993, imap:// for STARTTLS on 143)"
		}
		r.add("imap-login", "fail", err.Error(), fix)
		r.skip("imap-idle", "needs imap-login")
		return nil
	}
	r.pass("imap-login", "logged in to %s as %s; %s is open", cfg.Endpoint, cfg.Username, cfg.Mailbox)
	if w.UsesIdle() {
		r.pass("imap-idle", "the server supports IDLE: acmemail sees the challenge mail as soon as it arrives")
	} else {
		r.add("imap-idle", "warn", "the server does not support IDLE: acmemail checks for new mail every 5 s instead",
			"nothing is needed; it is only slower (a CA with a short validation window may need --mail-wait raised)")
	}
	return w
}

// doctorSMTP logs in to the submission server and reports smtp-login.
func doctorSMTP(ctx context.Context, r *doctorReport, cfg mailbox.SMTPConfig) *mailbox.Sender {
	sender := mailbox.NewSender(cfg)
	if err := sender.Prepare(ctx); err != nil {
		sender.Close()
		fix := strings.Join(smtpHints(err), "; ")
		if errors.Is(err, mailbox.ErrAuthFailed) {
			fix = "check --user and the password; many providers need an app password for SMTP submission"
		}
		if fix == "" {
			fix = "check the host, port and scheme in --smtp (smtps:// for TLS on 465, smtp:// for STARTTLS on 587)"
		}
		r.add("smtp-login", "fail", err.Error(), fix)
		return nil
	}
	r.pass("smtp-login", "logged in to %s as %s", cfg.Endpoint, cfg.Username)
	return sender
}

// doctorTestMessage is a message with the header fields of an RFC 8823
// reply (see acmemail.ComposeReply), so its signature is checked as a CA
// would check the reply's.
func doctorTestMessage(email, msgID string, now time.Time) []byte {
	var b bytes.Buffer
	for _, f := range [][2]string{
		{"Date", now.Format(time.RFC1123Z)},
		{"Message-ID", msgID},
		{"From", email},
		{"To", email},
		{"Subject", "acmemail doctor: DKIM test " + strings.Trim(msgID, "<>")},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=us-ascii"},
		{"Content-Transfer-Encoding", "7bit"},
	} {
		b.WriteString(f[0] + ": " + f[1] + "\r\n")
	}
	b.WriteString("\r\nacmemail doctor sent this message to itself to check that mail you send\r\n" +
		"through your submission server arrives DKIM-signed by your domain, as ACME\r\n" +
		"CAs for S/MIME certificates (RFC 8823) require of your reply. It deletes the\r\n" +
		"message after the check; if it is still here, you can delete it.\r\n")
	return b.Bytes()
}

// doctorDKIM sends the test message to EMAIL itself and checks the copy
// that arrives.
// doctorRun is what the checks of one doctor run share.
type doctorRun struct {
	p      *issuer.Profile
	prog   *progress
	world  *sandbox.World // the in-process sandbox, or nil
	dirURL string
	pool   *x509.CertPool
	// lookupTXT finds DKIM keys: the sandbox's DNS, --dns-resolver or
	// the system's.
	lookupTXT func(context.Context, string) ([]string, error)
}

func doctorDKIM(ctx context.Context, s *doctorRun, r *doctorReport, w *mailbox.Watcher, sender *mailbox.Sender, imapCfg mailbox.IMAPConfig, o *doctorOptions) {
	email := s.p.Email
	domain := email[strings.LastIndexByte(email, '@')+1:]
	msgID := "<doctor." + issuer.RandomToken() + "@" + domain + ">"
	raw := doctorTestMessage(email, msgID, time.Now())
	if err := sender.Send(ctx, email, []string{email}, raw); err != nil {
		r.add("dkim", "fail", "sending the test message to "+email+" failed: "+err.Error(),
			"the submission server must accept mail from "+email+" to "+email+"; check that --user may send as "+email)
		return
	}
	s.prog.printf("sent a test message to %s; waiting up to %s for it to arrive in %s", email, o.mailTimeout, imapCfg.Mailbox)
	got, err := doctorAwait(ctx, w, msgID, o.mailTimeout)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		r.add("dkim", "fail", fmt.Sprintf("the test message did not arrive in %s within %s (%v)", imapCfg.Mailbox, o.mailTimeout, err),
			"look for it in the spam folder (then use --mailbox Junk) or raise --mail-timeout; some providers do not deliver mail you send to yourself to the inbox")
		return
	}
	defer func() {
		if o.keepTest {
			return
		}
		res, err := mailbox.Remove(ctx, imapCfg, msgID)
		c := &r.checks[len(r.checks)-1]
		switch {
		case err != nil:
			c.Detail += "; the test message could not be deleted (" + err.Error() + ")"
		case res.Expunged:
			c.Detail += "; the test message was deleted"
		case res.Found > 0:
			c.Detail += "; the test message was flagged as deleted (the server has no UID EXPUNGE)"
		}
	}()
	v := &acmemail.MailVerifier{LookupTXT: s.lookupTXT}
	res, err := v.Verify(ctx, got, email)
	if err != nil {
		r.add("dkim", "fail", "the test message arrived, but a CA would reject a reply signed like it: "+err.Error(), dkimFix(err.Error(), domain))
		return
	}
	detail := fmt.Sprintf("the test message arrived DKIM-signed by d=%s and the signature verifies", res.Domain)
	for _, w := range res.Warnings {
		// The verifier's warnings are about challenge mails; only the
		// one about fields the message has but h= leaves out matters
		// here: RFC 8823 §3.2 wants a reply's h= to cover them.
		if _, rest, ok := strings.Cut(w, "the mail's "); ok && strings.HasSuffix(rest, " could have been changed") {
			fields := strings.TrimSuffix(rest, " could have been changed")
			r.add("dkim", "warn", detail+", but its h= does not cover the message's "+fields,
				"a CA that checks h= strictly may refuse such a reply: have the signer also sign Date, Message-ID, In-Reply-To, References, Content-Type and Content-Transfer-Encoding (OpenDKIM: SignHeaders)")
			return
		}
	}
	r.pass("dkim", "%s", detail)
}

func dkimFix(reason, domain string) string {
	switch {
	case strings.Contains(reason, "no DKIM signature"):
		return "your provider does not DKIM-sign mail submitted through --smtp: turn on DKIM signing for " + domain +
			" in its settings (and publish the key it gives you in DNS), or use a provider that signs; RFC 8823 CAs reject unsigned replies"
	case strings.Contains(reason, "not by the From domain") || strings.Contains(reason, "not by "+domain+" itself"):
		return "your provider signs with its own domain, not with " + domain + ": set up DKIM for your own domain (\"custom domain DKIM\") in its settings"
	case strings.Contains(reason, "cannot be found in DNS") || strings.Contains(reason, "cannot be looked up"):
		return "the DKIM key is not published (or not reachable) in DNS: publish the selector's TXT record for " + domain + ", or check --dns-resolver"
	case strings.Contains(reason, "does not sign"):
		return "the provider's DKIM signature leaves out header fields a reply has; ask it to sign From, To, Subject, Date, Message-ID and the Content-* fields"
	}
	return "make sure mail submitted through --smtp is DKIM-signed by " + domain + " and not changed on the way to your inbox"
}

// doctorAwait returns the message with Message-ID msgID that arrives in
// the watched mailbox, skipping all others.
func doctorAwait(ctx context.Context, w *mailbox.Watcher, msgID string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		raw, err := w.Next(ctx)
		if err != nil {
			return nil, err
		}
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err == nil && strings.TrimSpace(m.Header.Get("Message-Id")) == msgID {
			return raw, nil
		}
	}
}

// acmeDirectory is what doctor reads from a directory.
type acmeDirectory struct {
	NewNonce   string `json:"newNonce"`
	NewAccount string `json:"newAccount"`
	NewOrder   string `json:"newOrder"`
	Meta       struct {
		TermsOfService          string `json:"termsOfService"`
		Website                 string `json:"website"`
		ExternalAccountRequired bool   `json:"externalAccountRequired"`
	} `json:"meta"`
}

// doctorCA reports ca-directory and ca-email.
func doctorCA(ctx context.Context, s *doctorRun, r *doctorReport) {
	hc := httpClient(s.pool)
	fixReach := "check --server " + s.p.Server + " and your network; for a private CA, put its root in a PEM file named by ACMEMAIL_CA_ROOTS"
	dir, err := fetchDirectory(ctx, hc, s.dirURL)
	if err != nil {
		r.add("ca-directory", "fail", err.Error(), fixReach)
		r.skip("ca-email", "needs ca-directory")
		return
	}
	if err := checkNonce(ctx, hc, dir.NewNonce); err != nil {
		r.add("ca-directory", "fail", "the directory "+s.dirURL+" can be read, but "+err.Error(), "the CA is not working; try again later or ask its operator")
		r.skip("ca-email", "needs ca-directory")
		return
	}
	detail := "the directory " + s.dirURL + " is reachable and newNonce answers"
	if dir.Meta.TermsOfService != "" {
		detail += "; terms of service: " + dir.Meta.TermsOfService + " (obtain asks you to agree with --agree-tos)"
	}
	if dir.Meta.ExternalAccountRequired {
		r.add("ca-directory", "warn", detail+"; the CA requires external account binding (EAB) for new accounts",
			"get an EAB key ID and HMAC key from the CA before creating an account")
	} else {
		r.pass("ca-directory", "%s", detail)
	}
	switch {
	case s.world != nil:
		r.pass("ca-email", "the sandbox CA issues S/MIME certificates for email identifiers (RFC 8823, email-reply-00)")
	case issuer.NamedServers[s.p.Server].URL != "":
		r.pass("ca-email", "%s is known to issue for email identifiers (RFC 8823, email-reply-00)", s.p.Server)
	default:
		r.add("ca-email", "warn",
			"an ACME directory does not say which identifier types a CA accepts, so whether this CA supports email identifiers shows only when an order is placed (doctor places none)",
			"check the CA's documentation for RFC 8823 (email-reply-00); if obtain fails with unsupportedIdentifier, the CA does not support it")
	}
}

func fetchDirectory(ctx context.Context, hc *http.Client, u string) (*acmeDirectory, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("the directory URL %s: %w", u, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the directory: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("fetch the directory %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch the directory %s: HTTP %s", u, resp.Status)
	}
	var dir acmeDirectory
	if err := json.Unmarshal(body, &dir); err != nil {
		return nil, fmt.Errorf("%s is not an ACME directory (not JSON: %v)", u, err)
	}
	var missing []string
	for _, f := range [][2]string{{"newNonce", dir.NewNonce}, {"newAccount", dir.NewAccount}, {"newOrder", dir.NewOrder}} {
		if !strings.HasPrefix(f[1], "https://") {
			missing = append(missing, f[0])
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s is not an ACME directory: no HTTPS URL for %s", u, strings.Join(missing, ", "))
	}
	return &dir, nil
}

func checkNonce(ctx context.Context, hc *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("newNonce %s does not answer: %w", u, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 || resp.Header.Get("Replay-Nonce") == "" {
		return fmt.Errorf("newNonce %s answered HTTP %s without a Replay-Nonce", u, resp.Status)
	}
	return nil
}
