package issuer

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// ErrSandboxAccount: the in-process sandbox ends with the command that
// started it, so an account there cannot be kept.
var ErrSandboxAccount = errors.New("the in-process sandbox ends with this command, so its accounts cannot be kept")

// AccountDirectory resolves the server an account is kept at (a directory
// URL, or castle or castle-staging) to its directory URL. Its errors are
// *SettingError of "server" whose Err begins with the value; "sandbox"
// wraps ErrSandboxAccount.
func AccountDirectory(server string) (string, error) {
	switch {
	case server == "sandbox":
		return "", &SettingError{Setting: "server", Err: fmt.Errorf("sandbox: %w", ErrSandboxAccount)}
	case NamedServers[server].URL != "":
		return NamedServers[server].URL, nil
	case strings.HasPrefix(server, "https://"):
		return server, nil
	case strings.HasPrefix(server, "http://"):
		return "", WithHint(&SettingError{Setting: "server", Err: fmt.Errorf("%s: ACME needs HTTPS", server)}, "use the https:// URL of the directory")
	}
	return "", &SettingError{Setting: "server", Err: fmt.Errorf("%q is neither a directory URL nor a known name (castle, castle-staging)", server)}
}

// NoAccountError: no account at the CA is saved in the state directory.
type NoAccountError struct{ Directory string }

func (e *NoAccountError) Error() string {
	return "no ACME account for " + e.Directory + " is saved here"
}

// PendingRolloverError: an account key rollover at the CA was interrupted;
// it must be finished (Accounts.Rollover) before the account is used.
type PendingRolloverError struct{ Directory string }

func (e *PendingRolloverError) Error() string {
	return "an account key rollover for " + e.Directory + " was interrupted; the CA may know only the new key"
}

// Accounts manages the ACME account of a state directory at one CA:
// registration, what the CA says of it, key rollover and deactivation.
type Accounts struct {
	Store     *keystore.Store
	Directory string // the CA's directory URL (see AccountDirectory)
	// CARoots is a PEM file of extra roots trusted for HTTPS, or "" (see
	// RootPool); it is read when the CA is first contacted.
	CARoots   string
	UserAgent string
	Logger    *slog.Logger // nil: no logs
	Progress  Reporter     // nil: quiet
}

// Account is the saved account at a CA and what a command learned of it.
type Account struct {
	Directory  string // the CA's directory URL
	URL        string // the account URL
	Status     string // what the CA says: valid, deactivated or revoked; "" when not asked
	Contact    []string
	KeyType    keystore.KeyType
	Thumbprint string // RFC 7638 thumbprint of the account key
	KeyPath    string // accounts/<CA>/account.key
	Created    time.Time
	// Registered: the account was created by this call.
	Registered bool
	// ArchivedKey is where a rollover moved the old key.
	ArchivedKey string
	// ArchivedTo is the folder a deactivation moved the account to.
	ArchivedTo string
	// PendingRollover: a key rollover was interrupted (Rollover finishes
	// it); the CA was not asked.
	PendingRollover bool
}

// Registration is what Register needs for a new account.
type Registration struct {
	// Contact are the account's contact addresses (mailto: is added).
	Contact []string
	// UpdateContact replaces the contact of an existing account with
	// Contact.
	UpdateContact bool
	// Terms is asked with the CA's terms of service (url) before a new
	// account is created; an error stops the registration. nil: agreed.
	Terms func(ctx context.Context, url string) error
	// EAB gives the external account binding for a new account, or nil.
	// It is asked before anything else is done for a new account.
	EAB func() (*acmemail.EAB, error)
}

func (a *Accounts) printf(format string, args ...any) { reporter(a.Progress).Printf(format, args...) }

// client is the ACME client of the CA signing with key for the account
// at url ("" for none yet).
func (a *Accounts) client(key crypto.Signer, url string) (*acmemail.Client, error) {
	pool, err := RootPool(a.CARoots)
	if err != nil {
		return nil, err
	}
	log := a.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &acmemail.Client{
		DirectoryURL: a.Directory,
		HTTPClient:   HTTPClient(pool),
		UserAgent:    a.UserAgent,
		AccountKey:   key,
		AccountURL:   url,
		Logger:       log.With("component", "acme"),
	}, nil
}

// saved loads the saved account: a *NoAccountError when there is none.
func (a *Accounts) saved() (*keystore.Account, error) {
	acct, err := a.Store.LoadAccount(a.Directory)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, &NoAccountError{Directory: a.Directory}
	}
	return acct, err
}

// pendingRollover returns a *PendingRolloverError when a rollover was
// interrupted: the CA may no longer accept the saved key.
func (a *Accounts) pendingRollover() error {
	if _, err := a.Store.PendingAccountKey(a.Directory); err == nil {
		return &PendingRolloverError{Directory: a.Directory}
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return err
	}
	return nil
}

// describe is the saved account acct as seen with client c.
func (a *Accounts) describe(ctx context.Context, c *acmemail.Client, acct *keystore.Account) *Account {
	kt, _ := keystore.KeyTypeOf(acct.Key.Public())
	thumb, _ := c.Thumbprint(ctx)
	dir, _ := a.Store.AccountDir(a.Directory)
	return &Account{Directory: a.Directory, URL: acct.URL, Contact: acct.Contact, KeyType: kt, Thumbprint: thumb,
		KeyPath: filepath.Join(dir, "account.key"), Created: acct.Created}
}

// Register creates the account at the CA, or finds the saved one at the
// CA (and replaces its contact if asked). A CA that requires an external
// account binding and got none fails with an error wrapping
// acmemail.ErrEABRequired.
func (a *Accounts) Register(ctx context.Context, reg Registration) (*Account, error) {
	if err := a.pendingRollover(); err != nil {
		return nil, err
	}
	contact := MailtoContacts(reg.Contact)
	if acct, err := a.Store.LoadAccount(a.Directory); err == nil {
		// Already registered: check it with the CA, update the contact.
		c, err := a.client(acct.Key, acct.URL)
		if err != nil {
			return nil, err
		}
		info, err := c.FindAccount(ctx)
		if err != nil {
			return nil, err
		}
		if reg.UpdateContact {
			if info, err = c.UpdateContact(ctx, contact); err != nil {
				return nil, err
			}
			acct.Contact = contact
			if err := a.Store.SaveAccount(acct); err != nil {
				return nil, err
			}
			a.printf("updated the contact of %s", acct.URL)
		} else {
			a.printf("already registered at %s as %s", a.Directory, acct.URL)
		}
		r := a.describe(ctx, c, acct)
		r.Status = info.Status
		return r, nil
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return nil, err
	}
	var eab *acmemail.EAB
	if reg.EAB != nil {
		var err error
		if eab, err = reg.EAB(); err != nil {
			return nil, err
		}
	}
	key, err := a.Store.AccountKey(a.Directory)
	if err != nil {
		return nil, err
	}
	var acct *keystore.Account
	c, err := a.client(key, "")
	if err != nil {
		return nil, err
	}
	c.Contact, c.EAB = contact, eab
	c.OnAccount = func(u string) error {
		acct = &keystore.Account{Directory: a.Directory, URL: u, Contact: contact, Key: key, Created: time.Now()}
		return a.Store.SaveAccount(acct)
	}
	dir, err := c.Directory(ctx)
	if err != nil {
		return nil, err
	}
	if dir.Meta != nil && dir.Meta.TermsOfService != "" && reg.Terms != nil {
		if err := reg.Terms(ctx, dir.Meta.TermsOfService); err != nil {
			return nil, err
		}
	}
	if _, err := c.EnsureAccount(ctx); err != nil {
		return nil, err
	}
	info, err := c.FindAccount(ctx)
	if err != nil {
		return nil, err
	}
	a.printf("registered the account %s at %s", acct.URL, a.Directory)
	r := a.describe(ctx, c, acct)
	r.Status, r.Registered = info.Status, true
	return r, nil
}

// Show returns the saved account and, unless offline or a rollover is
// pending, what the CA says of it (looked up with the saved key, without
// creating an account): its status and current contact.
func (a *Accounts) Show(ctx context.Context, offline bool) (*Account, error) {
	acct, err := a.saved()
	if err != nil {
		return nil, err
	}
	c, err := a.client(acct.Key, acct.URL)
	if err != nil {
		return nil, err
	}
	r := a.describe(ctx, c, acct)
	if _, err := a.Store.PendingAccountKey(a.Directory); err == nil {
		r.PendingRollover = true
	}
	if offline || r.PendingRollover {
		return r, nil
	}
	info, err := c.FindAccount(ctx)
	if err != nil {
		return nil, err
	}
	if info.URL != acct.URL {
		return nil, fmt.Errorf("the CA says the saved key belongs to %s, not to the saved account %s", info.URL, acct.URL)
	}
	r.Status = info.Status
	r.Contact = info.Contact // the CA's view is the current one
	return r, nil
}

// Rollover replaces the account key with a new key of type kt (RFC 8555
// key change). The new key is saved as account.key.next before the CA is
// asked; once the CA accepted it, the old key is archived and the new one
// becomes account.key. A rollover that was interrupted is finished with
// its saved new key (kt is then not used): the CA is asked which key it
// knows.
func (a *Accounts) Rollover(ctx context.Context, kt keystore.KeyType) (*Account, error) {
	if kt == keystore.KeyEd25519 {
		return nil, Usagef("an account key cannot be %s", kt)
	}
	acct, err := a.saved()
	if err != nil {
		return nil, err
	}
	newKey, resumed, err := a.Store.NextAccountKey(a.Directory, kt)
	if err != nil {
		return nil, err
	}
	done := false
	if resumed {
		// Did the interrupted rollover reach the CA? Ask with the new key.
		probe, err := a.client(newKey, "")
		if err != nil {
			return nil, err
		}
		info, err := probe.FindAccount(ctx)
		var pe *acmemail.ProblemError
		switch {
		case err == nil && info.URL == acct.URL:
			a.printf("the CA already has the new key from an interrupted rollover; finishing it")
			done = true
		case err == nil:
			return nil, fmt.Errorf("the pending new key belongs to another account (%s) at the CA; not using it", info.URL)
		case errors.As(err, &pe) && pe.ShortType() == "accountDoesNotExist":
			a.printf("resuming an interrupted rollover with its new key")
		default:
			return nil, err
		}
	}
	if !done {
		c, err := a.client(acct.Key, acct.URL)
		if err != nil {
			return nil, err
		}
		if err := c.RolloverKey(ctx, newKey); err != nil {
			var pe *acmemail.ProblemError
			if errors.As(err, &pe) {
				// The CA refused: the old key stays; keep the new one in the archive.
				if _, aerr := a.Store.AbandonAccountKey(a.Directory); aerr != nil {
					return nil, errors.Join(err, aerr)
				}
				return nil, err
			}
			return nil, WithHint(err, "the outcome is unknown; run the same command again to finish the rollover")
		}
	}
	archived, err := a.Store.CommitAccountKey(a.Directory)
	if err != nil {
		return nil, WithHint(err, "the CA has the new key, which is in account.key.next; run the same command again to finish")
	}
	acct.Key = newKey
	c, err := a.client(newKey, acct.URL)
	if err != nil {
		return nil, err
	}
	info, err := c.FindAccount(ctx)
	if err != nil {
		return nil, fmt.Errorf("the key was changed, but the CA does not find the account with the new key: %w", err)
	}
	a.printf("replaced the key of %s; the old key is archived at %s", acct.URL, archived)
	r := a.describe(ctx, c, acct)
	r.Status, r.ArchivedKey = info.Status, archived
	return r, nil
}

// Deactivate deactivates the account at the CA (RFC 8555 §7.3.6), which
// cannot be undone, and moves the saved account to the archive, so that
// the next registration creates a new one. confirm, if not nil, is asked
// first with the account's URL; an error from it leaves the account as
// it is.
func (a *Accounts) Deactivate(ctx context.Context, confirm func(accountURL string) error) (*Account, error) {
	acct, err := a.saved()
	if err != nil {
		return nil, err
	}
	if err := a.pendingRollover(); err != nil {
		return nil, err
	}
	if confirm != nil {
		if err := confirm(acct.URL); err != nil {
			return nil, err
		}
	}
	c, err := a.client(acct.Key, acct.URL)
	if err != nil {
		return nil, err
	}
	info, err := c.Deactivate(ctx)
	if err != nil {
		return nil, err
	}
	r := a.describe(ctx, c, acct)
	arch, err := a.Store.RetireAccount(a.Directory)
	if err != nil {
		return nil, WithHint(fmt.Errorf("the account is deactivated at the CA, but moving it to the archive failed: %w", err),
			"move accounts/<CA>/account.json away by hand before the next obtain")
	}
	a.printf("deactivated the account %s; its key and record are archived at %s", acct.URL, arch)
	r.Status, r.ArchivedTo = info.Status, arch
	return r, nil
}
