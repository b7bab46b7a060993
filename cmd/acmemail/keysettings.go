package main

import (
	"path/filepath"
	"strings"

	"github.com/acmemail/acmemail/keystore"
)

// recordKeySettings adds to what renew repeats the settings of this
// package's flags: --issuer-roots and the mailboxes of --also addresses.
func (id *identity) recordKeySettings(st *keystore.Settings) {
	if id.issuerRootsFile != "" {
		st.IssuerRoots = id.issuerRootsFile
	}
	for _, a := range id.also {
		b := id.alsoBoxes[strings.ToLower(a)]
		if b == nil || b.imapURL == "" {
			continue
		}
		m := keystore.AlsoMailbox{Email: a, IMAP: b.imapURL, SMTP: b.smtpURL, User: b.user, PasswordFile: b.passwordFile, PasswordCommand: b.passwordCommand}
		if m.PasswordFile != "" {
			if abs, err := filepath.Abs(m.PasswordFile); err == nil {
				m.PasswordFile = abs
			}
		}
		st.AlsoMailboxes = append(st.AlsoMailboxes, m)
	}
}

// restoreKeySettings is the inverse of recordKeySettings, for renew.
func (id *identity) restoreKeySettings(st *keystore.Settings) error {
	if st.IssuerRoots != "" {
		data, err := readIssuerRoots(st.IssuerRoots)
		if err != nil {
			return err
		}
		id.issuerRoots, id.issuerRootsFile = data, st.IssuerRoots
	}
	for _, m := range st.AlsoMailboxes {
		if id.alsoBoxes == nil {
			id.alsoBoxes = map[string]*alsoBox{}
		}
		id.alsoBoxes[strings.ToLower(m.Email)] = &alsoBox{imapURL: m.IMAP, smtpURL: m.SMTP, user: m.User, passwordFile: m.PasswordFile, passwordCommand: m.PasswordCommand}
	}
	return nil
}

// absPath returns p made absolute, or "" for "".
func absPath(p string) string {
	if p == "" {
		return ""
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
