package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	cfgfile "github.com/acmemail/acmemail/cmd/internal/config"
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

// config is the parsed configuration file, as the flags get it.
type config struct {
	home       string // $HOME, for ~/ in values
	defaults   map[string]configValue
	identities map[string]map[string]configValue // address (domain lowercased) -> key -> value

	// before holds, per flag the file set, the flag's value before, so that
	// settingsForIdentity can put it back.
	before map[string]priorValue
}

// configValue is one key's value and where it was set.
type configValue struct {
	value any    // as decoded: string, int64, float64, bool, []any, time types
	where string // "config.toml:12"
}

// priorValue is a flag's value before the configuration file set it.
type priorValue struct {
	text  string   // Value.String(), for Set
	slice []string // for slice flags, for Replace
}

// configReserved are flags that cannot come from the file.
var configReserved = cfgfile.Reserved

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
	values := func(m map[string]cfgfile.Value) map[string]configValue {
		out := make(map[string]configValue, len(m))
		for k, v := range m {
			out[k] = configValue{value: v.Value, where: v.Where}
		}
		return out
	}
	c := &config{home: g.getenv("HOME"), defaults: values(f.Defaults), identities: map[string]map[string]configValue{}}
	for id, m := range f.Identities {
		c.identities[id] = values(m)
	}
	return c, nil
}

// envNotSettings are ACMEMAIL_ variables that never set a flag: the
// variables of their own (secrets, the state directory, ...) and those a
// deploy hook sees, so that a hook that runs acmemail again is not steered
// by them.
var envNotSettings = map[string]bool{
	"ACMEMAIL_CONFIG": true, "ACMEMAIL_HOME": true, "ACMEMAIL_CA_ROOTS": true,
	"ACMEMAIL_PASSWORD": true, "ACMEMAIL_P12_PASSWORD": true, "ACMEMAIL_EAB_HMAC": true,
	"ACMEMAIL_SMTP_PASSWORD": true, "ACMEMAIL_REALMAIL": true, "ACMEMAIL_UPDATE_GOLDEN": true,
	"ACMEMAIL_EMAIL": true, "ACMEMAIL_P12_PATH": true, "ACMEMAIL_CERT_PATH": true,
	"ACMEMAIL_CHAIN_PATH": true, "ACMEMAIL_KEY_PATH": true, "ACMEMAIL_NOT_AFTER": true,
	"ACMEMAIL_SERIAL": true, "ACMEMAIL_CERT_USAGE": true,
}

// configSource says where a flag's value came from, for -v.
type configSource struct{ flag, from string }

// applySettings fills the flags of cmd that the command line left unset:
// from the environment, then from the identity's table (when the command
// acts on one address), then from [defaults].
func (g *globals) applySettings(cmd *cobra.Command, c *config, email string) ([]configSource, error) {
	fs := cmd.Flags()
	var sources []configSource
	var errs []error
	var identity map[string]configValue
	if c != nil && email != "" {
		identity = c.identities[email]
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || configReserved[f.Name] != "" {
			return
		}
		env := envName(f.Name)
		if v, ok := g.lookupEnv(env); ok && !envNotSettings[env] {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
				return
			}
			f.Changed = true
			sources = append(sources, configSource{f.Name, env})
			return
		}
		if c == nil {
			return
		}
		cv, ok := identity[f.Name]
		if !ok {
			if cv, ok = c.defaults[f.Name]; !ok {
				return
			}
		}
		vals, err := cfgfile.FlagArgs(cv.value, f.Value.Type(), c.home)
		if c.before == nil {
			c.before = map[string]priorValue{}
		}
		prior := priorValue{text: f.Value.String()}
		if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
			prior.slice = slices.Clone(sv.GetSlice())
		}
		c.before[f.Name] = prior
		if err == nil {
			if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
				err = sv.Replace(vals)
			} else {
				for _, s := range vals {
					if err = f.Value.Set(s); err != nil {
						break
					}
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", cv.where, f.Name, err))
			return
		}
		f.Changed = true
		sources = append(sources, configSource{f.Name, cv.where})
	})
	if len(errs) > 0 {
		return nil, &usageError{Err: errors.Join(errs...)}
	}
	return sources, nil
}

// settingsForIdentity re-applies the configuration file for another
// address, for a command that acts on several in one run (renew without
// EMAIL arguments): the flags the file set for the previous address get
// their earlier values back, then the address's table and [defaults] apply
// again. Flags from the command line or the environment stay as they are.
func (g *globals) settingsForIdentity(cmd *cobra.Command, email string) error {
	c := g.config
	if c == nil {
		return nil
	}
	if norm, err := checkEmail(email); err == nil {
		email = norm
	}
	fs := cmd.Flags()
	for name, prior := range c.before {
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		var err error
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			err = sv.Replace(prior.slice)
		} else {
			err = f.Value.Set(prior.text)
		}
		if err != nil {
			return fmt.Errorf("reset --%s: %w", name, err)
		}
		f.Changed = false
	}
	c.before = nil
	sources, err := g.applySettings(cmd, c, email)
	if err != nil {
		return err
	}
	log := g.logger()
	for _, s := range sources {
		log.Info("setting", "identity", email, "flag", s.flag, "from", s.from)
	}
	return nil
}

// envName is the environment variable for a flag: --key-type is
// ACMEMAIL_KEY_TYPE.
func envName(flag string) string {
	return "ACMEMAIL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// lookupEnv reads an environment variable; an empty value counts as unset,
// as for the other ACMEMAIL_ variables.
func (g *globals) lookupEnv(name string) (string, bool) {
	v := g.getenv(name)
	return v, v != ""
}

// allFlagNames collects the flag names of every command under root.
func allFlagNames(root *cobra.Command) map[string]bool {
	names := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) { names[f.Name] = true }
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return names
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

// settingsPreRun is the root's PersistentPreRunE part that applies the
// environment and the configuration file.
func (g *globals) settingsPreRun(cmd *cobra.Command, args []string) error {
	root := cmd.Root()
	known := allFlagNames(root)
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
	log := g.logger()
	for _, s := range sources {
		log.Info("setting", "flag", s.flag, "from", s.from)
	}
	return nil
}
