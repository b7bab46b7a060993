package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// lifecycleFlags are the flags obtain and renew share: the identity lock
// and the deploy hook.
type lifecycleFlags struct {
	waitLock   bool
	deployHook string
}

func (l *lifecycleFlags) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&l.waitLock, "wait-lock", false, "if another acmemail run is working on the same address, wait for it (default: exit with status 8)")
	f.StringVar(&l.deployHook, "deploy-hook", "", "shell command run (sh -c; cmd.exe /c on Windows) after each issuance or renewal (once per certificate of a --split pair), with ACMEMAIL_EMAIL, ACMEMAIL_CERT_USAGE, ACMEMAIL_P12_PATH, ACMEMAIL_CERT_PATH, ACMEMAIL_CHAIN_PATH, ACMEMAIL_KEY_PATH, ACMEMAIL_NOT_AFTER, ACMEMAIL_SERIAL set")
}

// lockedError marks a run refused because another holds the identity's lock.
type lockedError struct{ err error }

func (e *lockedError) Error() string { return e.err.Error() }
func (e *lockedError) Unwrap() error { return e.err }

// lock takes the identity's run lock for the rest of the session: two runs
// for one address never interleave (orders, replies, key and install).
func (s *session) lock(ctx context.Context, wait bool) error {
	unlock, err := s.store.LockIdentity(ctx, s.id.email, false)
	if errors.Is(err, keystore.ErrLocked) && wait {
		s.prog.printf("another acmemail run is working on %s; waiting for it to finish", s.id.email)
		unlock, err = s.store.LockIdentity(ctx, s.id.email, true)
	}
	if errors.Is(err, keystore.ErrLocked) {
		return &lockedError{withHint(fmt.Errorf("another acmemail run is working on %s", s.id.email),
			"wait for it to finish, or run again with --wait-lock to wait for it")}
	}
	if err != nil {
		return err
	}
	s.closers = append(s.closers, unlock)
	return nil
}

// settings records how this identity was obtained (no secrets), for renew.
func (s *session) settings() *keystore.Settings {
	id := s.id
	st := &keystore.Settings{
		Server: id.server, IMAP: id.imapURL, SMTP: id.smtpURL, User: id.user, Mailbox: id.mailbox,
		P12Profile: string(id.profile), Join: id.join, DNSResolver: id.dnsResolver,
		TrustAuthservID: id.trustAuthserv, SMIMERoots: id.smimeRoots, Insecure: id.insecure,
		SkipMailAuth: id.skipMailAuth, Contact: id.contact, DeployHook: id.deployHook,
		SMTPUser: id.cred.smtpUser, AuthMech: id.cred.authMech,
	}
	if id.smimeRoots != "" {
		if abs, err := filepath.Abs(id.smimeRoots); err == nil {
			st.SMIMERoots = abs
		}
	}
	if id.mailWait > 0 {
		st.MailWait = id.mailWait.String()
	}
	if id.replySettle >= 0 {
		st.ReplySettle = id.replySettle.String()
	}
	id.recordKeySettings(st)
	id.recordLogin(st)
	return st
}

// testHookOrderState, when set (by tests only), sees every order state
// after saveOrderState recorded it (as durably as resuming needs).
var testHookOrderState func(acmemail.OrderState)

// orderState returns the state of the identity's interrupted order, if
// one was recorded, for acmemail to continue it.
func (s *session) orderState() *acmemail.OrderState {
	data, err := s.store.ReadOrderState(s.id.email)
	if err != nil {
		if !errors.Is(err, keystore.ErrNotFound) {
			s.prog.printf("warning: %v; starting a new order", err)
		}
		return nil
	}
	var st acmemail.OrderState
	if err := json.Unmarshal(data, &st); err != nil {
		s.prog.printf("warning: the recorded state of the interrupted order is unreadable (%v); starting a new order", err)
		return nil
	}
	onDisk := st
	s.orderOnDisk = &onDisk
	return &st
}

// saveOrderState persists the order's state as it changes, as durably as
// resuming needs it. What an interrupted run needs to continue the order
// is the order itself (CA, URL, addresses, the certificate it replaces):
// that is written durably (fsync of the file and of its directory) the
// first time, before the authorizations are fetched, so that the CA's
// challenge mail can never arrive for an order that is not on disk.
// Everything else the state records is read again from the CA when the
// order is continued (authorizations, whether a challenge was POSTed or
// the order finalized), and whether a challenge was answered is decided
// by the reply records, which are made durable before any reply is sent
// (the reply guard). So later saves are lighter: a reply sent is still
// recorded, complete and atomically, but without the directory fsync (a
// power failure may bring back the state before it; a killed process
// loses nothing); a change of nothing else is kept in memory only.
func (s *session) saveOrderState(st acmemail.OrderState) error {
	prev := s.orderOnDisk
	write := s.store.WriteOrderState
	switch {
	case prev == nil || !sameOrder(*prev, st):
	case repliesSent(st) != repliesSent(*prev):
		write = s.store.UpdateOrderState
	default:
		write = nil
	}
	if write != nil {
		data, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		if err := write(s.id.email, append(data, '\n')); err != nil {
			return err
		}
		onDisk := st
		onDisk.Authorizations = append([]acmemail.AuthzState(nil), st.Authorizations...)
		s.orderOnDisk = &onDisk
	}
	if testHookOrderState != nil {
		testHookOrderState(st)
	}
	return nil
}

// sameOrder reports whether a and b record the same order: what resuming
// it needs.
func sameOrder(a, b acmemail.OrderState) bool {
	if a.Directory != b.Directory || a.OrderURL != b.OrderURL || a.Replaces != b.Replaces ||
		!a.Created.Equal(b.Created) || len(a.Emails) != len(b.Emails) {
		return false
	}
	for i := range a.Emails {
		if a.Emails[i] != b.Emails[i] {
			return false
		}
	}
	return true
}

// repliesSent counts the authorizations of st whose reply was sent.
func repliesSent(st acmemail.OrderState) int {
	n := 0
	for _, a := range st.Authorizations {
		if a.ReplySent {
			n++
		}
	}
	return n
}

// renewalState is renewal.json: the renewal decision for the installed
// certificate.
type renewalState struct {
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

func loadRenewalState(store *keystore.Store, email, serial string) renewalState {
	data, err := store.ReadRenewalState(email)
	if err != nil {
		return renewalState{Serial: serial}
	}
	var st renewalState
	if json.Unmarshal(data, &st) != nil || st.Serial != serial {
		return renewalState{Serial: serial}
	}
	return st
}

func saveRenewalState(store *keystore.Store, email string, st renewalState) error {
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
func saveFetchedWindow(store *keystore.Store, email string, st renewalState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return store.UpdateRenewalState(email, append(data, '\n'))
}

// adopt takes a newly fetched window: a new window gets a new random time;
// the same window keeps the time chosen before.
func (st *renewalState) adopt(ri *acmemail.RenewalInfo) {
	if st.Window == nil || st.Chosen.IsZero() || !st.Window.Start.Equal(ri.Start) || !st.Window.End.Equal(ri.End) {
		st.Chosen = ri.Pick()
	}
	st.Window, st.NoRenewalInfo, st.NextCheck, st.LastError = ri, false, ri.NextCheck, ""
}

// renewAt is when the certificate is due according to st (offline): the
// time chosen in the CA's window, else a third of the lifetime before
// expiry.
func (st *renewalState) renewAt(leaf *x509.Certificate) (time.Time, string) {
	if st.Window != nil && !st.Chosen.IsZero() {
		return st.Chosen, "in the CA's renewal window"
	}
	return acmemail.FallbackRenewalTime(leaf), "a third of its lifetime before expiry"
}

// refreshRenewalInfo asks the CA for the certificate's window when the
// recorded answer is stale (RFC 9773: after Retry-After; never once the
// certificate has expired), and records the result.
func refreshRenewalInfo(ctx context.Context, client *acmemail.Client, store *keystore.Store, email string, leaf *x509.Certificate, st *renewalState, now time.Time) {
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
	if err := saveRenewalState(store, email, *st); err != nil {
		st.LastError = err.Error()
	}
}

// hookRunner runs deploy hooks one at a time (renew runs identities
// concurrently; a hook that reloads a service should not race itself).
type hookRunner struct {
	mu     sync.Mutex
	stderr io.Writer
}

// hookSecretVar reports whether an ACMEMAIL_ variable may hold a secret,
// which a hook must never see.
func hookSecretVar(name string) bool {
	up := strings.ToUpper(name)
	if !strings.HasPrefix(up, "ACMEMAIL_") {
		return false
	}
	for _, w := range []string{"PASSWORD", "SECRET", "HMAC", "TOKEN", "KEY"} {
		if strings.Contains(up, w) {
			return true
		}
	}
	return false
}

// hookEnv is the process environment without acmemail's secrets, plus the
// variables describing the new certificate.
func hookEnv(environ []string, res *issued, p12Path string) []string {
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if hookSecretVar(name) || strings.HasPrefix(name, "ACMEMAIL_") && hookVar(name) {
			continue
		}
		env = append(env, kv)
	}
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	return append(env,
		"ACMEMAIL_EMAIL="+res.meta.Email,
		"ACMEMAIL_P12_PATH="+abs(p12Path),
		"ACMEMAIL_CERT_PATH="+abs(res.paths.Leaf),
		"ACMEMAIL_CHAIN_PATH="+abs(res.paths.Chain),
		"ACMEMAIL_KEY_PATH="+abs(res.paths.Key),
		"ACMEMAIL_NOT_AFTER="+res.meta.NotAfter.UTC().Format(time.RFC3339),
		"ACMEMAIL_SERIAL="+res.meta.Serial,
		// Not ACMEMAIL_USAGE: that sets --usage of an acmemail the hook runs.
		"ACMEMAIL_CERT_USAGE="+res.meta.Usage,
	)
}

func hookVar(name string) bool {
	switch name {
	case "ACMEMAIL_EMAIL", "ACMEMAIL_P12_PATH", "ACMEMAIL_CERT_PATH", "ACMEMAIL_CHAIN_PATH", "ACMEMAIL_KEY_PATH", "ACMEMAIL_NOT_AFTER", "ACMEMAIL_SERIAL", "ACMEMAIL_CERT_USAGE":
		return true
	}
	return false
}

// hookError says a deploy hook failed after the certificate was saved.
type hookError struct{ err error }

func (e *hookError) Error() string { return e.err.Error() }
func (e *hookError) Unwrap() error { return e.err }

// run runs the deploy hook cmd for res with the shell. Its output goes to
// stderr (stdout is acmemail's result). A failure is returned as a
// *hookError that says the certificate is saved.
func (h *hookRunner) run(ctx context.Context, cmdline string, res *issued, p12Path string) error {
	if cmdline == "" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var out bytes.Buffer
	c := shellCommand(ctx, cmdline)
	c.Env = hookEnv(os.Environ(), res, p12Path)
	c.Stdin = nil
	c.Stdout, c.Stderr = &out, &out
	c.WaitDelay = 5 * time.Second
	err := c.Run()
	if out.Len() > 0 {
		for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			fmt.Fprintf(h.stderr, "acmemail: deploy hook (%s%s): %s\n", res.meta.Email, hookLabel(res, ", "), line)
		}
	}
	if err != nil {
		return &hookError{withHint(fmt.Errorf("the deploy hook for %s failed: %w (the new certificate is saved in %s)", hookSubject(res), err, res.paths.Dir),
			"fix the hook and run it by hand, or run the command again with --force to renew once more")}
	}
	return nil
}

// hookLabel names which certificate of an address a hook ran for, after
// sep: the signing or the encryption one (obtain --split, --usage); ""
// for a certificate for both.
func hookLabel(res *issued, sep string) string {
	if w := usageNoun(res.meta.Usage); w != "" {
		return sep + w + " certificate"
	}
	return ""
}

// hookSubject is what a hook ran for: the address, or which of its
// certificates.
func hookSubject(res *issued) string {
	if w := usageNoun(res.meta.Usage); w != "" {
		return "the " + w + " certificate of " + res.meta.Email
	}
	return res.meta.Email
}

// usageNoun is "signing" or "encryption" for a certificate of one usage
// (the two of an obtain --split pair), "" for one for both.
func usageNoun(usage string) string {
	switch usage {
	case "sign":
		return "signing"
	case "encrypt":
		return "encryption"
	}
	return ""
}
