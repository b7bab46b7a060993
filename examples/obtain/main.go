// Command obtain shows how to use the acmemail, mailbox and keystore
// packages without the CLI: it obtains a certificate for one address and
// writes a PKCS#12 file. Usage:
//
//	ACMEMAIL_PASSWORD=... ACMEMAIL_P12_PASSWORD=... go run ./examples/obtain \
//	    -directory https://ca.example/acme/directory \
//	    -imap imaps://imap.example.com -smtp smtps://smtp.example.com alice@example.com
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

func main() {
	directory := flag.String("directory", "", "ACME directory URL")
	imapURL := flag.String("imap", "", "IMAP URL")
	smtpURL := flag.String("smtp", "", "submission URL")
	flag.Parse()
	if flag.NArg() != 1 || *directory == "" || *imapURL == "" || *smtpURL == "" {
		flag.Usage()
		os.Exit(2)
	}
	email := flag.Arg(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := obtain(ctx, *directory, *imapURL, *smtpURL, email); err != nil {
		log.Fatal(err)
	}
}

// mail joins the IMAP watcher and the SMTP sender into an acmemail.Mail.
type mail struct {
	*mailbox.Watcher
	*mailbox.Sender
}

func obtain(ctx context.Context, directory, imapURL, smtpURL, email string) error {
	dir, err := keystore.DefaultDir(os.Getenv)
	if err != nil {
		return err
	}
	store, err := keystore.Open(dir)
	if err != nil {
		return err
	}
	imapEP, err := mailbox.ParseIMAPURL(imapURL)
	if err != nil {
		return err
	}
	smtpEP, err := mailbox.ParseSMTPURL(smtpURL)
	if err != nil {
		return err
	}
	creds := mailbox.Credentials{Username: email, Password: os.Getenv("ACMEMAIL_PASSWORD")}

	// Watch the mailbox before the order exists: the CA may mail at once.
	w, err := mailbox.Watch(ctx, mailbox.IMAPConfig{Endpoint: imapEP, Credentials: creds})
	if err != nil {
		return err
	}
	defer w.Close()
	s := mailbox.NewSender(mailbox.SMTPConfig{Endpoint: smtpEP, Credentials: creds})
	defer s.Close()

	accountKey, err := store.AccountKey(directory)
	if err != nil {
		return err
	}
	certKey, err := store.CertKey(email, keystore.KeyRSA2048)
	if err != nil {
		return err
	}
	csr, err := acmemail.NewCSR(certKey, []string{email}, acmemail.UsageBoth)
	if err != nil {
		return err
	}
	client := &acmemail.Client{
		DirectoryURL: directory,
		AccountKey:   accountKey,
		Mail:         mail{w, s},
		Verifier:     &acmemail.MailVerifier{},
		Guard:        store,
		Progress:     func(e acmemail.Event) { fmt.Fprintln(os.Stderr, e.Message) },
		OnAccount: func(url string) error {
			return store.SaveAccount(&keystore.Account{Directory: directory, URL: url, Key: accountKey})
		},
	}
	cert, err := client.Obtain(ctx, acmemail.ObtainRequest{Emails: []string{email}, CSR: csr})
	if err != nil {
		return err
	}
	if _, err := acmemail.CheckCertificate(cert.Chain, certKey.Public(), []string{email}, acmemail.UsageBoth); err != nil {
		return err
	}
	if _, err := store.SaveCertificate(email, cert.ChainPEM, keystore.CertMeta{Email: email, Directory: directory}); err != nil {
		return err
	}
	p12, err := store.WritePKCS12(email, os.Getenv("ACMEMAIL_P12_PASSWORD"), keystore.P12Modern)
	if err != nil {
		return err
	}
	fmt.Println(p12)
	return nil
}
