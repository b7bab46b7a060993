package issuer

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

// CheckStatus is the outcome of one check of a Doctor.
type CheckStatus string

const (
	CheckPass CheckStatus = "pass"
	CheckWarn CheckStatus = "warn" // it works, with a caveat
	CheckFail CheckStatus = "fail"
	CheckSkip CheckStatus = "skip" // not run: a check it needs failed
)

// Cause says why a check failed or warned. What to do about it is the
// caller's to word (a CLI names its own flags): from the Cause, the
// Check's Err and the Profile.
type Cause string

const (
	CauseIMAPLogin       Cause = "imap-login"       // the IMAP login or opening the folder failed (Err)
	CauseNoIdle          Cause = "no-idle"          // warn: the IMAP server has no IDLE, new mail is polled for
	CauseSMTPLogin       Cause = "smtp-login"       // the submission login failed (Err)
	CauseSendRefused     Cause = "send-refused"     // the submission server refused the test message (Err)
	CauseNotArrived      Cause = "not-arrived"      // the test message did not arrive in the folder in time (Err)
	CauseUnsigned        Cause = "unsigned"         // it arrived without a DKIM signature (Err)
	CauseForeignSigner   Cause = "foreign-signer"   // it is signed by a domain other than the address's (Err)
	CauseKeyNotInDNS     Cause = "key-not-in-dns"   // the signature's key cannot be found or looked up in DNS (Err)
	CauseFieldsUnsigned  Cause = "fields-unsigned"  // the signature leaves out fields a reply must have signed (Err)
	CauseNotVerified     Cause = "not-verified"     // the signature does not verify for another reason (Err)
	CauseFieldsUncovered Cause = "fields-uncovered" // warn: h= leaves out fields RFC 8823 wants covered
	CauseCAUnreachable   Cause = "ca-unreachable"   // the directory cannot be fetched or is not an ACME directory (Err)
	CauseCANotWorking    Cause = "ca-not-working"   // the directory's newNonce does not answer (Err)
	CauseEABRequired     Cause = "eab-required"     // warn: new accounts need an external account binding
	CauseEmailUnknown    Cause = "email-unknown"    // warn: whether the CA issues for email identifiers cannot be told
	CauseTimingDamaged   Cause = "timing-damaged"   // warn: the file of what was learned about the CA cannot be used
)

// Check is one check of a Doctor: imap-login, imap-idle, smtp-login,
// dkim, ca-directory or ca-email.
type Check struct {
	Name   string
	Status CheckStatus
	Detail string // what was found, one line
	Cause  Cause  // why it failed or warned; "" otherwise
	Err    error  // the error behind a failure, if any
}

// OK reports whether the check passed, perhaps with a warning.
func (c Check) OK() bool { return c.Status == CheckPass || c.Status == CheckWarn }

// Report is the checks of a Doctor run, in order.
type Report struct {
	Checks []Check
}

// Names are the names of the checks with status s.
func (r *Report) Names(s CheckStatus) []string {
	var names []string
	for _, c := range r.Checks {
		if c.Status == s {
			names = append(names, c.Name)
		}
	}
	return names
}

func (r *Report) add(name string, s CheckStatus, cause Cause, err error, detail string) {
	r.Checks = append(r.Checks, Check{Name: name, Status: s, Detail: detail, Cause: cause, Err: err})
}

func (r *Report) pass(name, format string, args ...any) {
	r.add(name, CheckPass, "", nil, fmt.Sprintf(format, args...))
}

func (r *Report) skip(name, why string) { r.add(name, CheckSkip, "", nil, why) }

// Doctor checks, before any CA is asked for a certificate, that what
// obtaining one for a Profile needs works: the IMAP login and IDLE, the
// submission login, that mail sent as the address arrives DKIM-signed the
// way a CA checks a reply, and that the CA's directory answers. It never
// creates an account or places an order.
type Doctor struct {
	// Profile says which mailboxes and which CA (IMAP and SMTP set).
	Profile Profile
	// World is the in-process sandbox when Profile.Server is "sandbox".
	World   *sandbox.World
	Secrets Secrets      // gives the mail login
	Logger  *slog.Logger // nil: no logs
	// Trace, if set, returns where the raw IMAP or SMTP protocol goes.
	Trace    func(proto string) io.Writer
	Progress Reporter // nil: quiet
	// MailTimeout is how long the test message may take to arrive
	// (<= 0: 2 minutes).
	MailTimeout time.Duration
	// KeepTestMessage leaves the test message in the mailbox.
	KeepTestMessage bool
	// TermsNote is said after the URL of the CA's terms of service in the
	// detail of ca-directory: how they are agreed to.
	TermsNote string
	// Store is the state directory, for what was learned about the CA's
	// timing (ca-timing); nil: no such check.
	Store *keystore.Store
}

// doctorRun is what the checks of one Run share.
type doctorRun struct {
	*Doctor
	p      *Profile
	prog   Reporter
	dirURL string
	pool   *x509.CertPool
	// lookupTXT finds DKIM keys: the sandbox's DNS, the profile's
	// resolver or the system's.
	lookupTXT func(context.Context, string) ([]string, error)
	r         *Report
}

// Run resolves the CA and the mail login, then runs the checks in order.
// A check that fails does not stop the others; one that needs it is
// skipped. An error before the checks (a setting, the login) comes with
// no report. When ctx ends during the checks, Run returns the report of
// the checks done so far with ctx's error.
func (d *Doctor) Run(ctx context.Context) (*Report, error) {
	s := &doctorRun{Doctor: d, p: &d.Profile, prog: reporter(d.Progress), r: &Report{}}
	p := s.p
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case d.World != nil:
		s.lookupTXT = d.World.LookupTXT
	case p.DNSResolver != "":
		res, err := Resolver(p.DNSResolver)
		if err != nil {
			return nil, err
		}
		s.lookupTXT = res.LookupTXT
	}
	var err error
	if s.dirURL, _, err = p.Directory(d.World); err != nil {
		return nil, err
	}
	var extra []byte
	if d.World != nil {
		extra = d.World.TLSRootsPEM
	}
	if s.pool, err = RootPool(p.CARoots, extra); err != nil {
		return nil, err
	}
	imapCreds, smtpCreds, err := d.Secrets.MailLogin(ctx, p)
	if err != nil {
		return nil, err
	}
	imapCfg, smtpCfg, err := MailConfigs(p, s.pool, log, d.Trace, p.IMAP, p.SMTP, imapCreds, smtpCreds, "")
	if err != nil {
		return nil, err
	}

	watcher := s.checkIMAP(ctx, imapCfg)
	if watcher != nil {
		defer watcher.Close()
	}
	if ctx.Err() != nil {
		return s.r, ctx.Err()
	}
	sender := s.checkSMTP(ctx, smtpCfg)
	if sender != nil {
		defer sender.Close()
	}
	if ctx.Err() != nil {
		return s.r, ctx.Err()
	}
	switch {
	case watcher == nil && sender == nil:
		s.r.skip("dkim", "needs imap-login and smtp-login")
	case watcher == nil:
		s.r.skip("dkim", "needs imap-login")
	case sender == nil:
		s.r.skip("dkim", "needs smtp-login")
	default:
		s.checkDKIM(ctx, watcher, sender, imapCfg)
	}
	if ctx.Err() != nil {
		return s.r, ctx.Err()
	}
	s.checkCA(ctx)
	if ctx.Err() != nil {
		return s.r, ctx.Err()
	}
	return s.r, nil
}

// checkIMAP logs in and reports imap-login and imap-idle. It returns the
// watcher (nil if the login failed), which already watches for new mail.
func (s *doctorRun) checkIMAP(ctx context.Context, cfg mailbox.IMAPConfig) *mailbox.Watcher {
	w, err := mailbox.Watch(ctx, cfg)
	if err != nil {
		s.r.add("imap-login", CheckFail, CauseIMAPLogin, err, err.Error())
		s.r.skip("imap-idle", "needs imap-login")
		return nil
	}
	s.r.pass("imap-login", "logged in to %s as %s; %s is open", cfg.Endpoint, cfg.Username, cfg.Mailbox)
	if w.UsesIdle() {
		s.r.pass("imap-idle", "the server supports IDLE: acmemail sees the challenge mail as soon as it arrives")
	} else {
		s.r.add("imap-idle", CheckWarn, CauseNoIdle, nil, "the server does not support IDLE: acmemail checks for new mail every 5 s instead")
	}
	return w
}

// checkSMTP logs in to the submission server and reports smtp-login.
func (s *doctorRun) checkSMTP(ctx context.Context, cfg mailbox.SMTPConfig) *mailbox.Sender {
	sender := mailbox.NewSender(cfg)
	if err := sender.Prepare(ctx); err != nil {
		sender.Close()
		s.r.add("smtp-login", CheckFail, CauseSMTPLogin, err, err.Error())
		return nil
	}
	s.r.pass("smtp-login", "logged in to %s as %s", cfg.Endpoint, cfg.Username)
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

// checkDKIM sends the test message to the address itself and checks the
// copy that arrives, then deletes it.
func (s *doctorRun) checkDKIM(ctx context.Context, w *mailbox.Watcher, sender *mailbox.Sender, imapCfg mailbox.IMAPConfig) {
	email := s.p.Email
	domain := email[strings.LastIndexByte(email, '@')+1:]
	timeout := s.MailTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	msgID := "<doctor." + RandomToken() + "@" + domain + ">"
	raw := doctorTestMessage(email, msgID, time.Now())
	if err := sender.Send(ctx, email, []string{email}, raw); err != nil {
		s.r.add("dkim", CheckFail, CauseSendRefused, err, "sending the test message to "+email+" failed: "+err.Error())
		return
	}
	s.prog.Printf("sent a test message to %s; waiting up to %s for it to arrive in %s", email, timeout, imapCfg.Mailbox)
	got, err := awaitMessage(ctx, w, msgID, timeout)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		s.r.add("dkim", CheckFail, CauseNotArrived, err, fmt.Sprintf("the test message did not arrive in %s within %s (%v)", imapCfg.Mailbox, timeout, err))
		return
	}
	defer func() {
		if s.KeepTestMessage {
			return
		}
		res, err := mailbox.Remove(ctx, imapCfg, msgID)
		c := &s.r.Checks[len(s.r.Checks)-1]
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
		s.r.add("dkim", CheckFail, dkimCause(err.Error(), domain), err, "the test message arrived, but a CA would reject a reply signed like it: "+err.Error())
		return
	}
	detail := fmt.Sprintf("the test message arrived DKIM-signed by d=%s and the signature verifies", res.Domain)
	for _, w := range res.Warnings {
		// The verifier's warnings are about challenge mails; only the
		// one about fields the message has but h= leaves out matters
		// here: RFC 8823 §3.2 wants a reply's h= to cover them.
		if _, rest, ok := strings.Cut(w, "the mail's "); ok && strings.HasSuffix(rest, " could have been changed") {
			fields := strings.TrimSuffix(rest, " could have been changed")
			s.r.add("dkim", CheckWarn, CauseFieldsUncovered, nil, detail+", but its h= does not cover the message's "+fields)
			return
		}
	}
	s.r.pass("dkim", "%s", detail)
}

// dkimCause is why a CA would reject a reply signed like the test
// message, from the verifier's reason.
func dkimCause(reason, domain string) Cause {
	switch {
	case strings.Contains(reason, "no DKIM signature"):
		return CauseUnsigned
	case strings.Contains(reason, "not by the From domain") || strings.Contains(reason, "not by "+domain+" itself"):
		return CauseForeignSigner
	case strings.Contains(reason, "cannot be found in DNS") || strings.Contains(reason, "cannot be looked up"):
		return CauseKeyNotInDNS
	case strings.Contains(reason, "does not sign"):
		return CauseFieldsUnsigned
	}
	return CauseNotVerified
}

// awaitMessage returns the message with Message-ID msgID that arrives in
// the watched mailbox, skipping all others.
func awaitMessage(ctx context.Context, w *mailbox.Watcher, msgID string, timeout time.Duration) ([]byte, error) {
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

// checkCA reports ca-directory and ca-email.
func (s *doctorRun) checkCA(ctx context.Context) {
	hc := HTTPClient(s.pool)
	dir, err := fetchDirectory(ctx, hc, s.dirURL)
	if err != nil {
		s.r.add("ca-directory", CheckFail, CauseCAUnreachable, err, err.Error())
		s.r.skip("ca-email", "needs ca-directory")
		return
	}
	if err := checkNonce(ctx, hc, dir.NewNonce); err != nil {
		s.r.add("ca-directory", CheckFail, CauseCANotWorking, err, "the directory "+s.dirURL+" can be read, but "+err.Error())
		s.r.skip("ca-email", "needs ca-directory")
		return
	}
	detail := "the directory " + s.dirURL + " is reachable and newNonce answers"
	if dir.Meta.TermsOfService != "" {
		detail += "; terms of service: " + dir.Meta.TermsOfService
		if s.TermsNote != "" {
			detail += " (" + s.TermsNote + ")"
		}
	}
	if dir.Meta.ExternalAccountRequired {
		s.r.add("ca-directory", CheckWarn, CauseEABRequired, nil, detail+"; the CA requires external account binding (EAB) for new accounts")
	} else {
		s.r.pass("ca-directory", "%s", detail)
	}
	switch {
	case s.World != nil:
		s.r.pass("ca-email", "the sandbox CA issues S/MIME certificates for email identifiers (RFC 8823, email-reply-00)")
	case NamedServers[s.p.Server].URL != "":
		s.r.pass("ca-email", "%s is known to issue for email identifiers (RFC 8823, email-reply-00)", s.p.Server)
	default:
		s.r.add("ca-email", CheckWarn, CauseEmailUnknown, nil,
			"an ACME directory does not say which identifier types a CA accepts, so whether this CA supports email identifiers shows only when an order is placed (doctor places none)")
	}
	if s.Store != nil && s.World == nil {
		lt := LearnedTimingOf(s.Store, s.dirURL, *s.p)
		if lt.Warning != "" {
			s.r.add("ca-timing", CheckWarn, CauseTimingDamaged, nil, lt.Summary+"; "+lt.Warning)
		} else {
			s.r.pass("ca-timing", "%s", lt.Summary)
		}
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
