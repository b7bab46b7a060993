package main

import (
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/acmemail/acmemail/acmemail/issuer"
)

// alsoFlags are obtain's flags for more addresses in the same certificate.
//
// By default every --also address is read and sent from the primary
// mailbox (the usual case: aliases of one account, which the provider lets
// you send as). An address that lives in another mailbox names it with
// --also-imap ADDR=URL; its submission server, login and password
// (--also-password-file or --also-password-command) default to the
// primary's submission server, ADDR, and a prompt (or the primary password
// when the login is the same). All of them are recorded with the
// certificate for renew: the file's path and the command, never the
// password.
type alsoFlags struct {
	also            []string
	imap            []string // ADDR=URL
	smtp            []string // ADDR=URL
	user            []string // ADDR=LOGIN
	passwordFile    []string // ADDR=FILE
	passwordCommand []string // ADDR=CMD
}

func (a *alsoFlags) addFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&a.also, "also", nil, "another address for the same certificate (repeatable); read from the same mailbox unless --also-imap names its own")
	f.StringArrayVar(&a.imap, "also-imap", nil, "ADDR=URL: the IMAP server of an --also address that has its own mailbox")
	f.StringArrayVar(&a.smtp, "also-smtp", nil, "ADDR=URL: its submission server (default: --smtp)")
	f.StringArrayVar(&a.user, "also-user", nil, "ADDR=LOGIN: its mail login (default: ADDR)")
	f.StringArrayVar(&a.passwordFile, "also-password-file", nil, "ADDR=FILE: its mail password, first line of FILE (default: a prompt, or the primary password for the same login)")
	f.StringArrayVar(&a.passwordCommand, "also-password-command", nil, "ADDR=CMD: its mail password, the first line the shell command CMD prints (like --password-command)")
}

// resolve validates the flags for the primary address and returns the
// extra addresses (normalized, in order) with the mailboxes of those that
// have their own.
func (a *alsoFlags) resolve(primary, home string) ([]issuer.Also, error) {
	var also []string
	seen := map[string]bool{strings.ToLower(primary): true}
	for _, e := range a.also {
		n, err := checkEmail(e)
		if err != nil {
			return nil, usageErrorf("--also: %w", err)
		}
		if seen[strings.ToLower(n)] {
			return nil, usageErrorf("--also %s: the address is already in the certificate", e)
		}
		seen[strings.ToLower(n)] = true
		also = append(also, n)
	}
	boxes := map[string]*issuer.Also{}
	box := func(flag, kv string) (*issuer.Also, string, error) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return nil, "", usageErrorf("--%s %q: want ADDR=VALUE", flag, kv)
		}
		n, err := checkEmail(k)
		if err != nil {
			return nil, "", usageErrorf("--%s: %w", flag, err)
		}
		found := false
		for _, x := range also {
			found = found || strings.EqualFold(x, n)
		}
		if !found {
			return nil, "", withHint(usageErrorf("--%s %s: %s is not an --also address", flag, kv, n), "add --also "+n)
		}
		b := boxes[strings.ToLower(n)]
		if b == nil {
			b = &issuer.Also{Email: n}
			boxes[strings.ToLower(n)] = b
		}
		return b, v, nil
	}
	for _, kv := range a.imap {
		b, v, err := box("also-imap", kv)
		if err != nil {
			return nil, err
		}
		b.IMAP = v
	}
	for _, spec := range []struct {
		flag string
		list []string
		set  func(*issuer.Also, string)
	}{
		{"also-smtp", a.smtp, func(b *issuer.Also, v string) { b.SMTP = v }},
		{"also-user", a.user, func(b *issuer.Also, v string) { b.User = v }},
		{"also-password-file", a.passwordFile, func(b *issuer.Also, v string) { b.PasswordFile = v }},
		{"also-password-command", a.passwordCommand, func(b *issuer.Also, v string) { b.PasswordCommand = v }},
	} {
		for _, kv := range spec.list {
			b, v, err := box(spec.flag, kv)
			if err != nil {
				return nil, err
			}
			if b.IMAP == "" {
				k, _, _ := strings.Cut(kv, "=")
				return nil, withHint(usageErrorf("--%s %s: that address has no --also-imap, so it uses the primary mailbox", spec.flag, kv),
					"give --also-imap "+k+"=URL for its own mailbox")
			}
			spec.set(b, v)
		}
	}
	var out []issuer.Also
	for _, n := range also {
		b := boxes[strings.ToLower(n)]
		if b == nil {
			out = append(out, issuer.Also{Email: n})
			continue
		}
		if b.PasswordFile != "" && b.PasswordCommand != "" {
			return nil, usageErrorf("--also-password-file and --also-password-command both give the mail password for %s; use one", n)
		}
		// No shell expands ~ after ADDR=; the path is recorded expanded.
		if rest, ok := strings.CutPrefix(b.PasswordFile, "~/"); ok && home != "" {
			b.PasswordFile = filepath.Join(home, rest)
		}
		out = append(out, *b)
	}
	return out, nil
}
