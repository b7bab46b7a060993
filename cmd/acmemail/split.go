package main

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// encryptSlot is where --split keeps the encryption certificate:
// certificates/<email>/encrypt/ (see keystore.Store.Slot).
const encryptSlot = "encrypt"

// splitResult is obtain --split --json's output.
type splitResult struct {
	Signing    obtainResult `json:"signing"`
	Encryption obtainResult `json:"encryption"`
	PKCS12     string       `json:"pkcs12,omitempty"` // --out: both keys in one file
}

// obtainSplit gets a signing and an encryption certificate in one run:
// two orders, two keys. The signing certificate is the address's main one
// (certificates/<email>/), the encryption certificate lives in the
// "encrypt" slot (certificates/<email>/encrypt/). The mail is answered
// once per challenge: when the CA puts the still valid authorization of
// the first order into the second, there is no second challenge (the
// flow skips valid authorizations); when it makes a new one, its new
// challenge is answered like the first. A challenge is never answered
// twice: answered challenges are recorded before the reply.
func (s *session) obtainSplit(ctx context.Context, o *obtainOptions, p12Password string) error {
	id, store := s.id, s.store
	encStore, err := store.Slot(encryptSlot)
	if err != nil {
		return err
	}
	// The encryption key is made in the background while the signing
	// order runs (the signing key may already be, see startCertKey).
	var encKey crypto.Signer
	var encKeyErr error
	encDone := make(chan struct{})
	go func() {
		defer close(encDone)
		encKey, encKeyErr = encStore.CertKey(id.email, id.keyType)
	}()
	s.closers = append(s.closers, func() { <-encDone })
	run := func(usage acmemail.Usage, st *keystore.Store, key func() (crypto.Signer, error), what string) (*issued, error) {
		one := *id
		one.usage = usage
		saved := s.certKey
		s.id, s.store, s.certKey = &one, st, key
		defer func() { s.id, s.store, s.certKey = id, store, saved }()
		s.prog.printf("%s", what)
		return s.issue(ctx, p12Password, issueRequest{})
	}
	sign, err := run(acmemail.UsageSign, store, s.certKey, "1/2: the signing certificate (digitalSignature)")
	if err != nil {
		return fmt.Errorf("the signing certificate: %w", err)
	}
	s.prog.printf("saved the signing certificate for %s (valid until %s)", id.email, sign.meta.NotAfter.UTC().Format(time.DateOnly))
	encUsage := "keyEncipherment"
	if kt := string(id.keyType); strings.HasPrefix(kt, "p") {
		encUsage = "keyAgreement"
	}
	enc, err := run(acmemail.UsageEncrypt, encStore, func() (crypto.Signer, error) { <-encDone; return encKey, encKeyErr },
		"2/2: the encryption certificate ("+encUsage+")")
	hooks := &hookRunner{stderr: s.g.stderr}
	if err != nil {
		encErr := withHint(fmt.Errorf("the encryption certificate: %w (the signing certificate is saved in %s)", err, sign.paths.Dir),
			"run the same command again for a new pair, or obtain the encryption certificate alone with --usage encrypt")
		// The signing certificate is saved and current: deploy it, as
		// after any issuance; the run fails for the encryption one.
		if ctx.Err() != nil {
			if id.deployHook != "" {
				s.prog.printf("the deploy hook was not run for the signing certificate (%v); run it by hand", ctx.Err())
			}
		} else if hookErr := hooks.run(ctx, id.deployHook, sign, sign.p12Out); hookErr != nil {
			printError(s.g.stderr, hookErr)
		}
		return encErr
	}
	s.prog.printf("saved the encryption certificate for %s (valid until %s)", id.email, enc.meta.NotAfter.UTC().Format(time.DateOnly))
	if s.world != nil {
		s.prog.printf("the sandbox issued them; they are trusted by no mail client (its root is a test root)")
	}

	var both string
	if o.out != "" {
		// One file with both keys: what a mail client imports in one go.
		entries := []keystore.P12Entry{{Key: sign.key, Chain: sign.cert.Chain}, {Key: enc.key, Chain: enc.cert.Chain}}
		data, err := keystore.EncodePKCS12Bundle(entries, p12Password, id.profile)
		if err != nil {
			return err
		}
		if err := writeNewFile(o.out, data); err != nil {
			return fmt.Errorf("write --out: %w (both certificates are saved in %s)", err, sign.paths.Dir)
		}
		both, _ = filepath.Abs(o.out)
	}
	result := func(r *issued, usage acmemail.Usage) obtainResult {
		abs, _ := filepath.Abs(r.p12Out)
		return obtainResult{
			Email: id.email, PKCS12: abs, Certificate: r.paths.Chain, Key: r.paths.Key,
			Serial: r.meta.Serial, NotBefore: r.meta.NotBefore.UTC(), NotAfter: r.meta.NotAfter.UTC(),
			KeyType: string(r.meta.KeyType), Usage: usage.String(), CA: s.dirURL, OrderURL: r.cert.OrderURL,
			ACMERequests: s.client.Requests(),
		}
	}
	// The deploy hook runs once per certificate, as renew runs it (see
	// renewer.one): the signing one first, each with its own files and
	// ACMEMAIL_CERT_USAGE; a failure of one does not keep the other from
	// being deployed.
	hookErr := errors.Join(hooks.run(ctx, id.deployHook, sign, sign.p12Out), hooks.run(ctx, id.deployHook, enc, enc.p12Out))
	if o.json {
		if err := json.NewEncoder(s.g.stdout).Encode(splitResult{Signing: result(sign, acmemail.UsageSign), Encryption: result(enc, acmemail.UsageEncrypt), PKCS12: both}); err != nil {
			return err
		}
		return hookErr
	}
	lines := []string{sign.p12Out, enc.p12Out}
	if both != "" {
		lines = []string{both}
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(s.g.stdout, l); err != nil {
			return err
		}
	}
	return hookErr
}

// renewEncryptSlot renews the encryption certificate of an obtain --split
// pair (the "encrypt" slot of email) after its signing certificate was
// renewed in the same session, or does nothing (nil, nil) when email has
// no such pair. It orders with a key of its own and usage encrypt, and
// says which certificate it replaces when the CA supports ARI.
func (s *session) renewEncryptSlot(ctx context.Context, store *keystore.Store, id *identity, p12Password string, reuseKey bool) (*issued, error) {
	encStore, err := store.Slot(encryptSlot)
	if err != nil {
		return nil, err
	}
	_, chain, _, _, err := encStore.LoadCertificate(id.email)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	replaces := ""
	// A revoked certificate is not replaced (renew's rule for the signing one).
	if st := loadRenewalState(encStore, id.email, chain[0].SerialNumber.Text(16)); st.Revoked == nil && time.Now().Before(chain[0].NotAfter) {
		if ok, err := s.client.SupportsRenewalInfo(ctx); err == nil && ok {
			replaces, _ = acmemail.CertID(chain[0])
		}
	}
	one := *id
	one.usage = acmemail.UsageEncrypt
	savedID, savedStore, savedKey := s.id, s.store, s.certKey
	s.id, s.store, s.certKey = &one, encStore, nil
	defer func() { s.id, s.store, s.certKey = savedID, savedStore, savedKey }()
	s.prog.printf("renewing the encryption certificate of the --split pair")
	res, err := s.issue(ctx, p12Password, issueRequest{replaces: replaces, reuseKey: reuseKey})
	var pe *acmemail.ProblemError
	if replaces != "" && errors.As(err, &pe) && pe.ShortType() == "alreadyReplaced" {
		res, err = s.issue(ctx, p12Password, issueRequest{reuseKey: reuseKey})
	}
	if err != nil {
		return nil, fmt.Errorf("renew the encryption certificate of %s (the signing one is renewed): %w", id.email, err)
	}
	return res, nil
}
