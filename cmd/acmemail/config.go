package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	cfgfile "github.com/acmemail/acmemail/cmd/internal/config"
	"github.com/acmemail/acmemail/cmd/internal/termout"
)

// The configuration file, config.toml: defaults for every command, and one
// table per identity (mail address). Its keys are flag names, so any flag
// of any command (also one added later) can be set there, and every flag
// can be set from an ACMEMAIL_* environment variable too. Precedence: a
// flag on the command line, then the environment, then the identity's
// table, then [defaults], then the flag's built-in default. Reading and
// checking the file is package cmd/internal/config; here its settings and
// the environment's meet the flags.

const configHelp = `CONFIGURATION
  Every flag can also be set in the environment, as ACMEMAIL_ and the flag's
  name in capitals with - as _ (--key-type: ACMEMAIL_KEY_TYPE), and in the
  configuration file: --config FILE, else $ACMEMAIL_CONFIG, else
  $XDG_CONFIG_HOME/acmemail/config.toml, else ~/.config/acmemail/config.toml.
  The file is TOML; its keys are flag names (without --):

    [defaults]                      # every command, every identity
    server = "castle"
    [identity."alice@example.com"]  # commands given this address
    imap = "imaps://imap.example.com"
    smtp = "smtps://smtp.example.com"
    password-file = "~/.config/acmemail/alice.password"

  Precedence: command line, then environment, then the identity's table, then
  [defaults]. Unknown keys are errors, with their line. Passwords never go in
  the file (name a file or a command instead), and acmemail refuses a file
  that others can write.`

// config is the configuration file and the environment as the flags get
// them (cfgfile.Settings).
type config = cfgfile.Settings

// configSource says where a flag's value came from, for -v and hints.
type configSource = cfgfile.Source

// configPath returns the configuration file to read and whether the user
// named it (then it must exist).
func (g *globals) configPath(flagValue string) (string, bool) {
	return cfgfile.Path(flagValue, g.getenv)
}

// loadConfig reads and parses the configuration file; a missing default
// file is no configuration.
func (g *globals) loadConfig(flagValue string, known func(string) bool) (*config, error) {
	path, explicit := g.configPath(flagValue)
	f, err := cfgfile.Load(path, explicit, known)
	if f == nil || err != nil {
		return nil, err
	}
	return &config{File: f, Home: g.getenv("HOME")}, nil
}

// applySettings fills the flags of cmd that the command line left unset
// (cfgfile.Settings.Apply).
func (g *globals) applySettings(cmd *cobra.Command, c *config, email string) ([]configSource, error) {
	return c.Apply(cmd.Flags(), g.getenv, email)
}

// settingsForIdentity re-applies the configuration file for another
// address (renew without EMAIL arguments), logging what it set.
func (g *globals) settingsForIdentity(cmd *cobra.Command, email string) error {
	if norm, err := checkEmail(email); err == nil {
		email = norm
	}
	sources, err := g.config.ForIdentity(cmd.Flags(), g.getenv, email)
	if err != nil {
		return err
	}
	log := g.logger()
	for _, s := range sources {
		log.Info("setting", "identity", email, "flag", s.Flag, "from", s.From)
	}
	return nil
}

// commandIdentity is the address a command acts on, for the identity
// tables: its only argument, if that is a mail address.
func commandIdentity(args []string) string {
	if len(args) != 1 || !strings.Contains(args[0], "@") {
		return ""
	}
	email, err := checkEmail(args[0])
	if err != nil {
		return ""
	}
	return email
}

// knownAddresses are the addresses identity tables are for: the managed
// ones and email ("", without one, looks like no address).
func knownAddresses(g *globals, email string) []string {
	var addrs []string
	if store, err := openStateToRead(g.getenv); err == nil && store != nil {
		addrs, _ = store.ListIdentities()
	}
	return append(addrs, email)
}

// warnAll prints warnings on stderr, escaped.
func warnAll(g *globals, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(g.stderr, "acmemail: warning: %s\n", termout.Escape(w))
	}
}

// settingsPreRun is the root's PersistentPreRunE part that applies the
// environment and the configuration file.
func (g *globals) settingsPreRun(cmd *cobra.Command, args []string) error {
	known := cfgfile.FlagNames(cmd.Root())
	c, err := g.loadConfig(g.configFile, func(k string) bool { return known[k] })
	if err != nil {
		return err
	}
	g.config = c
	sources, err := g.applySettings(cmd, c, commandIdentity(args))
	if err != nil {
		return err
	}
	g.settingSources = sources
	if email := commandIdentity(args); email != "" && c != nil && cmd.Name() != "config" {
		warnAll(g, c.Lookalikes([]string{email})) // config says it with all addresses
	}
	log := g.logger()
	for _, s := range sources {
		log.Info("setting", "flag", s.Flag, "from", s.From)
	}
	return nil
}
