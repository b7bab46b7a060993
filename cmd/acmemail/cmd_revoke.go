package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/keystore"
)

type revokeOptions struct {
	cert   string
	key    string
	reason string
	server string
	only   string // "", "signing" or "encryption": one certificate of an obtain --split pair
	json   bool
}

const revokeLong = `Revoke a certificate: the managed certificate of EMAIL, or the one in --cert FILE
(PEM; the first certificate in the file). Revocation cannot be undone: mail clients
that check revocation stop trusting signatures made with it.

For an address with a signing and an encryption certificate (obtain --split), both
are revoked, with the same --reason, each request signed with that certificate's own
key. If one of the two cannot be revoked, the other is still tried; the command then
fails and says which one is left and how to revoke it alone: --only signing or
--only encryption revokes just that one (for example when only the encryption key was
lost). A certificate the CA reports as already revoked counts as revoked; the command
fails with the CA's alreadyRevoked only when every certificate it was asked to revoke
was revoked before.

The request is signed with the certificate's own key when acmemail has it (the
managed key, or --key FILE), otherwise with your ACME account key. The CA is the one
that issued the managed certificate; for a certificate acmemail does not manage, name
it with --server. --reason takes a name: unspecified (default), keyCompromise,
affiliationChanged, superseded, cessationOfOperation. After revoking a managed
certificate, renew leaves the address alone until you obtain a new one (or renew
--force); list and show report it as revoked (list shows the two certificates of a
--split pair on two lines).

Progress and the result go to stderr; --json prints on stdout an object with the
address, reason, CA, the serial of the (signing) certificate, "revoked" (true when
every certificate asked for is revoked) and "certificates": one entry per
certificate with its usage, serial, "revoked", "already_revoked" and "error".`

const revokeExample = `  acmemail revoke --reason keyCompromise alice@example.com
  # Only the encryption certificate of an obtain --split pair:
  acmemail revoke --only encryption --reason keyCompromise alice@example.com
  acmemail revoke --cert old.pem --key old-key.pem --server castle --reason superseded`

func newRevokeCmd(g *globals) *cobra.Command {
	var o revokeOptions
	cmd := &cobra.Command{
		Use:     "revoke [EMAIL]",
		Short:   "Revoke a certificate",
		Long:    revokeLong,
		Example: revokeExample,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRevoke(cmd.Context(), g, &o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cert, "cert", "", "revoke the certificate in this PEM file instead of a managed one")
	f.StringVar(&o.key, "key", "", "sign the request with this PEM private key (the certificate's key)")
	f.StringVar(&o.reason, "reason", "unspecified", "why: "+strings.Join(acmemail.RevocationReasonNames(), ", "))
	f.StringVar(&o.server, "server", "", "the CA's directory URL or name, for a certificate acmemail does not manage")
	f.StringVar(&o.only, "only", "", "of an obtain --split pair, revoke only the signing or only the encryption certificate (default: both)")
	f.BoolVar(&o.json, "json", false, "print the result as JSON on stdout")
	return cmd
}

// revokeTarget is one certificate a revoke command revokes.
type revokeTarget struct {
	role    string // "signing" or "encryption" for a certificate of an obtain --split pair, else ""
	leaf    *x509.Certificate
	key     crypto.Signer // the certificate's key, when known
	dirURL  string
	store   *keystore.Store // the store (slot) that manages it; nil: not managed
	email   string          // the managed address
	usage   string          // as recorded (sign, encrypt, both); "" when not managed
	loadErr error           // the managed certificate could not be read: not tried
}

// what names the certificate in messages.
func (t *revokeTarget) what() string {
	if t.role != "" {
		return "the " + t.role + " certificate"
	}
	return "the certificate"
}

// named is what() with the serial number, when known.
func (t *revokeTarget) named() string {
	if t.leaf == nil {
		return t.what()
	}
	return t.what() + " " + t.serial()
}

func (t *revokeTarget) serial() string {
	if t.leaf == nil {
		return ""
	}
	return t.leaf.SerialNumber.Text(16)
}

// revokeCertResult is one certificate in revoke --json's output.
type revokeCertResult struct {
	Usage          string `json:"usage,omitempty"`
	Serial         string `json:"serial,omitempty"`
	Revoked        bool   `json:"revoked"`
	AlreadyRevoked bool   `json:"already_revoked,omitempty"`
	Error          string `json:"error,omitempty"`
}

// revokeResult is revoke --json's output. Serial and Email are those of
// the first certificate (the signing one of a --split pair), as before
// there were pairs.
type revokeResult struct {
	Serial       string             `json:"serial"`
	Email        string             `json:"email"`
	Reason       string             `json:"reason"`
	CA           string             `json:"ca"`
	Revoked      bool               `json:"revoked"`
	Certificates []revokeCertResult `json:"certificates"`
}

// onlyRole parses --only.
func onlyRole(v string) (string, error) {
	switch v {
	case "":
		return "", nil
	case "signing", "sign":
		return "signing", nil
	case "encryption", "encrypt":
		return "encryption", nil
	}
	return "", usageErrorf("--only %q: choose signing or encryption", v)
}

func runRevoke(ctx context.Context, g *globals, o *revokeOptions, args []string) error {
	reason, err := acmemail.ParseRevocationReason(o.reason)
	if err != nil {
		return usageErrorf("--reason: %w", err)
	}
	only, err := onlyRole(o.only)
	if err != nil {
		return err
	}
	if (len(args) == 1) == (o.cert != "") {
		return usageErrorf("name either an address or --cert FILE")
	}
	if only != "" && o.cert != "" {
		return usageErrorf("--only picks a certificate of a managed address; --cert FILE already names one")
	}
	store, err := openStateStore(g)
	if err != nil {
		return err
	}
	var targets []*revokeTarget
	if len(args) == 1 {
		email, err := checkEmail(args[0])
		if err != nil {
			return err
		}
		if targets, err = managedRevokeTargets(store, email, only); err != nil {
			return err
		}
	} else {
		t, err := fileRevokeTarget(store, o.cert)
		if err != nil {
			return err
		}
		targets = []*revokeTarget{t}
	}
	if o.key != "" {
		if len(targets) > 1 {
			return withHint(usageErrorf("--key names one certificate's key, and %s has two (obtain --split)", targets[0].email),
				"add --only signing or --only encryption")
		}
		data, err := os.ReadFile(o.key)
		if err != nil {
			return usageErrorf("--key: %w", err)
		}
		k, err := keystore.ParsePrivateKey(data)
		if err != nil {
			return usageErrorf("--key %s: %w", o.key, err)
		}
		targets[0].key = k
	}
	if o.server != "" {
		u, err := directoryURL(o.server)
		if err != nil {
			return err
		}
		for _, t := range targets {
			t.dirURL = u
		}
	}
	for _, t := range targets {
		if t.loadErr == nil && t.dirURL == "" {
			return withHint(usageErrorf("acmemail does not manage this certificate, so it does not know its CA"), "name the CA with --server URL")
		}
	}
	pool, err := g.rootPool()
	if err != nil {
		return err
	}

	name := acmemail.RevocationReasonName(reason)
	results := make([]revokeCertResult, len(targets))
	errs := make([]error, len(targets))
	for i, t := range targets {
		res := &results[i]
		res.Usage, res.Serial = t.usage, t.serial()
		err := t.loadErr
		if err == nil {
			err = revokeOne(ctx, g, store, pool, t, reason)
		}
		var pe *acmemail.ProblemError
		switch {
		case err == nil:
			res.Revoked = true
			t.record(g, reason, false)
			fmt.Fprintf(g.stderr, "acmemail: revoked %s %s (%s) for %s\n", t.what(), res.Serial, name, strings.Join(t.leaf.EmailAddresses, ", "))
		case errors.As(err, &pe) && pe.ShortType() == "alreadyRevoked":
			res.Revoked, res.AlreadyRevoked, res.Error = true, true, err.Error()
			t.record(g, reason, true)
			if len(targets) > 1 {
				fmt.Fprintf(g.stderr, "acmemail: %s %s of %s was already revoked (the CA says alreadyRevoked)\n", t.what(), res.Serial, t.email)
			}
		default:
			res.Error = err.Error()
		}
		errs[i] = err
	}
	if o.json {
		out := revokeResult{Serial: results[0].Serial, Reason: name, CA: targets[0].dirURL, Revoked: true, Certificates: results}
		if l := targets[0].leaf; l != nil {
			out.Email = strings.Join(l.EmailAddresses, ",")
		} else {
			out.Email = targets[0].email
		}
		for _, r := range results {
			out.Revoked = out.Revoked && r.Revoked
		}
		if err := json.NewEncoder(g.stdout).Encode(out); err != nil {
			return err
		}
	}
	return revokeOutcome(targets, results, errs, name)
}

// revokeOutcome is the command's error after every target was tried: nil
// when each is revoked and at least one was revoked now (one certificate:
// its error, as the CA gave it); for a pair, which certificate is left and
// how to revoke it alone.
func revokeOutcome(targets []*revokeTarget, results []revokeCertResult, errs []error, reason string) error {
	if len(targets) == 1 {
		return errs[0]
	}
	var failed, ok []int
	revokedNow := false
	for i, r := range results {
		if r.Revoked {
			ok = append(ok, i)
			revokedNow = revokedNow || !r.AlreadyRevoked
		} else {
			failed = append(failed, i)
		}
	}
	email := targets[0].email
	switch {
	case len(failed) == 0 && revokedNow:
		return nil
	case len(failed) == 0:
		return fmt.Errorf("both certificates of the --split pair of %s were already revoked: %w", email, errs[0])
	case len(failed) == 1:
		f, o := targets[failed[0]], targets[ok[0]]
		done := "revoked"
		if results[ok[0]].AlreadyRevoked {
			done = "found already revoked"
		}
		hints := []string{fmt.Sprintf("%s is not revoked: once the cause is fixed, revoke it alone with acmemail revoke --only %s --reason %s %s", f.what(), f.role, reason, email)}
		if f.loadErr != nil {
			// Its key or files are unusable: the account may still sign.
			hints = append(hints, fmt.Sprintf("or revoke it with your account key: acmemail revoke --cert FILE --server %s --reason %s (FILE: its cert.pem, or the certificate from a backup)", o.dirURL, reason))
		}
		return withHint(fmt.Errorf("%s %s of %s, but not %s: %w", done, o.named(), email, f.named(), errs[failed[0]]), hints...)
	}
	return withHint(fmt.Errorf("neither certificate of the --split pair of %s was revoked: %s: %w; %s: %w",
		email, targets[0].what(), errs[0], targets[1].what(), errs[1]),
		"neither is revoked: fix the cause and run the command again")
}

// managedRevokeTargets are the managed certificates of email that revoke
// revokes: its certificate, or both of an obtain --split pair (only: one
// of them).
func managedRevokeTargets(store *keystore.Store, email, only string) ([]*revokeTarget, error) {
	notManaged := withHint(fmt.Errorf("no certificate for %s is managed here", email), "for another certificate use --cert FILE --server CA")
	main := &revokeTarget{store: store, email: email}
	key, chain, meta, _, err := store.LoadCertificate(email)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, notManaged
	}
	if err == nil {
		main.fill(key, chain, meta)
	} else {
		main.loadErr = err
	}
	encStore, err := store.Slot(encryptSlot)
	if err != nil {
		return nil, err
	}
	enc := &revokeTarget{store: encStore, email: email, role: "encryption"}
	key, chain, encMeta, _, err := encStore.LoadCertificate(email)
	switch {
	case errors.Is(err, keystore.ErrNotFound):
		enc = nil
	case err == nil:
		enc.fill(key, chain, encMeta)
	default:
		enc.loadErr = fmt.Errorf("read the encryption certificate: %w", err)
	}
	if enc == nil {
		if main.loadErr != nil {
			return nil, main.loadErr
		}
		if only != "" {
			return nil, withHint(usageErrorf("--only %s: %s has one certificate, not a signing and an encryption one (obtain --split)", only, email),
				"drop --only to revoke it")
		}
		if err := notInProcessSandbox(meta, email); err != nil {
			return nil, err
		}
		return []*revokeTarget{main}, nil
	}
	main.role = "signing"
	if main.loadErr != nil {
		main.loadErr = fmt.Errorf("read the signing certificate: %w", main.loadErr)
	}
	for _, m := range []struct {
		t    *revokeTarget
		meta keystore.CertMeta
	}{{main, meta}, {enc, encMeta}} {
		if m.t.loadErr == nil {
			if err := notInProcessSandbox(m.meta, email); err != nil {
				return nil, err
			}
		}
	}
	switch only {
	case "signing":
		if main.loadErr != nil {
			return nil, main.loadErr
		}
		return []*revokeTarget{main}, nil
	case "encryption":
		if enc.loadErr != nil {
			return nil, enc.loadErr
		}
		return []*revokeTarget{enc}, nil
	}
	return []*revokeTarget{main, enc}, nil
}

func notInProcessSandbox(meta keystore.CertMeta, email string) error {
	if meta.Settings != nil && meta.Settings.Server == "sandbox" {
		return fmt.Errorf("the certificate of %s came from an in-process sandbox, which no longer runs; there is nothing to revoke it at", email)
	}
	return nil
}

func (t *revokeTarget) fill(key crypto.Signer, chain []*x509.Certificate, meta keystore.CertMeta) {
	t.leaf, t.key, t.dirURL, t.usage = chain[0], key, meta.Directory, meta.Usage
}

// fileRevokeTarget is the certificate in the PEM file path; when acmemail
// manages it (as an address's certificate or as the encryption one of a
// --split pair), its key and CA are known.
func fileRevokeTarget(store *keystore.Store, path string) (*revokeTarget, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErrorf("--cert: %w", err)
	}
	chain, err := keystore.ParseChain(data)
	if err != nil {
		return nil, usageErrorf("--cert %s: %w", path, err)
	}
	t := &revokeTarget{leaf: chain[0]}
	emails, err := store.ListCertificates()
	if err != nil {
		return t, nil
	}
	stores := []*keystore.Store{store}
	if enc, err := store.Slot(encryptSlot); err == nil {
		stores = append(stores, enc)
	}
	for _, st := range stores {
		for _, e := range emails {
			key, c, meta, _, err := st.LoadCertificate(e)
			if err == nil && c[0].Equal(t.leaf) {
				t.fill(key, c, meta)
				t.store, t.email = st, e
				if st != store {
					t.role = "encryption"
				}
				return t, nil
			}
		}
	}
	return t, nil
}

// revokeOne asks t's CA to revoke it, signed with its own key when known,
// else with the account key.
func revokeOne(ctx context.Context, g *globals, store *keystore.Store, pool *x509.CertPool, t *revokeTarget, reason int) error {
	client := &acmemail.Client{DirectoryURL: t.dirURL, HTTPClient: httpClient(pool), UserAgent: "acmemail/" + versionString(), Logger: g.logger().With("component", "acme")}
	if acct, err := store.LoadAccount(t.dirURL); err == nil {
		client.AccountKey, client.AccountURL = acct.Key, acct.URL
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return err
	}
	if client.AccountKey == nil {
		if t.key == nil {
			return withHint(fmt.Errorf("there is no ACME account for %s here and no key of the certificate", t.dirURL), "give the certificate's key with --key FILE")
		}
		client.AccountKey = t.key // only the certificate key signs
	}
	if err := client.Revoke(ctx, t.leaf, reason, t.key); err != nil {
		return &revokeCAError{err}
	}
	return nil
}

// revokeCAError is the CA's answer to a revocation request (printError
// leaves out its hints about orders).
type revokeCAError struct{ err error }

func (e *revokeCAError) Error() string { return e.err.Error() }
func (e *revokeCAError) Unwrap() error { return e.err }

// record notes in t's renewal state that it is revoked (list, show and
// renew read it), when t is still the managed certificate. For one the
// CA found already revoked, an earlier record is kept.
func (t *revokeTarget) record(g *globals, reason int, already bool) {
	if t.store == nil {
		return
	}
	_, c, meta, _, err := t.store.LoadCertificate(t.email)
	if err != nil || !c[0].Equal(t.leaf) {
		return
	}
	st := issuer.LoadRenewalState(t.store, t.email, meta.Serial)
	if already && st.Revoked != nil {
		return
	}
	now := time.Now().UTC()
	st.Revoked, st.RevocationReason = &now, acmemail.RevocationReasonName(reason)
	if already {
		st.RevocationReason = "" // the CA did not say why
	}
	if err := issuer.SaveRenewalState(t.store, t.email, st); err != nil {
		fmt.Fprintf(g.stderr, "acmemail: warning: %s is revoked, but recording it failed: %v\n", t.what(), err)
	}
}
