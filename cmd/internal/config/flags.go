package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/acmemail/acmemail/acmemail/issuer"
)

// Settings are a configuration file (nil: none) as a command's flags get
// it, with the environment: Apply fills the flags the command line left
// unset.
type Settings struct {
	*File
	Home string // $HOME, for ~/ in values

	// before holds, per flag the file set, the flag's value before, so
	// that ForIdentity can put it back.
	before map[string]prior
}

// prior is a flag's value before the configuration file set it.
type prior struct {
	text  string   // Value.String(), for Set
	slice []string // for slice flags, for Replace
}

// Source says where a flag's value came from: the variable's name, or the
// file and line.
type Source struct{ Flag, From string }

// EnvNotSettings are ACMEMAIL_ variables that never set a flag: the
// variables of their own (secrets, the state directory, ...) and those a
// deploy hook sees, so that a hook that runs acmemail again is not steered
// by them.
var EnvNotSettings = map[string]bool{
	"ACMEMAIL_CONFIG": true, "ACMEMAIL_HOME": true, "ACMEMAIL_CA_ROOTS": true,
	"ACMEMAIL_PASSWORD": true, "ACMEMAIL_P12_PASSWORD": true, "ACMEMAIL_EAB_HMAC": true,
	"ACMEMAIL_SMTP_PASSWORD": true, "ACMEMAIL_REALMAIL": true, "ACMEMAIL_UPDATE_GOLDEN": true,
	"ACMEMAIL_EMAIL": true, "ACMEMAIL_P12_PATH": true, "ACMEMAIL_CERT_PATH": true,
	"ACMEMAIL_CHAIN_PATH": true, "ACMEMAIL_KEY_PATH": true, "ACMEMAIL_NOT_AFTER": true,
	"ACMEMAIL_SERIAL": true, "ACMEMAIL_CERT_USAGE": true,
}

// EnvName is the environment variable of a flag: --key-type is
// ACMEMAIL_KEY_TYPE.
func EnvName(flag string) string {
	return "ACMEMAIL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Env is the value of the variable of a flag that sets it ("" counts as
// unset), or false.
func Env(getenv func(string) string, flag string) (string, bool) {
	name := EnvName(flag)
	v := getenv(name)
	return v, v != "" && !EnvNotSettings[name] && Reserved[flag] == ""
}

// Clean is a copy of s that has applied nothing yet (s may be nil).
func (s *Settings) Clean() *Settings {
	if s == nil {
		return nil
	}
	c := *s
	c.before = nil
	return &c
}

// Apply fills the flags of fs that the command line left unset: from the
// environment, then from the identity's table (when the command acts on
// one address, email), then from [defaults]. s may be nil (no file).
func (s *Settings) Apply(fs *pflag.FlagSet, getenv func(string) string, email string) ([]Source, error) {
	var sources []Source
	var errs []error
	var identity map[string]Value
	if s != nil && s.File != nil && email != "" {
		identity = s.Identities[email]
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || Reserved[f.Name] != "" {
			return
		}
		if v, ok := Env(getenv, f.Name); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, err))
				return
			}
			f.Changed = true
			sources = append(sources, Source{f.Name, EnvName(f.Name)})
			return
		}
		if s == nil || s.File == nil {
			return
		}
		cv, ok := identity[f.Name]
		if !ok {
			if cv, ok = s.Defaults[f.Name]; !ok {
				return
			}
		}
		vals, err := FlagArgs(cv.Value, f.Value.Type(), s.Home)
		if s.before == nil {
			s.before = map[string]prior{}
		}
		p := prior{text: f.Value.String()}
		sv, isSlice := f.Value.(pflag.SliceValue)
		if isSlice {
			p.slice = slices.Clone(sv.GetSlice())
		}
		s.before[f.Name] = p
		if err == nil {
			if isSlice {
				err = sv.Replace(vals)
			} else {
				for _, v := range vals {
					if err = f.Value.Set(v); err != nil {
						break
					}
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", cv.Where, f.Name, err))
			return
		}
		f.Changed = true
		sources = append(sources, Source{f.Name, cv.Where})
	})
	if len(errs) > 0 {
		return nil, &issuer.UsageError{Err: errors.Join(errs...)}
	}
	return sources, nil
}

// ForIdentity applies the file again for another address, for a command
// that acts on several in one run (renew without EMAIL arguments): the
// flags the file set for the previous address get their earlier values
// back, then the address's table and [defaults] apply again. Flags from the
// command line or the environment stay as they are.
func (s *Settings) ForIdentity(fs *pflag.FlagSet, getenv func(string) string, email string) ([]Source, error) {
	if s == nil || s.File == nil {
		return nil, nil
	}
	for name, p := range s.before {
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		var err error
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			err = sv.Replace(p.slice)
		} else {
			err = f.Value.Set(p.text)
		}
		if err != nil {
			return nil, fmt.Errorf("reset --%s: %w", name, err)
		}
		f.Changed = false
	}
	s.before = nil
	return s.Apply(fs, getenv, email)
}

// FlagNames collects the flag names of every command under root.
func FlagNames(root *cobra.Command) map[string]bool {
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
