package issuer

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
)

// EncryptSlot is where a split pair keeps its encryption certificate:
// certificates/<email>/encrypt/ (see keystore.Store.Slot).
const EncryptSlot = "encrypt"

// ObtainOptions are the choices of one obtain run that are not recorded
// in the profile.
type ObtainOptions struct {
	Progress Reporter
	WaitLock bool // wait for another run on the address instead of failing
	AgreeTOS bool // agreed to the CA's terms of service for a new account
	// World is the in-process sandbox, for a profile whose Server is
	// "sandbox"; the caller started it and made the address's mailbox.
	World *sandbox.World
	// Mail, if set, replaces the profile's IMAP and SMTP (the challenge is
	// pasted, or handed over by a mail filter); Observe then sees every
	// progress event of the order flow.
	Mail    acmemail.Mail
	Observe func(acmemail.Event)
	// MailWait, if positive, replaces the profile's for this run.
	MailWait time.Duration
	// Guard, if set, wraps the run's reply guard (the state directory):
	// a mail handed over by another process may refuse the claim when
	// that process went away.
	Guard func(acmemail.ReplyGuard) acmemail.ReplyGuard
}

// Obtained is what an obtain run did.
type Obtained struct {
	Profile   Profile   // as recorded with the certificates
	Directory string    // the CA's directory URL
	Certs     []*Issued // one; for a split pair the signing, then the encryption certificate
	Requests  int64     // ACME requests made
}

// Obtain gets a certificate (a split pair: two) for p.Email and records p
// with it. The deploy hook runs once per certificate; its failure is a
// *HookError returned with the result. When the second certificate of a
// pair fails, the first is saved and returned with the error.
func (is *Issuer) Obtain(ctx context.Context, p Profile, o ObtainOptions) (*Obtained, error) {
	p = p.WithDefaults()
	if err := p.Check(); err != nil {
		return nil, err
	}
	if err := CheckHook(p.DeployHook); err != nil {
		return nil, err
	}
	prog := reporter(o.Progress)
	if o.Observe != nil {
		next := prog
		prog = observer{next, o.Observe}
	}
	r, err := is.open(p, o.World, prog)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if o.MailWait > 0 {
		r.p.MailWait = Duration(o.MailWait) // for this run; p is recorded
	}
	if o.World != nil {
		r.prog.Printf("started the sandbox CA at %s", o.World.DirectoryURL)
	}
	if err := r.lock(ctx, o.WaitLock); err != nil {
		return nil, err
	}
	signKey := r.startKey(is.Store)
	p12Password, err := r.secrets.P12Password(ctx, &r.p)
	if err != nil {
		return nil, err
	}
	mail := o.Mail
	if mail != nil {
		r.input = &inputWatch{Mail: mail}
		mail = r.input
	} else {
		if mail, err = r.openMail(ctx); err != nil {
			return nil, err
		}
	}
	// A pasted or handed-over mail says nothing about the CA's timing.
	r.useTiming(o.Mail == nil)
	client, err := r.newClient(ctx, mail, o.AgreeTOS || o.World != nil, o.Guard)
	if err != nil {
		return nil, err
	}
	if _, _, cur, _, err := is.Store.LoadCertificate(p.Email); err == nil && time.Now().Before(cur.NotAfter) {
		prog.Printf("%s already has a certificate (serial %s, valid until %s): the new one replaces it, the current one goes to the archive (acmemail renew renews only when due)",
			p.Email, acmemail.FormatSerialText(cur.Serial), cur.NotAfter.UTC().Format(time.DateOnly))
	}
	res := &Obtained{Profile: p, Directory: r.dirURL}
	if !p.Split {
		usage, _ := acmemail.ParseUsage(p.Usage)
		c, err := r.issue(ctx, client, target{store: is.Store, usage: usage, key: signKey}, p12Password, "", false)
		if err != nil {
			return nil, err
		}
		res.Certs = []*Issued{c}
		res.Requests = client.Requests()
		return res, is.RunHook(ctx, p.DeployHook, c, c.Paths.PKCS12)
	}
	err = r.obtainSplit(ctx, client, signKey, p12Password, res)
	res.Requests = client.Requests()
	return res, err
}

// observer shows events and hands them to a mail that watches them.
type observer struct {
	Reporter
	observe func(acmemail.Event)
}

func (o observer) Event(e acmemail.Event) {
	o.Reporter.Event(e)
	o.observe(e)
}

// obtainSplit gets a signing and an encryption certificate in one run: two
// orders, two keys. The signing certificate is the address's main one
// (certificates/<email>/), the encryption certificate lives in the
// EncryptSlot. The mail is answered once per challenge: when the CA puts
// the still valid authorization of the first order into the second, there
// is no second challenge (the flow skips valid authorizations); when it
// makes a new one, its new challenge is answered like the first. A
// challenge is never answered twice: answered challenges are recorded
// before the reply.
func (r *run) obtainSplit(ctx context.Context, client *acmemail.Client, signKey func() (crypto.Signer, error), p12Password string, res *Obtained) error {
	p, store := &r.p, r.is.Store
	encStore, err := store.Slot(EncryptSlot)
	if err != nil {
		return err
	}
	// The encryption key is made in the background while the signing
	// order runs.
	encKey := r.startKey(encStore)
	r.prog.Printf("1/2: the signing certificate (digitalSignature)")
	sign, err := r.issue(ctx, client, target{store: store, usage: acmemail.UsageSign, key: signKey}, p12Password, "", false)
	if err != nil {
		return fmt.Errorf("the signing certificate: %w", err)
	}
	res.Certs = append(res.Certs, sign)
	r.prog.Printf("saved the signing certificate for %s (valid until %s)", p.Email, sign.Meta.NotAfter.UTC().Format(time.DateOnly))
	encUsage := "keyEncipherment"
	if strings.HasPrefix(string(p.KeyType), "p") {
		encUsage = "keyAgreement"
	}
	r.prog.Printf("2/2: the encryption certificate (%s)", encUsage)
	enc, err := r.issue(ctx, client, target{store: encStore, usage: acmemail.UsageEncrypt, key: encKey}, p12Password, "", false)
	if err != nil {
		encErr := WithHint(fmt.Errorf("the encryption certificate: %w (the signing certificate is saved in %s)", err, sign.Paths.Dir),
			"run the same command again for a new pair, or obtain the encryption certificate alone with --usage encrypt")
		// The signing certificate is saved and current: deploy it, as
		// after any issuance; the run fails for the encryption one.
		if ctx.Err() != nil {
			if p.DeployHook != "" {
				r.prog.Printf("the deploy hook was not run for the signing certificate (%v); run it by hand", ctx.Err())
			}
			return encErr
		}
		return errors.Join(encErr, r.is.RunHook(ctx, p.DeployHook, sign, sign.Paths.PKCS12))
	}
	res.Certs = append(res.Certs, enc)
	r.prog.Printf("saved the encryption certificate for %s (valid until %s)", p.Email, enc.Meta.NotAfter.UTC().Format(time.DateOnly))
	// The deploy hook runs once per certificate, as renew runs it: the
	// signing one first, each with its own files and ACMEMAIL_CERT_USAGE;
	// a failure of one does not keep the other from being deployed.
	return errors.Join(r.is.RunHook(ctx, p.DeployHook, sign, sign.Paths.PKCS12), r.is.RunHook(ctx, p.DeployHook, enc, enc.Paths.PKCS12))
}

// LoadProfile reads the profile recorded with the certificate of email.
func (is *Issuer) LoadProfile(email string) (Profile, keystore.CertMeta, error) {
	_, _, meta, _, err := is.Store.LoadCertificate(email)
	if errors.Is(err, keystore.ErrNotFound) {
		return Profile{}, meta, fmt.Errorf("%s: %w", email, ErrNotManaged)
	}
	if err != nil {
		return Profile{}, meta, err
	}
	p, err := ProfileOf(meta)
	return p, meta, err
}
