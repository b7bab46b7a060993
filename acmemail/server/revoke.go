package server

import (
	"context"
	"errors"

	"github.com/acmemail/acmemail/acmemail/issuer"
)

// Revoke asks the CA that issued host's managed certificate to revoke it
// (reason: a CRLReason code), signed with the certificate's own key, and
// records the revocation in its renewal state, as acmemail revoke does
// for an address (issuer.Issuer.Revoke): renew then leaves the host alone
// until renew --force, and list and show report it revoked. The result is
// set also when the revocation failed.
func (m *Manager) Revoke(ctx context.Context, host string, reason int, o issuer.RevokeOptions) (*issuer.RevokeResult, error) {
	cur, err := m.Load(host)
	if err != nil {
		return nil, err
	}
	if cur.Profile.Server == "sandbox" {
		return nil, errors.New("the certificate of " + cur.Meta.Email + " came from an in-process sandbox, which no longer runs; there is nothing to revoke it at")
	}
	rs, err := issuer.Revocations(m.Store.Servers(), cur.Meta.Email, "")
	if err != nil {
		return nil, err
	}
	if o.Roots == nil {
		if o.Roots, err = issuer.RootPool(cur.Profile.CARoots); err != nil {
			return nil, err
		}
	}
	is := m.Hooks
	if is == nil {
		is = &issuer.Issuer{Store: m.Store}
	}
	o.Reason = reason
	res, err := is.Revoke(ctx, rs, o)
	if res != nil {
		res.Email = cur.Meta.Email
		for i := range res.Certificates {
			res.Certificates[i].Usage = ""
		}
	}
	return res, err
}
