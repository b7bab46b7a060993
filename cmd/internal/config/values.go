package config

import (
	"errors"
	"strings"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

// valueChecks are the checks of settings whose values are a choice from a
// list, the ones a command would otherwise refuse only when it runs.
var valueChecks = map[string]func(string) error{
	"key-type": func(v string) error {
		if kt, err := keystore.ParseKeyType(v); err != nil || kt == "ed25519" {
			return errors.New("choose rsa2048, rsa3072, rsa4096, p256 or p384")
		}
		return nil
	},
	"usage": func(v string) error { _, err := acmemail.ParseUsage(v); return err },
	"p12-profile": func(v string) error {
		if v != "modern" && v != "legacy" {
			return errors.New("choose modern or legacy")
		}
		return nil
	},
	"auth-mech": func(v string) error { _, err := mailbox.ParseMechanism(v); return err },
	"join":      func(v string) error { _, err := acmemail.ParseJoinMode(v); return err },
	"server": func(v string) error {
		if v == "sandbox" || issuer.NamedServers[v].URL != "" || strings.HasPrefix(v, "https://") {
			return nil
		}
		return errors.New("want the https:// URL of an ACME directory, or sandbox, castle, castle-staging")
	},
}

// CheckValue says why a command would refuse v for the setting key, for
// the settings whose values are a choice from a list (key-type, usage,
// p12-profile, auth-mech, join, server). Other settings, and values that
// are not strings, are not checked: nil.
func CheckValue(key string, v any) error {
	check := valueChecks[key]
	s, isString := v.(string)
	if check == nil || !isString {
		return nil
	}
	return check(s)
}
