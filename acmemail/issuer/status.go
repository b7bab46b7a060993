package issuer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// The states of a Status.
const (
	StateValid   = "valid"
	StateExpired = "expired"
	StateRevoked = "revoked"
	// StatePending: no certificate yet, only what a first obtain that
	// failed or was interrupted left (a pending key, a pending order).
	StatePending = "pending"
	// StateBroken: the certificate's files are missing, damaged or
	// cannot be read; Reason says which and what is wrong.
	StateBroken = "broken"
)

// Status is what the state directory tells about a managed certificate,
// offline: list and show print it (--json as is). Of a pending or broken
// address it has only Email, State, Reason, Files.Dir (of a broken one
// the paths of its files too) and what is known of a pending order.
type Status struct {
	Email string `json:"email"`
	// State is valid, expired or revoked for a certificate, pending or
	// broken for an address without a usable one.
	State string `json:"state"`
	// Reason says why the state is pending or broken: for a broken one
	// the file and what is wrong with it.
	Reason           string      `json:"reason,omitempty"`
	Serial           string      `json:"serial"`
	NotBefore        time.Time   `json:"not_before,omitzero"`
	NotAfter         time.Time   `json:"not_after,omitzero"`
	KeyType          string      `json:"key_type"`
	Usage            string      `json:"usage"`
	CA               string      `json:"ca"`
	Server           string      `json:"server,omitempty"`
	RenewalDue       time.Time   `json:"renewal_due,omitzero"`
	RenewalBasis     string      `json:"renewal_basis"` // "ari" (the CA's window) or "lifetime"
	RenewalWindow    *[2]string  `json:"renewal_window,omitempty"`
	Expired          bool        `json:"expired"`
	Revoked          bool        `json:"revoked"`
	RevocationReason string      `json:"revocation_reason,omitempty"`
	PendingOrder     string      `json:"pending_order,omitempty"`
	Files            StatusFiles `json:"files"`
	Also             []string    `json:"also,omitempty"`       // the certificate's other addresses
	Encryption       *Status     `json:"encryption,omitempty"` // the encryption certificate of a split pair
	// Renew is what a renewal will do, from what was recorded (not in the
	// encryption object: the pair is renewed as one).
	Renew *Plan `json:"renew,omitempty"`
	// Timing is what was learned about the CA's challenge mail and how
	// the next renewal uses it (not for the in-process sandbox).
	Timing *LearnedTiming `json:"learned_timing,omitempty"`
}

// StatusFiles are the files of a certificate; PKCS12 and Certificate are
// "" when the file is not there.
type StatusFiles struct {
	Dir         string `json:"dir"`
	PKCS12      string `json:"pkcs12,omitempty"`
	Certificate string `json:"certificate"`
	Chain       string `json:"chain"`
	Key         string `json:"key"`
	Meta        string `json:"meta"`
}

// Broken reports whether the files of the address's certificate, or of
// the encryption certificate of its pair, cannot be read.
func (s *Status) Broken() bool {
	return s.State == StateBroken || s.Encryption != nil && s.Encryption.State == StateBroken
}

// StatusOf is the status of the certificate of email at now: its
// validity, when it is due for renewal (from its renewal state), its
// revocation, an interrupted order, its files, the encryption certificate
// of a split pair and the renewal plan. An address whose first
// certificate is still pending, or whose files cannot be read, has a
// status of its own (StatePending, StateBroken); one with nothing is
// ErrNotManaged.
func StatusOf(store *keystore.Store, email string, now time.Time) (Status, error) {
	s, err := statusOf(store, email, now)
	if errors.Is(err, keystore.ErrNotFound) {
		return Status{}, fmt.Errorf("%s: %w", email, ErrNotManaged)
	}
	return s, err
}

// Statuses is the status of every address of the state directory,
// pending and broken ones included.
func Statuses(store *keystore.Store, now time.Time) ([]Status, error) {
	emails, err := store.ListIdentities()
	if err != nil {
		return nil, err
	}
	list := []Status{}
	for _, e := range emails {
		s, err := statusOf(store, e, now)
		if errors.Is(err, keystore.ErrNotFound) {
			continue // gone since it was listed
		}
		if err != nil {
			s = Status{Email: e, State: StateBroken, Reason: err.Error()}
		}
		list = append(list, s)
	}
	return list, nil
}

func statusOf(store *keystore.Store, email string, now time.Time) (Status, error) {
	_, chain, meta, paths, err := store.LoadCertificate(email)
	if err != nil {
		return withoutCertificate(store, email, err)
	}
	leaf := chain[0]
	st := LoadRenewalState(store, email, meta.Serial)
	due, _ := st.RenewAt(leaf)
	s := Status{
		Email: normalizedOr(meta.Email), State: StateValid, Serial: acmemail.FormatSerialText(meta.Serial), NotBefore: UTCSeconds(meta.NotBefore), NotAfter: UTCSeconds(meta.NotAfter),
		KeyType: string(meta.KeyType), Usage: meta.Usage, CA: meta.Directory, RenewalDue: UTCSeconds(due), RenewalBasis: "lifetime",
		Expired: !now.Before(leaf.NotAfter), Revoked: st.Revoked != nil, RevocationReason: st.RevocationReason,
		Files: StatusFiles{Dir: paths.Dir, Certificate: paths.Leaf, Chain: paths.Chain, Key: paths.Key, Meta: paths.Meta},
	}
	switch {
	case s.Revoked:
		s.State = StateRevoked
	case s.Expired:
		s.State = StateExpired
	}
	s.Server = recordedServer(meta)
	if meta.Also != "" {
		for _, a := range strings.Split(meta.Also, ",") {
			s.Also = append(s.Also, normalizedOr(a))
		}
	}
	if enc, err := store.Slot(EncryptSlot); err == nil {
		if e, err := statusOf(enc, email, now); err == nil {
			e.Renew, e.Timing = nil, nil
			s.Encryption = &e
		}
	}
	var revoked *string
	if st.Revoked != nil {
		revoked = &st.RevocationReason
	}
	s.Renew = PlanOfMeta(meta, paths.PKCS12, s.Encryption != nil, revoked)
	if p, err := ProfileOf(meta); err == nil && p.Server != "sandbox" && meta.Directory != "" {
		s.Timing = LearnedTimingOf(store, meta.Directory, p)
	}
	if st.Window != nil && !st.Chosen.IsZero() {
		s.RenewalBasis = "ari"
		s.RenewalWindow = &[2]string{st.Window.Start.UTC().Format(time.RFC3339), st.Window.End.UTC().Format(time.RFC3339)}
	}
	if _, err := os.Stat(paths.PKCS12); err == nil {
		s.Files.PKCS12 = paths.PKCS12
	}
	if _, err := os.Stat(paths.Leaf); err != nil {
		s.Files.Certificate = ""
	}
	if o := pendingOrder(store, email); o != nil {
		s.PendingOrder = o.OrderURL
	}
	return s, nil
}

// normalizedOr is addr normalized, or addr if it does not normalize: an
// older acmemail recorded addresses as they were typed.
func normalizedOr(addr string) string {
	if n, err := acmemail.NormalizeAddress(addr); err == nil {
		return n
	}
	return addr
}

// Similar is the managed address that email (normalized) is not, but
// looks like: one that differs from it only in the case of its local part,
// which acmemail never takes for the same mailbox (RFC 5321 §2.4); "" if
// there is none. It is what a "did you mean" names when email is not
// managed.
func Similar(store *keystore.Store, email string) string {
	if store == nil {
		return ""
	}
	ids, err := store.ListIdentities()
	if err != nil {
		return ""
	}
	return acmemail.SimilarAddress(email, ids)
}

// NotManagedHints are the hints for email, which no certificate here is
// for: "did you mean" the similar managed address (see [Similar]), if
// there is one, then more.
func NotManagedHints(store *keystore.Store, email string, more ...string) []string {
	if s := Similar(store, email); s != "" {
		return append([]string{"did you mean " + s + "? The local part of an address is case-sensitive; acmemail keeps it as it was given"}, more...)
	}
	return more
}

// pendingOrder is email's recorded pending order, or nil.
func pendingOrder(store *keystore.Store, email string) *acmemail.OrderState {
	data, err := store.ReadOrderState(email)
	if err != nil {
		return nil
	}
	var o acmemail.OrderState
	if json.Unmarshal(data, &o) != nil {
		return nil
	}
	return &o
}

// withoutCertificate is the status of an address whose certificate
// LoadCertificate could not load (loadErr): pending when its directory
// holds only what a first obtain makes before its certificate, broken
// when it holds files of a certificate that cannot be read; loadErr (an
// ErrNotFound) when it holds nothing.
func withoutCertificate(store *keystore.Store, email string, loadErr error) (Status, error) {
	norm, err := keystore.NormalizeEmail(email)
	if err != nil {
		return Status{}, loadErr
	}
	paths, err := store.CertificatePaths(norm)
	if err != nil {
		return Status{}, loadErr
	}
	s := Status{Email: norm, Files: StatusFiles{Dir: paths.Dir}}
	contents, err := store.Contents(norm)
	notFound := errors.Is(loadErr, keystore.ErrNotFound)
	switch {
	case err != nil:
		s.State, s.Reason = StateBroken, err.Error()
	case notFound && contents == keystore.NoCertificateFiles:
		return Status{}, loadErr
	case notFound && contents == keystore.PendingOnly:
		s.State, s.Reason = StatePending, "no certificate yet: a first obtain failed or was interrupted; running it again continues"
		if o := pendingOrder(store, norm); o != nil {
			s.PendingOrder, s.CA = o.OrderURL, o.Directory
		}
		return s, nil
	case notFound:
		s.State, s.Reason = StateBroken, paths.Chain+" is missing"
	default:
		// The address is the status's own: the reason is what is wrong.
		s.State, s.Reason = StateBroken, strings.TrimPrefix(loadErr.Error(), "load certificate for "+norm+": ")
	}
	s.Files.Chain, s.Files.Key, s.Files.Meta = paths.Chain, paths.Key, paths.Meta
	if _, err := os.Stat(paths.Leaf); err == nil {
		s.Files.Certificate = paths.Leaf
	}
	if o := pendingOrder(store, norm); o != nil {
		s.PendingOrder = o.OrderURL
	}
	return s, nil
}

// recordedServer is the CA as obtain was given it (a name or a directory
// URL), from the profile or the settings recorded with the certificate;
// "" when nothing usable is recorded.
func recordedServer(meta keystore.CertMeta) string {
	if p, err := ProfileOf(meta); err == nil {
		return p.Server
	}
	return ""
}

// PlanOfMeta is what renew will repeat from what was recorded in meta (see
// PlanOf); a meta.json that records nothing gives NotRecordedPlan, one
// that cannot be read a plan with a warning.
func PlanOfMeta(meta keystore.CertMeta, pkcs12 string, split bool, revoked *string) *Plan {
	p, err := ProfileOf(meta)
	if errors.Is(err, ErrNotRecorded) {
		return NotRecordedPlan(meta.Email)
	}
	if err != nil {
		return &Plan{Warnings: []string{err.Error()}}
	}
	return PlanOf(p, pkcs12, split, revoked)
}

// UTCSeconds is t as acmemail shows times, in text and JSON: in UTC, in
// whole seconds (RFC 3339: 2026-12-06T05:00:00Z).
func UTCSeconds(t time.Time) time.Time {
	return t.UTC().Truncate(time.Second)
}
