package issuer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// Given is what a renew run was given for an address (flags, ACMEMAIL_*
// variables, the configuration file): it wins over what was recorded, and
// what it gives is recorded instead. Empty fields give nothing.
type Given struct {
	Login           Login // sources of the mail login and of a submission password
	MailPassword    bool  // the mail password itself is given (ACMEMAIL_PASSWORD): not recorded
	SMTPPassword    bool  // likewise a submission password (ACMEMAIL_SMTP_PASSWORD)
	SMTPUser        string
	AuthMech        string // "" or "auto": as recorded
	DeployHook      string
	P12Profile      string
	P12PasswordFile string
	CARoots         string
}

// Renewing returns the profile a renewal uses and the one it records:
// p with what renew was given in place of what was recorded. The mail
// login and a separate submission password are decided each on its own:
// a mail password given to renew (a source, or the password itself)
// replaces all recorded mail-login sources, password and token alike; a
// password itself is not recorded, so the recorded source stays for the
// next run. The recorded submission password is that of the recorded
// submission login: another SMTP user given to renew does not get it, and
// it is not recorded beside the new login.
func (p Profile) Renewing(g Given) (use, record Profile) {
	use = p
	givenMail := g.Login.HasMail() || g.MailPassword
	if g.Login.HasMail() {
		use.Login.PasswordCommand, use.Login.PasswordFile, use.Login.OAuthTokenCommand = g.Login.PasswordCommand, g.Login.PasswordFile, g.Login.OAuthTokenCommand
	} else if g.MailPassword {
		use.Login.PasswordCommand, use.Login.PasswordFile, use.Login.OAuthTokenCommand = "", "", ""
	}
	sameSMTPUser := g.SMTPUser == "" || g.SMTPUser == p.SMTPUser
	switch {
	case g.Login.HasSMTP():
		use.Login.SMTPPasswordCommand, use.Login.SMTPPasswordFile = g.Login.SMTPPasswordCommand, g.Login.SMTPPasswordFile
	case !sameSMTPUser:
		use.Login.SMTPPasswordCommand, use.Login.SMTPPasswordFile = "", ""
		p.Login.SMTPPasswordCommand, p.Login.SMTPPasswordFile = "", ""
	case g.SMTPPassword:
		use.Login.SMTPPasswordCommand, use.Login.SMTPPasswordFile = "", ""
	}
	if g.SMTPUser != "" {
		use.SMTPUser = g.SMTPUser
	}
	if g.AuthMech != "" && !strings.EqualFold(g.AuthMech, "auto") {
		use.AuthMech = g.AuthMech
	} else if givenMail && !strings.EqualFold(use.AuthMech, "auto") && IsTokenMech(use.AuthMech) != (g.Login.OAuthTokenCommand != "") {
		// A recorded mechanism that needs a token does not fit a password
		// given to renew, nor one that needs a password a token.
		use.AuthMech = "auto"
	}
	if g.DeployHook != "" {
		use.DeployHook = g.DeployHook
	}
	if g.P12Profile != "" {
		use.P12Profile = g.P12Profile
	}
	if g.P12PasswordFile != "" {
		use.P12PasswordFile = g.P12PasswordFile
	}
	if g.CARoots != "" {
		use.CARoots = g.CARoots
	}
	// What is recorded: the used profile, but the sources of secrets that
	// were given themselves (not recordable) stay as they were.
	record = use
	if !g.Login.HasMail() {
		record.Login.PasswordCommand, record.Login.PasswordFile, record.Login.OAuthTokenCommand = p.Login.PasswordCommand, p.Login.PasswordFile, p.Login.OAuthTokenCommand
	}
	if !g.Login.HasSMTP() {
		record.Login.SMTPPasswordCommand, record.Login.SMTPPasswordFile = p.Login.SMTPPasswordCommand, p.Login.SMTPPasswordFile
	}
	return use.WithDefaults(), record.WithDefaults()
}

// IsTokenMech reports whether a login mechanism takes an OAuth2 token.
func IsTokenMech(m string) bool {
	return strings.EqualFold(m, "oauthbearer") || strings.EqualFold(m, "xoauth2")
}

// RenewOptions are the choices of one renew run.
type RenewOptions struct {
	Force    bool // renew now, due or not (also a revoked certificate)
	ReuseKey bool // keep the certificate's key
	WaitLock bool
	Explicit bool // the address was named: a skip is worth saying
	Given    Given
	Progress Reporter
	Secrets  Secrets       // nil: the Issuer's
	Timeout  time.Duration // > 0: give up on the address after this long

	together *together // set by RenewAll
}

// RenewAll renews emails, at most parallel at once; options gives each
// address's options, called for one address at a time in the order given
// (its error fails the address without trying); report sees each outcome
// as it is made. Addresses not yet started when ctx ends fail with its
// error. The outcomes are in the order of emails.
//
// The renewals share what they can (see Limits): at most is.Limits
// logins in progress per IMAP and per submission server and requests in
// flight per CA, and one IMAP connection per mailbox, whose mail each
// renewal reading it sees; idle ones stay open for later renewals while
// no more than parallel mailboxes are open.
func (is *Issuer) RenewAll(ctx context.Context, emails []string, parallel int, options func(email string) (RenewOptions, error), report func(*Outcome)) []Outcome {
	outcomes := make([]Outcome, len(emails))
	sem := make(chan struct{}, max(parallel, 1))
	t := newTogether(is.Limits, parallel, emails, is.logger().With("component", "imap"))
	defer t.close()
	var wg sync.WaitGroup
	var prog Reporter // of the first address with options, for warnings
	for i, email := range emails {
		o, err := options(email)
		if err != nil {
			outcomes[i] = Outcome{Email: email, Status: Failed, Err: err, Error: err.Error()}
			report(&outcomes[i])
			continue
		}
		o.together = t
		if prog == nil {
			prog = o.Progress
		}
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				outcomes[i] = Outcome{Email: email, Status: Failed, Err: ctx.Err(), Error: ctx.Err().Error()}
				return
			}
			defer func() { <-sem }()
			outcomes[i] = is.Renew(ctx, email, o)
			report(&outcomes[i])
		})
	}
	wg.Wait()
	// What the run learned is written once, when all its renewals ended.
	t.saveLearned(is.Store, prog)
	return outcomes
}

// Outcome is what happened to one address in a renew run.
type Outcome struct {
	Email    string     `json:"email"`
	Status   string     `json:"status"` // renewed, not-due, skipped, failed
	Reason   string     `json:"reason,omitempty"`
	Error    string     `json:"error,omitempty"`
	RenewAt  *time.Time `json:"renewal_due,omitempty"` // when it will be due (not-due)
	Serial   string     `json:"serial,omitempty"`      // of the new certificate (renewed)
	NotAfter *time.Time `json:"not_after,omitempty"`
	PKCS12   string     `json:"pkcs12,omitempty"`
	Replaced string     `json:"replaced,omitempty"` // serial of the certificate it replaces
	// TimingRetry: a renewal with the timings learned about the CA failed,
	// and was tried once more with the safe defaults.
	TimingRetry bool `json:"timing_retry,omitempty"`
	// The encryption certificate of a split pair, renewed along.
	EncryptionSerial string `json:"encryption_serial,omitempty"`
	EncryptionPKCS12 string `json:"encryption_pkcs12,omitempty"`

	// Profile is the profile the renewal used and recorded (renewed).
	Profile *Profile `json:"-"`
	// Err is the failure (failed), or a deploy hook's or the encryption
	// certificate's (renewed), or why a skip should be told (skipped).
	Err error `json:"-"`
}

// Outcome statuses.
const (
	Renewed = "renewed"
	NotDue  = "not-due"
	Skipped = "skipped"
	Failed  = "failed"
)

// Renew renews the certificate of email if it is due (or forced), with
// the profile recorded with it and what o gives.
func (is *Issuer) Renew(ctx context.Context, email string, o RenewOptions) (oc Outcome) {
	oc = Outcome{Email: email}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	fail := func(err error) Outcome {
		oc.Status, oc.Err, oc.Error = Failed, err, err.Error()
		return oc
	}
	skip := func(reason string, notify bool) Outcome {
		oc.Status, oc.Reason = Skipped, reason
		if notify {
			oc.Err = errors.New(reason)
		}
		return oc
	}
	rec, _, err := is.LoadProfile(email)
	if errors.Is(err, ErrNotManaged) {
		return fail(WithHint(fmt.Errorf("no certificate for %s is managed here", email), NotManagedHints(is.Store, email, "get one with acmemail obtain "+email)...))
	}
	if errors.Is(err, ErrNotRecorded) {
		return fail(WithHint(fmt.Errorf("the certificate of %s was obtained by an acmemail that did not record how", email),
			"run acmemail obtain for it once more; later renewals repeat what it does"))
	}
	if err != nil {
		return fail(err)
	}
	if rec.Server == "sandbox" {
		// Its CA lived only as long as the obtain process.
		if o.Explicit {
			return fail(WithHint(fmt.Errorf("the certificate of %s came from an in-process sandbox, which no longer runs", email),
				"run a sandbox with acmemail sandbox and obtain from its directory URL to test renewals"))
		}
		return skip("its certificate came from an in-process sandbox, which no longer runs", false)
	}
	p, record := rec.Renewing(o.Given)
	r, err := is.open(p, nil, o.Progress)
	if err != nil {
		return fail(err)
	}
	r.rec, r.together = record, o.together
	if o.Secrets != nil {
		r.secrets = o.Secrets
	}
	defer r.close()
	if err := r.lock(ctx, o.WaitLock); err != nil {
		var le *LockedError
		if errors.As(err, &le) && !o.Explicit {
			return skip("another acmemail run is working on it", true)
		}
		return fail(err)
	}
	// Read again under the lock: another run may just have renewed it.
	_, chain, meta, _, err := is.Store.LoadCertificate(email)
	if err != nil {
		return fail(err)
	}
	leaf := chain[0]
	st := LoadRenewalState(is.Store, email, meta.Serial)
	if st.Revoked != nil && !o.Force {
		return skip(fmt.Sprintf("its certificate was revoked (%s); renew --force or obtain gets a new one", st.RevocationReason), o.Explicit)
	}
	r.useTiming(true)
	client, err := r.newClient(ctx, nil, false, nil)
	if err != nil {
		return fail(err)
	}
	now := time.Now()
	if !o.Force {
		refreshRenewalInfo(ctx, client, is.Store, email, leaf, &st, now)
		at, why := st.RenewAt(leaf)
		if now.Before(at) {
			at = UTCSeconds(at)
			oc.Status, oc.RenewAt, oc.Reason = NotDue, &at, why
			return oc
		}
	}
	replaces := ""
	if !st.NoRenewalInfo && st.Revoked == nil && now.Before(leaf.NotAfter) {
		if ok, err := client.SupportsRenewalInfo(ctx); err == nil && ok {
			replaces, _ = acmemail.CertID(leaf)
		}
	}
	if err := CheckHook(p.DeployHook); err != nil {
		return fail(err)
	}
	p12PW, err := r.secrets.P12Password(ctx, &r.p)
	if err != nil {
		return fail(err)
	}
	mail, err := r.openMail(ctx)
	if err != nil {
		return fail(err)
	}
	client.Mail = mail
	usage, err := acmemail.ParseUsage(meta.Usage)
	if err != nil {
		return fail(fmt.Errorf("the recorded usage of %s: %w", email, err))
	}
	res, err := r.renewOne(ctx, client, target{store: is.Store, usage: usage}, p12PW, replaces, meta.Serial, o.ReuseKey)
	if err != nil && r.retrySafe(ctx, client, err) {
		oc.TimingRetry = true
		res, err = r.renewOne(ctx, client, target{store: is.Store, usage: usage}, p12PW, replaces, meta.Serial, o.ReuseKey)
	}
	if err != nil {
		return fail(err)
	}
	na := UTCSeconds(res.Meta.NotAfter)
	oc.Status, oc.Serial, oc.NotAfter, oc.PKCS12, oc.Replaced, oc.Profile = Renewed, acmemail.FormatSerialText(res.Meta.Serial), &na, res.Paths.PKCS12, acmemail.FormatSerialText(meta.Serial), &r.rec
	enc, err := r.renewEncryptSlot(ctx, client, p12PW, o.ReuseKey)
	if err != nil && r.retrySafe(ctx, client, err) {
		oc.TimingRetry = true
		enc, err = r.renewEncryptSlot(ctx, client, p12PW, o.ReuseKey)
	}
	if err != nil {
		// The signing certificate is saved; the run still fails, so it is seen.
		oc.Err = err
	} else if enc != nil {
		oc.EncryptionSerial, oc.EncryptionPKCS12 = acmemail.FormatSerialText(enc.Meta.Serial), enc.Paths.PKCS12
	}
	// The hook runs once per new certificate: for a split pair also for
	// the encryption one (with ACMEMAIL_CERT_USAGE=encrypt).
	oc.Err = errors.Join(oc.Err, is.RunHook(ctx, p.DeployHook, res, res.Paths.PKCS12))
	if enc != nil {
		oc.Err = errors.Join(oc.Err, is.RunHook(ctx, p.DeployHook, enc, enc.Paths.PKCS12))
	}
	if oc.Err != nil {
		oc.Error = oc.Err.Error()
	}
	return oc
}

// retrySafe reports whether a renewal that failed with err is to be tried
// once more, with the safe timings: when it used timings learned about the
// CA (and not yet retried) and failed in a way they could have caused.
func (r *run) retrySafe(ctx context.Context, client *acmemail.Client, err error) bool {
	if !r.rt.Learned || ctx.Err() != nil || !LearnedTimingFailure(err) {
		return false
	}
	r.prog.Printf("%s failed with the timings learned about the CA (%v); trying once more with the safe defaults", r.p.Email, err)
	r.safeTiming(client)
	return true
}

// renewOne orders the replacement of one certificate, saying which one it
// replaces when the CA supports that; when the CA says it is already
// replaced (an earlier order, perhaps given up, claimed it), it orders once
// more without the claim.
func (r *run) renewOne(ctx context.Context, client *acmemail.Client, t target, p12PW, replaces, serial string, reuseKey bool) (*Issued, error) {
	res, err := r.issue(ctx, client, t, p12PW, replaces, reuseKey)
	var pe *acmemail.ProblemError
	if replaces != "" && errors.As(err, &pe) && pe.ShortType() == "alreadyReplaced" {
		r.prog.Printf("the CA says %s is already being replaced; ordering without replaces", acmemail.FormatSerialText(serial))
		res, err = r.issue(ctx, client, t, p12PW, "", reuseKey)
	}
	return res, err
}

// renewEncryptSlot renews the encryption certificate of a split pair
// after its signing certificate was renewed, or does nothing (nil, nil)
// when the address has no such pair.
func (r *run) renewEncryptSlot(ctx context.Context, client *acmemail.Client, p12PW string, reuseKey bool) (*Issued, error) {
	email := r.p.Email
	encStore, err := r.is.Store.Slot(EncryptSlot)
	if err != nil {
		return nil, err
	}
	_, chain, meta, _, err := encStore.LoadCertificate(email)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	replaces := ""
	// A revoked certificate is not replaced (the rule for the signing one).
	if st := LoadRenewalState(encStore, email, meta.Serial); st.Revoked == nil && time.Now().Before(chain[0].NotAfter) {
		if ok, err := client.SupportsRenewalInfo(ctx); err == nil && ok {
			replaces, _ = acmemail.CertID(chain[0])
		}
	}
	r.prog.Printf("renewing the encryption certificate of the --split pair")
	res, err := r.renewOne(ctx, client, target{store: encStore, usage: acmemail.UsageEncrypt}, p12PW, replaces, meta.Serial, reuseKey)
	if err != nil {
		return nil, fmt.Errorf("renew the encryption certificate of %s (the signing one is renewed): %w", email, err)
	}
	return res, nil
}
