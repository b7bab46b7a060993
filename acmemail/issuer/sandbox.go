package issuer

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/mailbox"
)

// Sandbox is the in-process sandbox of a profile whose Server is
// "sandbox", with the logins it made.
type Sandbox struct {
	World         *sandbox.World
	Login         mailbox.Credentials // the address's
	AlsoPasswords map[string]string   // of --also addresses with a mailbox of their own, by lowercased address
}

// StartSandbox starts the in-process sandbox for p: the address's mailbox
// (its login made by login), p's servers pointed at the sandbox's, and a
// mailbox of its own for each --also address whose IMAP is "sandbox".
// Close the World when done.
func StartSandbox(ctx context.Context, opts sandbox.Options, p *Profile, login func(*sandbox.World) (mailbox.Credentials, error)) (*Sandbox, error) {
	w, err := sandbox.Start(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("start the sandbox: %w", err)
	}
	sb := &Sandbox{World: w, AlsoPasswords: map[string]string{}}
	if sb.Login, err = login(w); err != nil {
		w.Close()
		return nil, err
	}
	if p.IMAP == "" {
		p.IMAP = w.IMAPURL
	}
	if p.SMTP == "" {
		p.SMTP = w.SMTPURL
	}
	for i := range p.Also {
		a := &p.Also[i]
		if a.IMAP != "sandbox" {
			continue
		}
		pw := RandomToken()
		if err := w.AddUser(a.Email, pw); err != nil {
			w.Close()
			return nil, fmt.Errorf("sandbox: add a mailbox for %s: %w", a.Email, err)
		}
		a.IMAP, a.SMTP, a.User = w.IMAPURL, w.SMTPURL, a.Email
		sb.AlsoPasswords[strings.ToLower(a.Email)] = pw
	}
	return sb, nil
}

// CheckNewFile reports, before anything is issued, whether a new file
// could be written at path: fs.ErrExist when something is there (a file
// is never overwritten), fs.ErrNotExist when its directory is missing, or
// why the directory refuses it. "" is fine.
func CheckNewFile(path string) error {
	if path == "" {
		return nil
	}
	if _, err := os.Lstat(path); err == nil {
		return fs.ErrExist
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".acmemail-out-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
