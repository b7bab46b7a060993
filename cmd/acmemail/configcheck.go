package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

// configValueChecks are the checks of settings whose values are a choice
// from a list, the ones a command would otherwise refuse only when it
// runs: acmemail config reports them up front.
var configValueChecks = map[string]func(string) error{
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

// checkSettingValues returns one error naming every setting whose value a
// command would refuse, with where it came from.
func checkSettingValues(settings []setting) error {
	var bad []string
	for _, s := range settings {
		check := configValueChecks[s.Key]
		v, isString := s.Value.(string)
		if check == nil || !isString {
			continue
		}
		if err := check(v); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %s %q: %v", s.Source, s.Key, v, err))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return withHint(usageErrorf("%s", strings.Join(bad, "; ")),
		"commands given these settings would stop with the same error; acmemail COMMAND --help lists what each flag takes")
}
