// Package sandboxflags holds the flags that configure the embedded
// sandbox: its imitations of real RFC 8823 CAs (for "acmemail sandbox" and
// the hidden flags of "obtain --server sandbox") and the external mail system
// of "acmemail sandbox --mail-address".
package sandboxflags

import (
	"crypto/x509"
	"log/slog"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/acmemail/sandbox/standalone"
	"github.com/acmemail/acmemail/cmd/internal/secret"
)

// Flags configure the sandbox's imitation of real RFC 8823 CAs.
type Flags struct {
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
	zones           []string
}

func (s *Flags) AddFlags(f *pflag.FlagSet, hidden bool) {
	f.StringVar(&s.mailTiming, "sandbox-mail-timing", "authz", `when the sandbox CA mails the challenge: "authz" (when the authorization is fetched, like acme2certifier) or "challenge" (after the challenge POST, like secsy-pki)`)
	f.IntVar(&s.tokenLength, "sandbox-token-length", 43, "length of the sandbox's token-part1: 22 (CASTLE), 32 (acme2certifier) or 43")
	f.StringVar(&s.join, "sandbox-join", "string", `how the sandbox CA joins the token parts: "string" or "octet"`)
	f.BoolVar(&s.noAutoSubmitted, "sandbox-no-auto-submitted", false, "the sandbox's challenge mail has no Auto-Submitted header (like acme2certifier)")
	f.DurationVar(&s.window, "sandbox-validation-window", 30*time.Second, "how long after the challenge POST the sandbox CA looks for the reply")
	f.BoolVar(&s.hostile, "sandbox-hostile", false, "deliver forged challenge mails around the genuine one (a client must ignore them)")
	f.BoolVar(&s.noDKIMSign, "sandbox-no-dkim-sign", false, "the sandbox's submission server does not DKIM-sign (like a provider that does not sign; the CA then rejects replies)")
	f.StringVar(&s.renewalWindow, "sandbox-renewal-window", "", `renewalInfo (ARI) window as START,END after issuance, e.g. "-1h,1h" (due now) (default: the last third of the lifetime)`)
	f.BoolVar(&s.noRenewalInfo, "sandbox-no-renewal-info", false, "the sandbox CA offers no renewalInfo (ARI), like CAs without RFC 9773")
	f.StringVar(&s.badCert, "sandbox-bad-cert", "", "the sandbox CA issues a certificate a client must refuse or warn about: foreign-key, wrong-san, no-email-protection, changed-key-usage or no-server-auth")
	f.BoolVar(&s.eab, "sandbox-eab", false, "require an external account binding for new accounts; 'acmemail sandbox' prints the key identifier and writes the HMAC key to DIR/eab.hmac")
	f.StringVar(&s.oauth, "sandbox-oauth", "off", `OAuth2 logins (OAUTHBEARER, XOAUTH2) at the sandbox's IMAP and submission servers: "off", "also" (besides passwords) or "only" (passwords refused, like Gmail)`)
	f.StringArrayVar(&s.zones, "sandbox-zone", nil, "another domain the sandbox's DNS server is authoritative for, and the CA issues server certificates in, besides the users' domains (repeatable)")
	if hidden {
		f.MarkHidden("sandbox-zone")
		f.MarkHidden("sandbox-eab")
		f.MarkHidden("sandbox-oauth")
		for _, n := range []string{"sandbox-bad-cert", "sandbox-renewal-window", "sandbox-no-renewal-info", "sandbox-hostile", "sandbox-no-dkim-sign", "sandbox-mail-timing", "sandbox-token-length", "sandbox-join", "sandbox-no-auto-submitted", "sandbox-validation-window"} {
			f.MarkHidden(n)
		}
	}
}

func (s *Flags) Options() (sandbox.Options, error) {
	var o sandbox.Options
	switch s.mailTiming {
	case "authz":
		o.MailTiming = sandbox.MailAtAuthorization
	case "challenge":
		o.MailTiming = sandbox.MailAfterChallenge
	default:
		return o, issuer.Usagef("--sandbox-mail-timing %q: choose authz or challenge", s.mailTiming)
	}
	switch s.tokenLength {
	case 22, 32, 43:
		o.TokenLength = s.tokenLength
	default:
		return o, issuer.Usagef("--sandbox-token-length %d: choose 22, 32 or 43", s.tokenLength)
	}
	if s.join != "string" && s.join != "octet" {
		return o, issuer.Usagef("--sandbox-join %q: choose string or octet", s.join)
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
		return o, issuer.Usagef("--sandbox-oauth %q: choose off, also or only", s.oauth)
	}
	o.NoDKIMSign = s.noDKIMSign
	if s.renewalWindow != "" {
		rw, err := sandbox.ParseRenewalWindow(s.renewalWindow)
		if err != nil {
			return o, issuer.Usagef("--sandbox-renewal-window: %w", err)
		}
		o.RenewalWindow = &rw
	}
	o.NoRenewalInfo = s.noRenewalInfo
	if s.badCert != "" && !slices.Contains(sandbox.BadCerts, sandbox.BadCert(s.badCert)) {
		return o, issuer.Usagef("--sandbox-bad-cert %q: choose foreign-key, wrong-san, no-email-protection, changed-key-usage or no-server-auth", s.badCert)
	}
	o.BadCert = sandbox.BadCert(s.badCert)
	o.ExternalAccountRequired = s.eab
	o.Zones = s.zones
	return o, nil
}

// MailFlags make `acmemail sandbox` use a real mail system for the
// CA's own mail: it submits its challenges through --mail-smtp (where the
// provider DKIM-signs them) and reads the replies from its mailbox at
// --mail-imap, checking their DKIM keys through --dns-resolver.
type MailFlags struct {
	address      string
	imap, smtp   string
	user         string
	passwordFile string
	dnsResolver  string
	mailboxName  string
}

func (m *MailFlags) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&m.address, "mail-address", "", "the CA's address on a real mail system; turns on external mail (challenges come from its plus addresses)")
	f.StringVar(&m.imap, "mail-imap", "", "with --mail-address: IMAP URL of the CA's mailbox, where replies arrive")
	f.StringVar(&m.smtp, "mail-smtp", "", "with --mail-address: submission URL the CA sends its challenges through")
	f.StringVar(&m.user, "mail-user", "", "with --mail-address: login for --mail-imap and --mail-smtp (default: the address)")
	f.StringVar(&m.passwordFile, "mail-password-file", "", "with --mail-address: read the CA's mail password from the first line of this file (else ACMEMAIL_PASSWORD)")
	f.StringVar(&m.mailboxName, "mail-mailbox", "INBOX", "with --mail-address: the folder replies arrive in")
	f.StringVar(&m.dnsResolver, "dns-resolver", "", "with --mail-address: DNS server (HOST:PORT) for the DKIM keys of replies (default: the system resolver)")
}

func (m *MailFlags) Enabled() bool { return m.address != "" }

// checkFlags refuses the external-mail flags without --mail-address, and
// --user (sandbox mailboxes) with it.
func (m *MailFlags) CheckFlags(f *pflag.FlagSet) error {
	if m.Enabled() {
		if f.Changed("user") {
			return issuer.Usagef("--user creates sandbox mailboxes; with --mail-address the users' mail is on the real mail system")
		}
		return nil
	}
	for _, name := range []string{"mail-imap", "mail-smtp", "mail-user", "mail-password-file", "mail-mailbox", "dns-resolver"} {
		if f.Changed(name) {
			return issuer.Usagef("--%s is for external mail; it needs --mail-address (the CA's address on that mail system)", name)
		}
	}
	return nil
}

// Config checks the flags that go with --mail-address and says how the
// CA reaches the mail system. checkEmail normalizes the CA's address;
// password reads the CA's mail password from spec's sources and roots gives
// the pool that verifies the mail servers; both are called only once the
// URLs are checked.
func (m *MailFlags) Config(opts sandbox.Options, checkEmail func(string) (string, error), logger *slog.Logger,
	password func(secret.Spec) (string, error), roots func() (*x509.CertPool, error)) (*standalone.Mail, error) {
	if m.imap == "" || m.smtp == "" {
		return nil, issuer.Usagef("--mail-address needs --mail-imap and --mail-smtp (where the CA reads replies and sends challenges)")
	}
	if opts.Hostile {
		return nil, issuer.Usagef("--sandbox-hostile delivers forgeries into the sandbox's own mailboxes; it does not work with --mail-address")
	}
	address, err := checkEmail(m.address)
	if err != nil {
		return nil, err
	}
	return &standalone.Mail{
		Address: address, IMAP: m.imap, SMTP: m.smtp, User: m.user, Mailbox: m.mailboxName,
		DNSResolver: m.dnsResolver, Logger: logger,
		Login: func(user string) (string, *x509.CertPool, error) {
			pw, err := password(secret.Spec{What: "mail password for " + user, EnvVar: "ACMEMAIL_PASSWORD", File: m.passwordFile, Flag: "mail-password-file"})
			if err != nil {
				return "", nil, err
			}
			pool, err := roots()
			return pw, pool, err
		},
	}, nil
}

// URLs are the IMAP and submission URLs of the CA's real mail system.
func (m *MailFlags) URLs() (imap, smtp string) { return m.imap, m.smtp }
