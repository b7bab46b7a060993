// Command obtain shows how to use the acmemail, mailbox and keystore
// packages without the CLI: it obtains a certificate for one address and
// writes a PKCS#12 file through the issuer package, the lifecycle the CLI
// uses too. Usage:
//
//	ACMEMAIL_PASSWORD=... ACMEMAIL_P12_PASSWORD=... go run ./examples/obtain \
//	    -directory https://ca.example/acme/directory \
//	    -imap imaps://imap.example.com -smtp smtps://smtp.example.com alice@example.com
//
// ACMEMAIL_CA_ROOTS may name a PEM file of extra roots to trust for HTTPS,
// IMAP and SMTP (a private CA). main_test.go runs it against the sandbox.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

// config is everything obtain needs; main fills it from flags and the
// environment, the test from the sandbox.
type config struct {
	Directory, IMAP, SMTP string
	Email                 string
	MailPassword          string
	P12Password           string
	StateDir              string
	CARoots               string                                              // PEM file of extra roots for HTTPS, IMAP, SMTP, or ""
	DNSResolver           string                                              // HOST:PORT for DKIM key lookups, or "" for the system's
	ReplySettle           time.Duration                                       // pause after the reply; < 0 for the default
	Progress              func(string)                                        // nil: quiet
	Stdout                func(format string, args ...any) (n int, err error) // where the .p12 path goes
}

func main() {
	directory := flag.String("directory", "", "ACME directory URL")
	imapURL := flag.String("imap", "", "IMAP URL")
	smtpURL := flag.String("smtp", "", "submission URL")
	flag.Parse()
	if flag.NArg() != 1 || *directory == "" || *imapURL == "" || *smtpURL == "" {
		flag.Usage()
		os.Exit(2)
	}
	dir, err := keystore.DefaultDir(os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	cfg := config{
		Directory: *directory, IMAP: *imapURL, SMTP: *smtpURL, Email: flag.Arg(0),
		MailPassword: os.Getenv("ACMEMAIL_PASSWORD"), P12Password: os.Getenv("ACMEMAIL_P12_PASSWORD"),
		StateDir: dir, CARoots: os.Getenv("ACMEMAIL_CA_ROOTS"), ReplySettle: -1,
		Progress: func(s string) { fmt.Fprintln(os.Stderr, s) },
		Stdout:   fmt.Printf,
	}
	if cfg.MailPassword == "" || cfg.P12Password == "" {
		log.Fatal("set ACMEMAIL_PASSWORD (mail login) and ACMEMAIL_P12_PASSWORD (PKCS#12 file)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := obtain(ctx, cfg); err != nil {
		log.Fatal(err)
	}
}

// secrets gives the issuer the passwords this example was given.
type secrets struct{ mail, p12 string }

func (s secrets) MailLogin(_ context.Context, p *issuer.Profile) (mailbox.Credentials, mailbox.Credentials, error) {
	c := mailbox.Credentials{Username: p.LoginUser(), Password: s.mail}
	return c, c, nil
}

func (s secrets) AlsoPassword(context.Context, *issuer.Profile, issuer.Also) (string, error) {
	return "", errors.New("this example has no --also mailboxes")
}

func (s secrets) P12Password(context.Context, *issuer.Profile) (string, error) { return s.p12, nil }

// progress prints each step.
type progress func(string)

func (f progress) Printf(format string, args ...any) { f(fmt.Sprintf(format, args...)) }
func (f progress) Event(e acmemail.Event)            { f(e.Message) }
func (f progress) EndLive()                          {}

func obtain(ctx context.Context, cfg config) error {
	store, err := keystore.Open(cfg.StateDir)
	if err != nil {
		return err
	}
	is := &issuer.Issuer{Store: store, Secrets: secrets{cfg.MailPassword, cfg.P12Password}}
	// One profile says everything about the issuance; the issuer records
	// it with the certificate, so acmemail renew can repeat it.
	p := issuer.NewProfile(cfg.Email)
	p.Server, p.IMAP, p.SMTP, p.KeyType = cfg.Directory, cfg.IMAP, cfg.SMTP, keystore.KeyP256
	p.CARoots, p.DNSResolver, p.ReplySettle = cfg.CARoots, cfg.DNSResolver, issuer.Duration(cfg.ReplySettle)
	opts := issuer.ObtainOptions{AgreeTOS: true}
	if cfg.Progress != nil {
		opts.Progress = progress(cfg.Progress)
	}
	// Obtain watches the mailbox before the order exists (the CA may mail
	// at once), checks the challenge mail's DKIM signature (fail closed),
	// never answers a challenge twice, checks the issued certificate, and
	// saves it with its key and a PKCS#12 file.
	res, err := is.Obtain(ctx, p, opts)
	if err != nil {
		return err
	}
	if cfg.Stdout != nil {
		cfg.Stdout("%s\n", res.Certs[0].Paths.PKCS12)
	}
	return nil
}
