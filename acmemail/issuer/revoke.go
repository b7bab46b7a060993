package issuer

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// The roles of the two certificates of a split pair.
const (
	RoleSigning    = "signing"
	RoleEncryption = "encryption"
)

// Revocation is one certificate to revoke and, once Revoke has run, what
// became of it.
type Revocation struct {
	Role      string            // RoleSigning or RoleEncryption for one of a split pair, else ""
	Leaf      *x509.Certificate // nil when the managed certificate could not be read
	Key       crypto.Signer     // the certificate's key, when known: it signs the request
	Directory string            // the CA's directory URL ("" when not known)
	Email     string            // the managed address; "" when not managed
	Usage     string            // as recorded (sign, encrypt, both); "" when not managed
	// LoadErr: the managed certificate could not be read; Revoke does not
	// try it.
	LoadErr error

	// Set by Revoke. A certificate the CA reports as already revoked
	// counts as revoked, with the CA's answer in Err.
	Revoked, AlreadyRevoked bool
	Err                     error

	store *keystore.Store // the store (slot) that manages it; nil: not managed
}

// What names the certificate in messages.
func (r *Revocation) What() string {
	if r.Role != "" {
		return "the " + r.Role + " certificate"
	}
	return "the certificate"
}

// Named is What with the serial number, when known.
func (r *Revocation) Named() string {
	if r.Leaf == nil {
		return r.What()
	}
	return r.What() + " " + r.Serial()
}

// Serial is the certificate's serial number as OpenSSL prints it, "" when not known.
func (r *Revocation) Serial() string {
	if r.Leaf == nil {
		return ""
	}
	return acmemail.FormatSerial(r.Leaf.SerialNumber)
}

func (r *Revocation) fill(store *keystore.Store, email string, key crypto.Signer, chain []*x509.Certificate, meta keystore.CertMeta) {
	r.store, r.Email = store, email
	r.Leaf, r.Key, r.Directory, r.Usage = chain[0], key, meta.Directory, meta.Usage
}

// ErrNotPair: one certificate of a split pair was asked for, and the
// address has a single certificate.
var ErrNotPair = errors.New("the address has one certificate, not a signing and an encryption one")

// Revocations are the managed certificates of email to revoke: its
// certificate, or both of a split pair (the signing one first); only
// (RoleSigning or RoleEncryption) picks one of a pair. An address with no
// certificate is ErrNotManaged; only for an address without a pair is
// ErrNotPair. A certificate of the pair that cannot be read is returned
// with its LoadErr, so that the other is still revoked; when only that one
// is asked for, or it is the only one, its error is returned.
func Revocations(store *keystore.Store, email, only string) ([]*Revocation, error) {
	main := &Revocation{}
	key, chain, meta, _, err := store.LoadCertificate(email)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", email, ErrNotManaged)
	}
	if err == nil {
		main.fill(store, email, key, chain, meta)
	} else {
		main.store, main.Email, main.LoadErr = store, email, err
	}
	encStore, err := store.Slot(EncryptSlot)
	if err != nil {
		return nil, err
	}
	enc := &Revocation{Role: RoleEncryption}
	key, chain, encMeta, _, err := encStore.LoadCertificate(email)
	switch {
	case errors.Is(err, keystore.ErrNotFound):
		enc = nil
	case err == nil:
		enc.fill(encStore, email, key, chain, encMeta)
	default:
		enc.store, enc.Email, enc.LoadErr = encStore, email, fmt.Errorf("read the encryption certificate: %w", err)
	}
	if enc == nil {
		if main.LoadErr != nil {
			return nil, main.LoadErr
		}
		if only != "" {
			return nil, fmt.Errorf("%s: %w", email, ErrNotPair)
		}
		if err := notInProcessSandbox(meta, email); err != nil {
			return nil, err
		}
		return []*Revocation{main}, nil
	}
	main.Role = RoleSigning
	if main.LoadErr != nil {
		main.LoadErr = fmt.Errorf("read the signing certificate: %w", main.LoadErr)
	}
	for _, m := range []struct {
		r    *Revocation
		meta keystore.CertMeta
	}{{main, meta}, {enc, encMeta}} {
		if m.r.LoadErr == nil {
			if err := notInProcessSandbox(m.meta, email); err != nil {
				return nil, err
			}
		}
	}
	switch only {
	case RoleSigning:
		if main.LoadErr != nil {
			return nil, main.LoadErr
		}
		return []*Revocation{main}, nil
	case RoleEncryption:
		if enc.LoadErr != nil {
			return nil, enc.LoadErr
		}
		return []*Revocation{enc}, nil
	}
	return []*Revocation{main, enc}, nil
}

func notInProcessSandbox(meta keystore.CertMeta, email string) error {
	if recordedServer(meta) == "sandbox" {
		return fmt.Errorf("the certificate of %s came from an in-process sandbox, which no longer runs; there is nothing to revoke it at", email)
	}
	return nil
}

// RevocationOf is the revocation of leaf; when acmemail manages it (as an
// address's certificate or as the encryption one of a split pair), its
// key and CA are known.
func RevocationOf(store *keystore.Store, leaf *x509.Certificate) *Revocation {
	r := &Revocation{Leaf: leaf}
	emails, err := store.ListCertificates()
	if err != nil {
		return r
	}
	stores := []*keystore.Store{store}
	if enc, err := store.Slot(EncryptSlot); err == nil {
		stores = append(stores, enc)
	}
	for _, st := range stores {
		for _, e := range emails {
			key, c, meta, _, err := st.LoadCertificate(e)
			if err == nil && c[0].Equal(leaf) {
				r.fill(st, e, key, c, meta)
				if st != store {
					r.Role = RoleEncryption
				}
				return r
			}
		}
	}
	return r
}

// RevokeOptions are the choices of one revocation.
type RevokeOptions struct {
	Reason   int            // the CRLReason code (acmemail.ParseRevocationReason)
	Roots    *x509.CertPool // trusted for HTTPS to the CA; nil: the system's
	Progress Reporter
}

// RevokedCert is what became of one certificate of a revocation.
type RevokedCert struct {
	Usage          string `json:"usage,omitempty"`
	Serial         string `json:"serial,omitempty"`
	Revoked        bool   `json:"revoked"`
	AlreadyRevoked bool   `json:"already_revoked,omitempty"`
	Error          string `json:"error,omitempty"`
}

// RevokeResult is what a revocation did. Serial and Email are those of the
// first certificate (the signing one of a split pair); Revoked is true
// when every certificate asked for is revoked.
type RevokeResult struct {
	Serial       string        `json:"serial"`
	Email        string        `json:"email"`
	Reason       string        `json:"reason"`
	CA           string        `json:"ca"`
	Revoked      bool          `json:"revoked"`
	Certificates []RevokedCert `json:"certificates"`
}

// RevokeNoAccountError: a certificate whose key is not known cannot be
// revoked without an ACME account at its CA, and there is none.
type RevokeNoAccountError struct{ Directory string }

func (e *RevokeNoAccountError) Error() string {
	return fmt.Sprintf("there is no ACME account for %s here and no key of the certificate", e.Directory)
}

// RevocationError is the CA's answer to a revocation request (it is not
// about an order).
type RevocationError struct{ Err error }

func (e *RevocationError) Error() string { return e.Err.Error() }
func (e *RevocationError) Unwrap() error { return e.Err }

// PairRevokeError: the two certificates of a split pair were not both
// revoked now. One was revoked (or found revoked) and the other not, or
// neither was, or both had been revoked before; each Revocation of Pair
// says which.
type PairRevokeError struct {
	Email string
	Pair  []*Revocation // the signing, then the encryption certificate
}

func (e *PairRevokeError) Error() string {
	var parts []string
	for _, r := range e.Pair {
		switch {
		case r.AlreadyRevoked:
			parts = append(parts, r.Named()+" was already revoked")
		case r.Revoked:
			parts = append(parts, r.Named()+" is revoked")
		default:
			parts = append(parts, r.Named()+" is not revoked: "+r.Err.Error())
		}
	}
	return fmt.Sprintf("the pair of %s was not revoked as a whole: %s", e.Email, strings.Join(parts, "; "))
}

// Unwrap returns the errors of the certificates not revoked, or when both
// are revoked, the CA's answer about the first.
func (e *PairRevokeError) Unwrap() []error {
	var errs []error
	for _, r := range e.Pair {
		if !r.Revoked {
			errs = append(errs, r.Err)
		}
	}
	if len(errs) == 0 {
		errs = append(errs, e.Pair[0].Err)
	}
	return errs
}

// Revoke asks the CA of each certificate of rs to revoke it, signed with
// its own key when known, else with the ACME account key, and records a
// managed certificate's revocation in its renewal state (renew then leaves
// it alone; list and show report it). Every certificate is tried, even
// when one fails; each Revocation says what became of it, and so does the
// result.
//
// The error is nil when every certificate is revoked and at least one was
// revoked now. For one certificate it is its error: the CA's answer as a
// *RevocationError (alreadyRevoked when it was revoked before), a
// *RevokeNoAccountError, or its LoadErr. For a pair it is a *PairRevokeError.
func (is *Issuer) Revoke(ctx context.Context, rs []*Revocation, o RevokeOptions) (*RevokeResult, error) {
	prog := reporter(o.Progress)
	name := acmemail.RevocationReasonName(o.Reason)
	res := &RevokeResult{Reason: name, Revoked: true}
	for _, r := range rs {
		r.Revoked, r.AlreadyRevoked, r.Err = false, false, r.LoadErr
		if r.Err == nil {
			r.Err = is.revokeOne(ctx, r, o)
		}
		c := RevokedCert{Usage: r.Usage, Serial: r.Serial()}
		var pe *acmemail.ProblemError
		switch {
		case r.Err == nil:
			r.Revoked = true
			r.record(prog, o.Reason, false)
			prog.Printf("revoked %s %s (%s) for %s", r.What(), c.Serial, name, strings.Join(r.Leaf.EmailAddresses, ", "))
		case errors.As(r.Err, &pe) && pe.ShortType() == "alreadyRevoked":
			r.Revoked, r.AlreadyRevoked = true, true
			r.record(prog, o.Reason, true)
			if len(rs) > 1 {
				prog.Printf("%s %s of %s was already revoked (the CA says alreadyRevoked)", r.What(), c.Serial, r.Email)
			}
		}
		c.Revoked, c.AlreadyRevoked = r.Revoked, r.AlreadyRevoked
		if r.Err != nil {
			c.Error = r.Err.Error()
		}
		res.Revoked = res.Revoked && r.Revoked
		res.Certificates = append(res.Certificates, c)
	}
	if len(rs) == 0 {
		return res, nil
	}
	first := rs[0]
	res.Serial, res.CA, res.Email = first.Serial(), first.Directory, first.Email
	if first.Leaf != nil {
		res.Email = strings.Join(first.Leaf.EmailAddresses, ",")
	}
	return res, revokeOutcome(rs)
}

// revokeOutcome is Revoke's error once every certificate was tried.
func revokeOutcome(rs []*Revocation) error {
	switch len(rs) {
	case 0:
		return nil
	case 1:
		return rs[0].Err
	}
	revokedNow := false
	for _, r := range rs {
		if !r.Revoked {
			return &PairRevokeError{Email: rs[0].Email, Pair: rs}
		}
		revokedNow = revokedNow || !r.AlreadyRevoked
	}
	if !revokedNow {
		return &PairRevokeError{Email: rs[0].Email, Pair: rs}
	}
	return nil
}

// revokeOne asks r's CA to revoke it, signed with its own key when known,
// else with the account key.
func (is *Issuer) revokeOne(ctx context.Context, r *Revocation, o RevokeOptions) error {
	ua := is.UserAgent
	if ua == "" {
		ua = "acmemail"
	}
	client := &acmemail.Client{DirectoryURL: r.Directory, HTTPClient: HTTPClient(o.Roots), UserAgent: ua, Logger: is.logger().With("component", "acme")}
	if acct, err := is.Store.LoadAccount(r.Directory); err == nil {
		client.AccountKey, client.AccountURL = acct.Key, acct.URL
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return err
	}
	if client.AccountKey == nil {
		if r.Key == nil {
			return &RevokeNoAccountError{Directory: r.Directory}
		}
		client.AccountKey = r.Key // only the certificate key signs
	}
	if err := client.Revoke(ctx, r.Leaf, o.Reason, r.Key); err != nil {
		return &RevocationError{err}
	}
	return nil
}

// record notes in r's renewal state that it is revoked (list, show and
// renew read it), when r is still the managed certificate. For one the CA
// found already revoked, an earlier record is kept.
func (r *Revocation) record(prog Reporter, reason int, already bool) {
	if r.store == nil {
		return
	}
	_, c, meta, _, err := r.store.LoadCertificate(r.Email)
	if err != nil || !c[0].Equal(r.Leaf) {
		return
	}
	st := LoadRenewalState(r.store, r.Email, meta.Serial)
	if already && st.Revoked != nil {
		return
	}
	now := time.Now().UTC()
	st.Revoked, st.RevocationReason = &now, acmemail.RevocationReasonName(reason)
	if already {
		st.RevocationReason = "" // the CA did not say why
	}
	if err := SaveRenewalState(r.store, r.Email, st); err != nil {
		prog.Printf("warning: %s is revoked, but recording it failed: %v", r.What(), err)
	}
}
