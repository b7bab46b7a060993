// Package issuer is the certificate lifecycle of acmemail: it obtains,
// renews and plans the renewal of S/MIME certificates from one Profile,
// wiring the protocol (package acmemail), the mail account (package
// mailbox) and the state directory (package keystore) together. Those
// three never import each other; this package and the CLI do.
package issuer

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

// ProfileVersion is the version of the Profile format written to meta.json.
const ProfileVersion = 1

// DefaultReplySettle is the pause between sending the reply and asking the
// CA to validate, for a CA other than the in-process sandbox:
// acme2certifier looks for the reply about 2 s after the POST.
const DefaultReplySettle = 3 * time.Second

// Profile is everything that decides an issuance for one address: the CA,
// the mail account and where its login comes from, the key and the files,
// the hook, the security flags and the timings. obtain builds it from its
// flags, records it as is in meta.json, and renew reads it back as is.
//
// A Profile never holds a secret: only where one comes from (a command, the
// absolute path of a file).
type Profile struct {
	Version int    `json:"version"`
	Email   string `json:"email"`
	// Also are more addresses in the same certificate.
	Also []Also `json:"also,omitempty"`

	// The CA: Server is a directory URL or a name ("sandbox", "castle",
	// "castle-staging").
	Server string `json:"server"`
	Join   string `json:"join,omitempty"` // "string", "octet" or "" for the server's
	// Contact is the contact of a new ACME account: the address being
	// certified unless NoContact (the CA learns it anyway, and some CAs,
	// acme2certifier among them, refuse accounts without one).
	Contact   []string `json:"contact,omitempty"`
	NoContact bool     `json:"no_contact,omitempty"`
	// IssuerRoots is the PEM file of the CA's roots the issued chain must
	// verify to; CARoots a PEM file of extra roots trusted for HTTPS, IMAP
	// and SMTP (ACMEMAIL_CA_ROOTS). Absolute paths.
	IssuerRoots string `json:"issuer_roots,omitempty"`
	CARoots     string `json:"ca_roots,omitempty"`

	// The mail account.
	IMAP     string `json:"imap,omitempty"`
	SMTP     string `json:"smtp,omitempty"`
	User     string `json:"user,omitempty"` // "" = Email
	SMTPUser string `json:"smtp_user,omitempty"`
	Mailbox  string `json:"mailbox"`
	AuthMech string `json:"auth_mech"`
	Login    Login  `json:"login,omitzero"`

	// Checking the challenge mail.
	DNSResolver     string `json:"dns_resolver,omitempty"`
	TrustAuthservID string `json:"trust_authserv_id,omitempty"`
	SMIMERoots      string `json:"smime_roots,omitempty"`
	Insecure        bool   `json:"insecure,omitempty"`
	SkipMailAuth    bool   `json:"insecure_skip_mail_auth,omitempty"`

	// The certificate and its files.
	KeyType         keystore.KeyType `json:"key_type"`
	Usage           string           `json:"usage"` // both, sign or encrypt
	Split           bool             `json:"split,omitempty"`
	P12Profile      string           `json:"p12_profile"`
	P12PasswordFile string           `json:"p12_password_file,omitempty"`
	DeployHook      string           `json:"deploy_hook,omitempty"`

	// Timings.
	MailWait    Duration `json:"mail_wait"`
	ReplySettle Duration `json:"reply_settle"` // < 0: per server
}

// Also is one more address of a certificate. With IMAP set it has a
// mailbox of its own; otherwise its challenge is read from the primary
// mailbox and answered through the primary submission server.
type Also struct {
	Email           string `json:"email"`
	IMAP            string `json:"imap,omitempty"`
	SMTP            string `json:"smtp,omitempty"`
	User            string `json:"user,omitempty"`
	PasswordFile    string `json:"password_file,omitempty"`
	PasswordCommand string `json:"password_command,omitempty"`
}

// Own reports whether the address has a mailbox of its own.
func (a Also) Own() bool { return a.IMAP != "" }

// Login says where the mail login comes from: commands and absolute file
// paths, never the secret they give.
type Login struct {
	PasswordCommand     string `json:"password_command,omitempty"`
	PasswordFile        string `json:"password_file,omitempty"`
	OAuthTokenCommand   string `json:"oauth_token_command,omitempty"`
	SMTPPasswordCommand string `json:"smtp_password_command,omitempty"`
	SMTPPasswordFile    string `json:"smtp_password_file,omitempty"`
}

// HasMail reports whether a source of the mail login is set.
func (l Login) HasMail() bool {
	return l.PasswordCommand != "" || l.PasswordFile != "" || l.OAuthTokenCommand != ""
}

// HasSMTP reports whether a source of a separate submission password is set.
func (l Login) HasSMTP() bool { return l.SMTPPasswordCommand != "" || l.SMTPPasswordFile != "" }

// Duration is a time.Duration written as a Go duration string in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D is the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Emails are all addresses of the certificate, primary first.
func (p *Profile) Emails() []string {
	out := []string{p.Email}
	for _, a := range p.Also {
		out = append(out, a.Email)
	}
	return out
}

// LoginUser is the mail login name: User, else the address.
func (p *Profile) LoginUser() string {
	if p.User != "" {
		return p.User
	}
	return p.Email
}

// NewProfile is a profile with every setting at its default, for email.
func NewProfile(email string) Profile {
	return Profile{Email: email, MailWait: Duration(acmemail.DefaultMailWait), ReplySettle: -1}.WithDefaults()
}

// WithDefaults fills in what is not set: the one place defaults live.
// Paths are made absolute (renew runs from cron, elsewhere), and the reply
// settle time "per server" becomes the server's.
func (p Profile) WithDefaults() Profile {
	p.Version = ProfileVersion
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&p.Server, "castle")
	def(&p.Mailbox, "INBOX")
	def(&p.AuthMech, "auto")
	def((*string)(&p.KeyType), string(keystore.KeyRSA2048))
	def(&p.Usage, "both")
	def(&p.P12Profile, "modern")
	if p.MailWait <= 0 {
		p.MailWait = Duration(acmemail.DefaultMailWait)
	}
	if p.ReplySettle < 0 {
		p.ReplySettle = Duration(DefaultReplySettle)
		if p.Server == "sandbox" {
			p.ReplySettle = 0
		}
	}
	for _, f := range []*string{&p.IssuerRoots, &p.CARoots, &p.SMIMERoots, &p.P12PasswordFile, &p.Login.PasswordFile, &p.Login.SMTPPasswordFile} {
		*f = absPath(*f)
	}
	p.Also = append([]Also(nil), p.Also...)
	for i := range p.Also {
		a := &p.Also[i]
		if !a.Own() {
			*a = Also{Email: a.Email}
			continue
		}
		def(&a.SMTP, p.SMTP)
		def(&a.User, a.Email)
		a.PasswordFile = absPath(a.PasswordFile)
	}
	p.Contact = append([]string(nil), p.Contact...)
	switch {
	case p.NoContact:
		p.Contact = nil
	case len(p.Contact) == 0 && p.Email != "":
		p.Contact = []string{"mailto:" + p.Email}
	}
	return p
}

// Check reports the first setting of p that no run could use, as a
// *SettingError naming it.
func (p *Profile) Check() error {
	bad := func(setting, format string, args ...any) error {
		return &SettingError{Setting: setting, Err: fmt.Errorf(format, args...)}
	}
	if p.Server != "sandbox" {
		if _, _, err := p.Directory(nil); err != nil {
			return err
		}
	}
	if kt, err := keystore.ParseKeyType(string(p.KeyType)); err != nil || kt == "ed25519" {
		return bad("key_type", "%q: choose rsa2048, rsa3072, rsa4096, p256 or p384", p.KeyType)
	}
	if _, err := acmemail.ParseUsage(p.Usage); err != nil {
		return bad("usage", "%w", err)
	}
	if _, err := keystore.ParseP12Profile(p.P12Profile); err != nil {
		return bad("p12_profile", "%q: choose modern or legacy", p.P12Profile)
	}
	if p.Split && p.Usage != "both" {
		return bad("split", "a signing and an encryption certificate do not go with usage %s", p.Usage)
	}
	if p.Join != "" {
		if _, err := acmemail.ParseJoinMode(p.Join); err != nil {
			return bad("join", "%w", err)
		}
	}
	if _, err := mailbox.ParseMechanism(p.AuthMech); err != nil {
		return bad("auth_mech", "%w", err)
	}
	if p.DNSResolver != "" {
		if _, err := Resolver(p.DNSResolver); err != nil {
			return err
		}
	}
	for _, a := range p.Also {
		if a.PasswordFile != "" && a.PasswordCommand != "" {
			return bad("also", "a password file and a password command both give the mail password for %s; use one", a.Email)
		}
	}
	return nil
}

// SettingError says which setting of a profile is wrong. Setting is the
// profile's JSON name (key_type, usage, ...); the CLI names its flag.
type SettingError struct {
	Setting string
	Err     error
}

func (e *SettingError) Error() string { return e.Setting + ": " + e.Err.Error() }
func (e *SettingError) Unwrap() error { return e.Err }

// absPath returns p made absolute, or "" for "".
func absPath(p string) string {
	if p == "" {
		return ""
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// ErrNotRecorded: the certificate's meta.json says nothing of how it was
// obtained (an acmemail before settings were recorded).
var ErrNotRecorded = errors.New("nothing is recorded of how the certificate was obtained")

// ProfileOf reads the profile recorded with a certificate: the profile
// itself, or the settings an older acmemail recorded (meta.json without
// "profile"), migrated.
func ProfileOf(meta keystore.CertMeta) (Profile, error) {
	if len(meta.Profile) > 0 {
		var p Profile
		if err := json.Unmarshal(meta.Profile, &p); err != nil {
			return Profile{}, fmt.Errorf("the recorded profile of %s: %w", meta.Email, err)
		}
		if p.Version > ProfileVersion {
			return Profile{}, fmt.Errorf("the recorded profile of %s has version %d; this acmemail reads up to %d: upgrade it", meta.Email, p.Version, ProfileVersion)
		}
		if p.Email == "" {
			p.Email = meta.Email
		}
		return normalizedAddresses(p.WithDefaults()), nil
	}
	set := meta.Settings
	if set == nil {
		return Profile{}, fmt.Errorf("%s: %w", meta.Email, ErrNotRecorded)
	}
	p := Profile{
		Email: meta.Email, Server: set.Server, Join: set.Join, Contact: set.Contact, IssuerRoots: set.IssuerRoots,
		IMAP: set.IMAP, SMTP: set.SMTP, User: set.User, SMTPUser: set.SMTPUser, Mailbox: set.Mailbox, AuthMech: set.AuthMech,
		Login: Login{
			PasswordCommand: set.PasswordCommand, PasswordFile: set.PasswordFile, OAuthTokenCommand: set.OAuthTokenCommand,
			SMTPPasswordCommand: set.SMTPPasswordCommand, SMTPPasswordFile: set.SMTPPasswordFile,
		},
		DNSResolver: set.DNSResolver, TrustAuthservID: set.TrustAuthservID, SMIMERoots: set.SMIMERoots,
		Insecure: set.Insecure, SkipMailAuth: set.SkipMailAuth,
		KeyType: meta.KeyType, Usage: meta.Usage, P12Profile: set.P12Profile, DeployHook: set.DeployHook,
		MailWait: Duration(acmemail.DefaultMailWait), ReplySettle: -1,
	}
	if p.User == p.Email {
		p.User = ""
	}
	if set.MailWait != "" {
		d, err := time.ParseDuration(set.MailWait)
		if err != nil {
			return Profile{}, fmt.Errorf("the recorded mail wait of %s: %w", meta.Email, err)
		}
		p.MailWait = Duration(d)
	}
	if set.ReplySettle != "" {
		d, err := time.ParseDuration(set.ReplySettle)
		if err != nil {
			return Profile{}, fmt.Errorf("the recorded reply settle of %s: %w", meta.Email, err)
		}
		p.ReplySettle = Duration(d)
	}
	own := map[string]keystore.AlsoMailbox{}
	for _, m := range set.AlsoMailboxes {
		own[strings.ToLower(m.Email)] = m
	}
	if meta.Also != "" {
		for _, a := range strings.Split(meta.Also, ",") {
			m := own[strings.ToLower(a)]
			p.Also = append(p.Also, Also{Email: a, IMAP: m.IMAP, SMTP: m.SMTP, User: m.User, PasswordFile: m.PasswordFile, PasswordCommand: m.PasswordCommand})
		}
	}
	// A --split pair recorded its signing certificate with usage sign.
	if meta.Usage == "sign" || meta.Usage == "encrypt" {
		p.Usage = meta.Usage
	}
	return normalizedAddresses(p.WithDefaults()), nil
}

// normalizedAddresses puts the addresses of a recorded profile in the
// form acmemail.NormalizeAddress gives them, the one the command line's
// are in: an older acmemail recorded them as they were typed (in Unicode
// NFD, say), and a renewal orders the address as the identity is known
// now. A mail login that was the address itself keeps the recorded
// spelling: that is the login the mail server accepted.
func normalizedAddresses(p Profile) Profile {
	if n, err := acmemail.NormalizeAddress(p.Email); err == nil && n != p.Email {
		if p.User == "" {
			p.User = p.Email
		}
		p.Email = n
	}
	for i := range p.Also {
		a := &p.Also[i]
		if n, err := acmemail.NormalizeAddress(a.Email); err == nil {
			a.Email = n // an own mailbox's login was pinned by WithDefaults
		}
	}
	return p
}

// encode is the profile as meta.json records it.
func (p *Profile) encode() json.RawMessage {
	data, err := json.Marshal(p)
	if err != nil {
		panic(err) // a Profile always marshals
	}
	return data
}

// Change is one setting that differs between two profiles.
type Change struct {
	Setting  string // the profile's JSON name
	Old, New string // the values as JSON ("" when not set)
}

// Diff lists the settings of b that differ from a, in JSON order.
func Diff(a, b Profile) []Change {
	fields := func(p Profile) ([]string, map[string]string) {
		var m map[string]json.RawMessage
		json.Unmarshal(p.encode(), &m)
		keys := make([]string, 0, len(m))
		vals := map[string]string{}
		for k, v := range m {
			keys = append(keys, k)
			vals[k] = string(v)
		}
		return keys, vals
	}
	ka, va := fields(a)
	kb, vb := fields(b)
	seen := map[string]bool{}
	var out []Change
	for _, k := range append(kb, ka...) {
		if seen[k] || k == "version" {
			continue
		}
		seen[k] = true
		if va[k] != vb[k] {
			out = append(out, Change{Setting: k, Old: va[k], New: vb[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Setting < out[j].Setting })
	return out
}
