package acmemail

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/mholt/acmez/v3/acme"
)

// EAB is an external account binding credential (RFC 8555 §7.3.4): a key
// identifier and an HMAC key the CA handed out outside ACME, to tie a new
// ACME account to an existing customer account.
type EAB struct {
	KeyID   string
	HMACKey []byte // decoded
}

// ErrEABRequired is returned (wrapped) when the CA's directory says
// meta.externalAccountRequired and no [EAB] was given.
var ErrEABRequired = errors.New("the CA requires an external account binding (EAB)")

// ParseEABKey decodes an EAB HMAC key as CAs hand it out: base64url
// (RFC 8555 §7.3.4 recommends it), with or without padding; standard
// base64 is accepted too, as some CAs' web pages show it. Surrounding
// whitespace is ignored. The error never contains the key.
func ParseEABKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("the EAB HMAC key is empty")
	}
	trimmed := strings.TrimRight(s, "=")
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding} {
		if key, err := enc.DecodeString(trimmed); err == nil {
			if len(key) < 16 {
				return nil, fmt.Errorf("the EAB HMAC key is only %d bytes long; check that you copied all of it", len(key))
			}
			return key, nil
		}
	}
	return nil, errors.New("the EAB HMAC key is not base64url (or base64) text")
}

// AccountInfo is what the CA says about an account.
type AccountInfo struct {
	URL     string   // the account URL (kid)
	Status  string   // valid, deactivated or revoked
	Contact []string // mailto: URLs
	Orders  string   // the URL of the account's orders list, if the CA gave one
}

func infoOf(a acme.Account, url string) AccountInfo {
	if a.Location != "" {
		url = a.Location
	}
	return AccountInfo{URL: url, Status: a.Status, Contact: a.Contact, Orders: a.Orders}
}

// newAccount registers the account key; it is EnsureAccount's request.
func (c *Client) newAccount(ctx context.Context) (acme.Account, error) {
	dir, err := c.Directory(ctx)
	if err != nil {
		return acme.Account{}, err
	}
	acct := c.account
	acct.Contact = c.Contact
	acct.TermsOfServiceAgreed = true
	if c.EAB != nil {
		if c.EAB.KeyID == "" || len(c.EAB.HMACKey) == 0 {
			return acme.Account{}, errors.New("register the ACME account: the EAB needs a key identifier and an HMAC key")
		}
		eab := acme.EAB{KeyID: c.EAB.KeyID, MACKey: base64.RawURLEncoding.EncodeToString(c.EAB.HMACKey)}
		if err := acct.SetExternalAccountBinding(ctx, c.acme, eab); err != nil {
			return acme.Account{}, fmt.Errorf("register the ACME account: %w", err)
		}
	} else if dir.Meta != nil && dir.Meta.ExternalAccountRequired {
		// Ask before the request: the CA would refuse, and the user needs
		// to know what to get from the CA.
		return acme.Account{}, fmt.Errorf("register the ACME account at %s: %w", c.DirectoryURL, ErrEABRequired)
	}
	got, err := c.acme.NewAccount(ctx, acct)
	if err != nil {
		return acme.Account{}, fromACME("register the ACME account", err)
	}
	return got, nil
}

// FindAccount asks the CA for the account of the account key without
// creating one (newAccount with onlyReturnExisting, RFC 8555 §7.3.1). A
// key the CA does not know gives a *ProblemError of type
// accountDoesNotExist.
func (c *Client) FindAccount(ctx context.Context) (AccountInfo, error) {
	if _, err := c.Directory(ctx); err != nil {
		return AccountInfo{}, err
	}
	got, err := c.acme.GetAccount(ctx, acme.Account{PrivateKey: c.AccountKey})
	if err != nil {
		return AccountInfo{}, fromACME("look up the ACME account", err)
	}
	if got.Location == "" {
		return AccountInfo{}, errors.New("look up the ACME account: the CA sent no account URL (Location header)")
	}
	return infoOf(got, ""), nil
}

// UpdateContact replaces the account's contact URLs.
func (c *Client) UpdateContact(ctx context.Context, contact []string) (AccountInfo, error) {
	url, err := c.knownAccount(ctx, "update the ACME account")
	if err != nil {
		return AccountInfo{}, err
	}
	if contact == nil {
		contact = []string{}
	}
	got, err := c.acme.UpdateAccount(ctx, acme.Account{Contact: contact, Location: url, PrivateKey: c.AccountKey})
	if err != nil {
		return AccountInfo{}, fromACME("update the ACME account", err)
	}
	return infoOf(got, url), nil
}

// Deactivate deactivates the account (RFC 8555 §7.3.6). The CA refuses
// every later request signed by its key; this cannot be undone.
func (c *Client) Deactivate(ctx context.Context) (AccountInfo, error) {
	url, err := c.knownAccount(ctx, "deactivate the ACME account")
	if err != nil {
		return AccountInfo{}, err
	}
	got, err := c.acme.UpdateAccount(ctx, acme.Account{Status: acme.StatusDeactivated, Location: url, PrivateKey: c.AccountKey})
	if err != nil {
		return AccountInfo{}, fromACME("deactivate the ACME account", err)
	}
	info := infoOf(got, url)
	if info.Status != acme.StatusDeactivated {
		return info, fmt.Errorf("deactivate the ACME account: the CA answered with status %q", info.Status)
	}
	return info, nil
}

// RolloverKey replaces the account key with newKey at the CA (keyChange,
// RFC 8555 §7.3.5): the outer request is signed by the current key, the
// inner one by newKey. newKey must already be stored durably: if the
// process dies after the CA accepted, only newKey opens the account. On
// success the client signs with newKey from then on.
func (c *Client) RolloverKey(ctx context.Context, newKey crypto.Signer) error {
	url, err := c.knownAccount(ctx, "change the account key")
	if err != nil {
		return err
	}
	dir, err := c.Directory(ctx)
	if err != nil {
		return err
	}
	if dir.KeyChange == "" {
		return errors.New("change the account key: the CA's directory has no keyChange URL")
	}
	acct := acme.Account{Location: url, PrivateKey: c.AccountKey}
	if _, err := c.acme.AccountKeyRollover(ctx, acct, newKey); err != nil {
		return fromACME("change the account key", err)
	}
	thumb, err := (&acme.Account{PrivateKey: newKey}).Thumbprint()
	if err != nil {
		return err
	}
	c.AccountKey = newKey
	c.account.PrivateKey = newKey
	c.thumb = thumb
	return nil
}

// knownAccount returns the account URL, looking it up (never creating an
// account) when it is not known yet.
func (c *Client) knownAccount(ctx context.Context, op string) (string, error) {
	if err := c.init(ctx); err != nil {
		return "", err
	}
	if c.account.Location != "" {
		if _, err := c.Directory(ctx); err != nil {
			return "", err
		}
		return c.account.Location, nil
	}
	info, err := c.FindAccount(ctx)
	if err != nil {
		return "", err
	}
	c.account.Location = info.URL
	return info.URL, nil
}
