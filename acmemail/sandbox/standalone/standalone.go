// Package standalone runs a sandbox [sandbox.World] for other processes,
// as acmemail sandbox does: it writes what a client needs to reach the
// world (the roots to trust, each user's password and OAuth2 token, an EAB
// HMAC key, the TSIG key for DNS updates) into a directory, and it can make the CA use a real mail
// system (a provider's submission server and IMAP mailbox) instead of the
// world's own.
//
// Package sandbox itself stays in memory and on loopback and imports
// neither mailbox nor keystore; what touches files and outside mail
// servers is here.
package standalone

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
)

// Config says how to run a standalone sandbox.
type Config struct {
	// Options configure the world. With Mail, Start sets Options.External
	// (and Options.LookupTXT for Mail.DNSResolver) from it.
	Options sandbox.Options
	// Dir is where the files go; it is created (0700) if missing. "" makes
	// a new temporary directory.
	Dir string
	// Mail, if not nil, makes the CA use a real mail system.
	Mail *Mail
}

// Server is a running standalone sandbox.
type Server struct {
	// World is the sandbox: its URLs and addresses are for the clients.
	World *sandbox.World
	// Dir holds the files below and those of AddUser.
	Dir string
	// RootsFile (Dir/roots.pem) holds the root of the world's HTTPS, IMAP
	// and SMTP certificates, for ACMEMAIL_CA_ROOTS.
	RootsFile string
	// IssuerRootFile (Dir/issuer-root.pem) holds the root of the S/MIME
	// and server certificates the CA issues.
	IssuerRootFile string
	// TSIGKeyFile (Dir/tsig.key, 0600) holds the world's TSIG key in
	// tsig-keygen format, for RFC 2136 updates to the world's DNS server
	// (RFC2136_TSIG_FILE for lego's rfc2136 provider, nsupdate -k).
	TSIGKeyFile string
	// EABHMACFile (Dir/eab.hmac, 0600) holds the HMAC key of
	// World.EABKeyID when Options.ExternalAccountRequired, else it is "".
	EABHMACFile string

	oauth sandbox.OAuthMode
	mail  *mailLink
}

// Start prepares cfg.Dir, logs in to the real mail system if there is one
// (so that a wrong password fails before the CA starts), starts the world
// and writes RootsFile, IssuerRootFile, TSIGKeyFile and EABHMACFile.
//
// A malformed Mail setting is an *[issuer.SettingError] (mail_imap,
// mail_smtp, dns_resolver); a mail server that cannot be reached or refuses
// the login is an *[issuer.MailError]; errors of Mail.Login are returned
// as they are.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "acmemail-sandbox-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	opts := cfg.Options
	var link *mailLink
	if cfg.Mail != nil {
		if link, err = cfg.Mail.dial(ctx, &opts); err != nil {
			return nil, err
		}
	}
	w, err := sandbox.Start(ctx, opts)
	if err != nil {
		link.close()
		return nil, fmt.Errorf("start the sandbox: %w", err)
	}
	s := &Server{
		World: w, Dir: dir, oauth: opts.OAuth, mail: link,
		RootsFile:      filepath.Join(dir, "roots.pem"),
		IssuerRootFile: filepath.Join(dir, "issuer-root.pem"),
		TSIGKeyFile:    filepath.Join(dir, "tsig.key"),
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := keystore.WriteFileAtomic(s.RootsFile, w.TLSRootsPEM, 0o644); err != nil {
		return nil, err
	}
	if err := keystore.WriteFileAtomic(s.IssuerRootFile, w.IssuerRootPEM, 0o644); err != nil {
		return nil, err
	}
	if err := keystore.WriteFileAtomic(s.TSIGKeyFile, w.TSIG.File(), 0o600); err != nil {
		return nil, err
	}
	if w.EABKeyID != "" {
		hmac := filepath.Join(dir, "eab.hmac")
		if err := keystore.WriteFileAtomic(hmac, []byte(w.EABHMACKey+"\n"), 0o600); err != nil {
			return nil, err
		}
		s.EABHMACFile = hmac
	}
	return s, nil
}

// AddUser creates a mailbox for email (a normalized address) with a
// random password, written to PasswordFile(email) (0600), and, when the
// world takes OAuth2 logins, a random access token written to
// TokenFile(email) (0600).
func (s *Server) AddUser(email string) error {
	pw := issuer.RandomToken()
	if err := s.World.AddUser(email, pw); err != nil {
		return err
	}
	if err := keystore.WriteFileAtomic(s.PasswordFile(email), []byte(pw+"\n"), 0o600); err != nil {
		return err
	}
	if s.oauth == sandbox.OAuthOff {
		return nil
	}
	tok := issuer.RandomToken()
	if err := s.World.AddOAuthToken(email, tok); err != nil {
		return err
	}
	return keystore.WriteFileAtomic(s.TokenFile(email), []byte(tok+"\n"), 0o600)
}

// PasswordFile is where AddUser writes the password of email.
func (s *Server) PasswordFile(email string) string {
	return filepath.Join(s.Dir, email+".password")
}

// TokenFile is where AddUser writes the OAuth2 access token of email.
func (s *Server) TokenFile(email string) string {
	return filepath.Join(s.Dir, email+".token")
}

// ObtainCommand is a shell command that obtains a certificate for email
// (a user added with AddUser) from this sandbox with acmemail, ready to
// paste: the world's URLs, its roots, and the user's password file (or,
// when passwords are refused, its token file).
func (s *Server) ObtainCommand(email string) string {
	login := "--password-file " + shellWord(s.PasswordFile(email))
	if s.oauth == sandbox.OAuthOnly {
		login = "--oauth-token-command " + shellWord("cat "+shellWord(s.TokenFile(email)))
	}
	w := s.World
	return fmt.Sprintf("ACMEMAIL_CA_ROOTS=%s acmemail obtain --server %s --imap %s --smtp %s --dns-resolver %s --issuer-roots %s %s --agree-tos %s",
		shellWord(s.RootsFile), w.DirectoryURL, w.IMAPURL, w.SMTPURL, w.DNSAddr, shellWord(s.IssuerRootFile), login, email)
}

// Serve runs until ctx ends, and then returns nil. With a real mail
// system it hands every mail that arrives in the CA's mailbox to the CA;
// it returns an error when that mailbox fails for good.
func (s *Server) Serve(ctx context.Context) error {
	if s.mail == nil {
		<-ctx.Done()
		return nil
	}
	return s.mail.serve(ctx, s.World)
}

// Close stops the world and logs out of the real mail system.
func (s *Server) Close() {
	s.World.Close()
	s.mail.close()
}

// shellWord quotes s for sh when it holds anything but safe characters.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
