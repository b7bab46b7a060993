package main

import (
	"io"
	"sort"

	"github.com/spf13/cobra"
)

// The settings from the environment and the configuration file are
// checked in one place, checkSettings, the way obtain and renew check them
// when they run: acmemail config refuses exactly what they would refuse,
// with the same words.

// settingsCheck records check as what cmd checks of its settings before it
// acts, for checkSettings. The command's run calls the same code.
func (g *globals) settingsCheck(cmd *cobra.Command, check func(email string) error) {
	if g.settingChecks == nil {
		g.settingChecks = map[*cobra.Command]func(string) error{}
	}
	g.settingChecks[cmd] = check
}

// anyAddress stands in for an address without a table of its own, for the
// checks that need one (obtain's profile is of an address).
const anyAddress = "address@example.invalid"

// checkSettings returns the first error a command would stop with, given
// the settings of the environment and the configuration file for email
// (normalized), before it reads a secret or sends anything. Without email,
// the settings of an address without a table of its own are checked, then
// those of each identity.
func (g *globals) checkSettings(email string) error {
	if email != "" {
		return g.checkAddress(email)
	}
	if err := g.checkAddress(""); err != nil {
		return err
	}
	if g.config == nil || g.config.File == nil {
		return nil
	}
	ids := make([]string, 0, len(g.config.Identities))
	for id := range g.config.Identities {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if err := g.checkAddress(id); err != nil {
			return withHint(err, "these are the settings of "+id+" (its table, then [defaults]): acmemail config "+id+" lists them")
		}
	}
	return nil
}

// checkAddress is checkSettings for one address ("": one without a table).
// The commands that record a check of their settings (obtain, renew) are
// made afresh; the settings are applied to their flags as a run applies
// them (applySettings: a value of the wrong type, one the flag refuses),
// then their checks run (obtain builds its profile through the code of its
// run, obtainOptions.settle). obtain comes first, so its error is the one
// obtain EMAIL prints, word for word; the hints say where the values came
// from.
func (g *globals) checkAddress(email string) error {
	fresh := &globals{stdin: g.stdin, stdout: io.Discard, stderr: io.Discard, getenv: g.getenv}
	root := newRootCmd(fresh)
	addr, who := email, email
	if addr == "" {
		addr, who = anyAddress, "EMAIL"
	}
	for _, cmd := range root.Commands() { // in order of their names: obtain, renew
		check := fresh.settingChecks[cmd]
		if check == nil {
			continue
		}
		// As a run parses its command line: the inherited flags join.
		if err := cmd.ParseFlags(nil); err != nil {
			return err
		}
		// What renew puts back between addresses is its own.
		sources, err := fresh.applySettings(cmd, g.config.Clean(), email)
		if err == nil {
			err = check(addr)
		}
		if err != nil {
			hints := append(settingHints(err, sources), cmd.CommandPath()+" "+who+" stops with this error too")
			return withHint(err, hints...)
		}
	}
	return nil
}
