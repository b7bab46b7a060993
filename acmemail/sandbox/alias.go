package sandbox

import (
	"fmt"
	"strings"
	"time"
)

// AddAlias makes alias a second address of the existing user: mail to it
// is delivered into the user's INBOX, the user may submit mail with it as
// From (signed with the alias's domain key), and the CA accepts orders
// for it. This is how most providers let one mailbox hold several
// addresses, and what a certificate for several addresses of one person
// usually meets.
func (w *World) AddAlias(alias, user string) error {
	a, prob := canonicalAddress(alias)
	if prob != nil {
		return fmt.Errorf("add alias: %s", prob.Detail)
	}
	_, domain := splitAddress(a)
	if strings.EqualFold(domain, caDomain) {
		return fmt.Errorf("add alias %s: %s is the CA's own domain", a, caDomain)
	}
	if err := w.mail.addAlias(a, user); err != nil {
		return err
	}
	w.goBackground(func() {
		if _, err := w.keys.key(domain); err != nil {
			w.log.Error("dkim key", "domain", domain, "error", err)
		}
	})
	w.log.Info("alias added", "alias", a, "user", user)
	return nil
}

func (m *mailSystem) addAlias(alias, user string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := strings.ToLower(alias)
	if m.users[key] != nil || m.aliases[key] != "" {
		return fmt.Errorf("add alias %s: the address exists", alias)
	}
	u := m.users[strings.ToLower(user)]
	if u == nil {
		return fmt.Errorf("add alias %s: no user %s", alias, user)
	}
	if m.aliases == nil {
		m.aliases = map[string]string{}
	}
	m.aliases[key] = strings.ToLower(u.addr)
	return nil
}

// owns reports whether the authenticated user may send as addr: its own
// address or one of its aliases.
func (m *mailSystem) owns(user, addr string) bool {
	if strings.EqualFold(user, addr) {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.aliases[strings.ToLower(addr)] == strings.ToLower(user) && user != ""
}

// reusableAuthzLocked returns a valid, unexpired authorization of acct for
// id, if Options.ReuseValidAuthz allows reusing one.
func (ca *authority) reusableAuthzLocked(acct *account, id identifier, now time.Time) *authz {
	if !ca.opt.ReuseValidAuthz {
		return nil
	}
	for _, o := range acct.orders {
		for _, a := range o.authzs {
			if a.status == statusValid && now.Before(a.expires) && a.ident.Type == id.Type &&
				(a.ident.Value == id.Value || id.Type == identEmail && sameAddress(a.ident.Value, id.Value)) {
				return a
			}
		}
	}
	return nil
}
