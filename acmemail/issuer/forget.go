package issuer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/acmemail/acmemail/keystore"
)

// Forgotten is what Forget did (forget --json prints it).
type Forgotten struct {
	Email string `json:"email"`
	// State is what list showed: valid, expired, revoked, pending or
	// broken.
	State  string   `json:"state"`
	Serial string   `json:"serial,omitempty"`
	Also   []string `json:"also,omitempty"`  // the certificate's other addresses, forgotten with it
	Split  bool     `json:"split,omitempty"` // a --split pair: both certificates
	// Archived is the directory that now holds everything the state
	// directory kept for the address, as it was (certificates/<email>/
	// renamed to forgotten/<email>-<time>/), "" when nothing but lock
	// files of a failed run was left.
	Archived string `json:"archived"`
	// Keys are the private keys kept in Archived, relative to it: the
	// current one, those of earlier certificates (archive/), a pending
	// key, the encryption certificate's (encrypt/).
	Keys []string `json:"keys"`
	// MailServers is the record of the mail servers found for the
	// address, moved into Archived ("" when there was none), so that the
	// next obtain looks them up again.
	MailServers string `json:"mail_servers,omitempty"`
	// Exported is the PKCS#12 file written first (forget --export).
	Exported string `json:"exported,omitempty"`
}

// ForgetOptions are the choices of Forget.
type ForgetOptions struct {
	Now time.Time // the time in the archive's name; zero: now
	// Before, if set, is called with the address's status while Forget
	// holds the address's lock, before anything is changed: to ask for
	// confirmation, to export the keys. An error stops Forget with nothing
	// changed.
	Before func(Status) error
}

// Forget stops managing email, whatever its state (a certificate, a split
// pair, a first obtain that failed or was interrupted, damaged files):
// under the address's run lock (another run holding it is a
// *LockedError), its certificate directory is moved, whole and in one
// rename, to forgotten/<email>-<time>/ in the state directory (see
// keystore.Store.Forget): no key is deleted, as old mail needs them. The
// mail servers remembered for it go there too. Afterwards list does not
// show it, renew does not renew it, and obtain starts afresh (the ACME
// account, shared by the addresses at a CA, and the records of answered
// challenges stay). An address that is only one more address (--also) of
// another's certificate is an *AlsoAddressError; one with nothing,
// ErrNotManaged.
func Forget(ctx context.Context, store *keystore.Store, email string, o ForgetOptions) (*Forgotten, error) {
	norm, err := keystore.NormalizeEmail(email)
	if err != nil {
		return nil, Usagef("%w", err)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	// Before the lock, which would make a directory for an address that
	// has none.
	if _, err := managedStatus(store, norm, o.Now); err != nil {
		return nil, err
	}
	unlock, err := store.LockIdentity(ctx, norm, false)
	if errors.Is(err, keystore.ErrLocked) {
		return nil, &LockedError{WithHint(fmt.Errorf("another acmemail run is working on %s; nothing was forgotten", norm),
			"wait for it to finish, then run forget again")}
	}
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Again under the lock: a run that just ended may have changed it.
	st, err := managedStatus(store, norm, o.Now)
	if err != nil {
		return nil, err
	}
	if o.Before != nil {
		if err := o.Before(st); err != nil {
			return nil, err
		}
	}
	res := &Forgotten{Email: norm, State: st.State, Serial: st.Serial, Also: st.Also, Split: st.Encryption != nil, Keys: []string{}}
	f, err := store.Forget(norm, o.Now)
	res.Archived = f.Dir
	if f.Keys != nil {
		res.Keys = f.Keys
	}
	if err != nil {
		return res, err
	}
	remembered, err := RememberedPath(store.Dir, norm)
	if err != nil || f.Dir == "" {
		return res, err
	}
	dst := filepath.Join(f.Dir, "mail-servers.json")
	switch err := os.Rename(remembered, dst); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return res, fmt.Errorf("%s is forgotten (kept in %s), but the record of its mail servers could not be moved there: %w", norm, f.Dir, err)
	default:
		res.MailServers = dst
	}
	return res, nil
}

// managedStatus is email's status, or why there is nothing to forget.
func managedStatus(store *keystore.Store, norm string, now time.Time) (Status, error) {
	st, err := StatusOf(store, norm, now)
	if errors.Is(err, ErrNotManaged) {
		if primary := certificateHolding(store, norm); primary != "" {
			return st, &AlsoAddressError{Email: norm, Primary: primary, Err: err}
		}
	}
	return st, err
}
