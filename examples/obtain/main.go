// Command obtain shows how to use the acmemail, mailbox and keystore
// packages without the CLI: it obtains a certificate for one address and
// writes a PKCS#12 file, in about a hundred lines. Usage:
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
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"

	"github.com/acmemail/acmemail/acmemail"
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
	Roots                 *x509.CertPool                                      // nil: the system roots
	LookupTXT             func(context.Context, string) ([]string, error)     // nil: the system resolver
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
		StateDir: dir,
		Progress: func(s string) { fmt.Fprintln(os.Stderr, s) },
		Stdout:   fmt.Printf,
	}
	if cfg.MailPassword == "" || cfg.P12Password == "" {
		log.Fatal("set ACMEMAIL_PASSWORD (mail login) and ACMEMAIL_P12_PASSWORD (PKCS#12 file)")
	}
	if path := os.Getenv("ACMEMAIL_CA_ROOTS"); path != "" {
		pem, err := os.ReadFile(path)
		if err != nil {
			log.Fatal(err)
		}
		if cfg.Roots, err = x509.SystemCertPool(); err != nil {
			cfg.Roots = x509.NewCertPool()
		}
		if !cfg.Roots.AppendCertsFromPEM(pem) {
			log.Fatalf("ACMEMAIL_CA_ROOTS (%s) holds no certificate", path)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := obtain(ctx, cfg); err != nil {
		log.Fatal(err)
	}
}

func obtain(ctx context.Context, cfg config) error {
	store, err := keystore.Open(cfg.StateDir)
	if err != nil {
		return err
	}
	imapEP, err := mailbox.ParseIMAPURL(cfg.IMAP)
	if err != nil {
		return err
	}
	smtpEP, err := mailbox.ParseSMTPURL(cfg.SMTP)
	if err != nil {
		return err
	}
	tlsConf := &tls.Config{RootCAs: cfg.Roots, MinVersion: tls.VersionTLS12}
	creds := mailbox.Credentials{Username: cfg.Email, Password: cfg.MailPassword}

	// Watch the mailbox before the order exists: the CA may mail at once.
	w, err := mailbox.Watch(ctx, mailbox.IMAPConfig{Endpoint: imapEP, Credentials: creds, TLSConfig: tlsConf})
	if err != nil {
		return err
	}
	defer w.Close()
	s := mailbox.NewSender(mailbox.SMTPConfig{Endpoint: smtpEP, Credentials: creds, TLSConfig: tlsConf})
	defer s.Close()

	accountKey, err := store.AccountKey(cfg.Directory)
	if err != nil {
		return err
	}
	var accountURL string
	if acct, err := store.LoadAccount(cfg.Directory); err == nil {
		accountURL = acct.URL
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return err
	}
	// The certificate key is on disk before the CA sees its CSR.
	certKey, err := store.CertKey(cfg.Email, keystore.KeyP256)
	if err != nil {
		return err
	}
	csr, err := acmemail.NewCSR(certKey, []string{cfg.Email}, acmemail.UsageBoth)
	if err != nil {
		return err
	}
	client := &acmemail.Client{
		DirectoryURL: cfg.Directory,
		HTTPClient:   &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}},
		AccountKey:   accountKey,
		AccountURL:   accountURL,
		Mail:         &mailbox.Mailbox{Watcher: w, Sender: s},
		Verifier:     &acmemail.MailVerifier{LookupTXT: cfg.LookupTXT}, // DKIM, fail closed
		Guard:        store,                                            // never answer a challenge twice
		Progress: func(e acmemail.Event) {
			if cfg.Progress != nil {
				cfg.Progress(e.Message)
			}
		},
		OnAccount: func(url string) error {
			return store.SaveAccount(&keystore.Account{Directory: cfg.Directory, URL: url, Key: accountKey})
		},
	}
	cert, err := client.Obtain(ctx, acmemail.ObtainRequest{Emails: []string{cfg.Email}, CSR: csr})
	if err != nil {
		return err
	}
	if _, err := acmemail.CheckCertificate(cert.Chain, certKey.Public(), []string{cfg.Email}, acmemail.UsageBoth); err != nil {
		return err
	}
	leaf := cert.Chain[0]
	meta := keystore.CertMeta{Email: cfg.Email, Directory: cfg.Directory, KeyType: keystore.KeyP256, Usage: acmemail.UsageBoth.String(),
		Serial: leaf.SerialNumber.Text(16), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}
	if _, err := store.SaveCertificate(cfg.Email, cert.ChainPEM, meta); err != nil {
		return err
	}
	p12, err := store.WritePKCS12(cfg.Email, cfg.P12Password, keystore.P12Modern)
	if err != nil {
		return err
	}
	if cfg.Stdout != nil {
		cfg.Stdout("%s\n", p12)
	}
	return nil
}
