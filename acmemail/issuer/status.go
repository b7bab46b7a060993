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

// Status is what the state directory tells about a managed certificate,
// offline: list and show print it (--json as is).
type Status struct {
	Email            string      `json:"email"`
	Serial           string      `json:"serial"`
	NotBefore        time.Time   `json:"not_before"`
	NotAfter         time.Time   `json:"not_after"`
	KeyType          string      `json:"key_type"`
	Usage            string      `json:"usage"`
	CA               string      `json:"ca"`
	Server           string      `json:"server,omitempty"`
	RenewalDue       time.Time   `json:"renewal_due"`
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

// State is "revoked", "expired" or "valid".
func (s *Status) State() string {
	switch {
	case s.Revoked:
		return "revoked"
	case s.Expired:
		return "expired"
	}
	return "valid"
}

// StatusOf is the status of the certificate of email at now: its
// validity, when it is due for renewal (from its renewal state), its
// revocation, an interrupted order, its files, the encryption certificate
// of a split pair and the renewal plan. An address with no certificate is
// ErrNotManaged.
func StatusOf(store *keystore.Store, email string, now time.Time) (Status, error) {
	s, err := statusOf(store, email, now)
	if errors.Is(err, keystore.ErrNotFound) {
		return Status{}, fmt.Errorf("%s: %w", email, ErrNotManaged)
	}
	return s, err
}

// Statuses is the status of every managed certificate; one that cannot
// be read is left out, its error in skipped.
func Statuses(store *keystore.Store, now time.Time) (list []Status, skipped []error, err error) {
	emails, err := store.ListCertificates()
	if err != nil {
		return nil, nil, err
	}
	list = []Status{}
	for _, e := range emails {
		s, err := statusOf(store, e, now)
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		list = append(list, s)
	}
	return list, skipped, nil
}

func statusOf(store *keystore.Store, email string, now time.Time) (Status, error) {
	_, chain, meta, paths, err := store.LoadCertificate(email)
	if err != nil {
		return Status{}, err
	}
	leaf := chain[0]
	st := LoadRenewalState(store, email, meta.Serial)
	due, _ := st.RenewAt(leaf)
	s := Status{
		Email: meta.Email, Serial: meta.Serial, NotBefore: meta.NotBefore.UTC(), NotAfter: meta.NotAfter.UTC(),
		KeyType: string(meta.KeyType), Usage: meta.Usage, CA: meta.Directory, RenewalDue: due.UTC(), RenewalBasis: "lifetime",
		Expired: !now.Before(leaf.NotAfter), Revoked: st.Revoked != nil, RevocationReason: st.RevocationReason,
		Files: StatusFiles{Dir: paths.Dir, Certificate: paths.Leaf, Chain: paths.Chain, Key: paths.Key, Meta: paths.Meta},
	}
	s.Server = recordedServer(meta)
	if meta.Also != "" {
		s.Also = strings.Split(meta.Also, ",")
	}
	if enc, err := store.Slot(EncryptSlot); err == nil {
		if e, err := statusOf(enc, email, now); err == nil {
			e.Renew = nil
			s.Encryption = &e
		}
	}
	var revoked *string
	if st.Revoked != nil {
		revoked = &st.RevocationReason
	}
	s.Renew = PlanOfMeta(meta, paths.PKCS12, s.Encryption != nil, revoked)
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
	if data, err := store.ReadOrderState(email); err == nil {
		var pending acmemail.OrderState
		if json.Unmarshal(data, &pending) == nil {
			s.PendingOrder = pending.OrderURL
		}
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
