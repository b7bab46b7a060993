package issuer

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// RenewalState is renewal.json: the renewal decision for the installed
// certificate.
type RenewalState struct {
	Serial string `json:"serial"` // the certificate it is about
	// Window is the CA's suggested window (RFC 9773); nil when the CA
	// offers none or its answer was unusable.
	Window *acmemail.RenewalInfo `json:"window,omitempty"`
	// Chosen is the uniformly random time picked in Window, kept until
	// the CA suggests another window.
	Chosen time.Time `json:"chosen,omitempty"`
	// NoRenewalInfo: the CA's directory has no renewalInfo (checked at
	// Checked; asked again after NextCheck).
	NoRenewalInfo bool      `json:"no_renewal_info,omitempty"`
	NextCheck     time.Time `json:"next_check,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	// Revoked is set by acmemail revoke: renew leaves the certificate
	// alone unless forced.
	Revoked          *time.Time `json:"revoked,omitempty"`
	RevocationReason string     `json:"revocation_reason,omitempty"`
}

func LoadRenewalState(store *keystore.Store, email, serial string) RenewalState {
	data, err := store.ReadRenewalState(email)
	if err != nil {
		return RenewalState{Serial: serial}
	}
	var st RenewalState
	if json.Unmarshal(data, &st) != nil || st.Serial != serial {
		return RenewalState{Serial: serial}
	}
	return st
}

func SaveRenewalState(store *keystore.Store, email string, st RenewalState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return store.WriteRenewalState(email, append(data, '\n'))
}

// saveFetchedWindow records the CA's window fetched right after an install.
// Installing removed the previous renewal state durably, and a missing one
// is fetched again, so this write need not survive a power failure
// (keystore.Store.UpdateRenewalState).
func saveFetchedWindow(store *keystore.Store, email string, st RenewalState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return store.UpdateRenewalState(email, append(data, '\n'))
}

// adopt takes a newly fetched window: a new window gets a new random time;
// the same window keeps the time chosen before.
func (st *RenewalState) adopt(ri *acmemail.RenewalInfo) {
	if st.Window == nil || st.Chosen.IsZero() || !st.Window.Start.Equal(ri.Start) || !st.Window.End.Equal(ri.End) {
		st.Chosen = ri.Pick()
	}
	st.Window, st.NoRenewalInfo, st.NextCheck, st.LastError = ri, false, ri.NextCheck, ""
}

// renewAt is when the certificate is due according to st (offline): the
// time chosen in the CA's window, else a third of the lifetime before
// expiry.
func (st *RenewalState) RenewAt(leaf *x509.Certificate) (time.Time, string) {
	if st.Window != nil && !st.Chosen.IsZero() {
		return st.Chosen, "in the CA's renewal window"
	}
	return acmemail.FallbackRenewalTime(leaf), "a third of its lifetime before expiry"
}

// RefreshRenewalInfo is refreshRenewalInfo, for the server certificates
// (package server), which keep the same renewal state.
func RefreshRenewalInfo(ctx context.Context, client *acmemail.Client, store *keystore.Store, id string, leaf *x509.Certificate, st *RenewalState, now time.Time) {
	refreshRenewalInfo(ctx, client, store, id, leaf, st, now)
}

// refreshRenewalInfo asks the CA for the certificate's window when the
// recorded answer is stale (RFC 9773: after Retry-After; never once the
// certificate has expired), and records the result.
func refreshRenewalInfo(ctx context.Context, client *acmemail.Client, store *keystore.Store, email string, leaf *x509.Certificate, st *RenewalState, now time.Time) {
	if !now.Before(leaf.NotAfter) || (!st.NextCheck.IsZero() && now.Before(st.NextCheck)) {
		return
	}
	ri, err := client.GetRenewalInfo(ctx, leaf)
	switch {
	case err == nil:
		st.adopt(ri)
	case errors.Is(err, acmemail.ErrNoRenewalInfo):
		st.Window, st.Chosen, st.NoRenewalInfo, st.LastError = nil, time.Time{}, true, ""
		st.NextCheck = now.Add(acmemail.MaxRenewalInfoRetry)
	case errors.Is(err, acmemail.ErrInvalidWindow):
		// Treated as no answer: decide without the CA until asked again.
		st.Window, st.Chosen, st.LastError = nil, time.Time{}, err.Error()
		st.NextCheck = ri.NextCheck
	default:
		// Keep any earlier window; ask again after the long-term wait.
		st.LastError = err.Error()
		st.NextCheck = now.Add(acmemail.DefaultRenewalInfoRetry)
	}
	if err := SaveRenewalState(store, email, *st); err != nil {
		st.LastError = err.Error()
	}
}
