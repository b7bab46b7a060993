package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	cfgfile "github.com/acmemail/acmemail/cmd/internal/config"

	"github.com/spf13/cobra"
)

const configLong = `Check the configuration file and show the settings that apply to EMAIL (or, without
EMAIL, to every address): each key with its value and where it comes from, an
ACMEMAIL_* variable, the identity's table or [defaults]. A setting on the command
line of another command still beats all of these.

The file is read as every command reads it, so an error here (an unknown key, a
file others can write) is the error every command would stop with. The settings
are then checked as obtain and renew check them before they act: set on their
flags as a run sets them (a value of the wrong type, or one the flag refuses),
then put through their own checks (key-type, usage, p12-profile, server, join,
auth-mech, --split with --usage, the --also flags, ...). The first error they
would stop with follows the listing, word for word, with where the value came
from; the exit status is 2. Without EMAIL, the settings of an address without a
table are checked, then those of each identity.

` + configHelp

type configShowOptions struct {
	json bool
}

// setting is one effective setting, for acmemail config.
type setting struct {
	Key    string `json:"key"`
	Value  any    `json:"value"`
	Source string `json:"source"` // "ACMEMAIL_KEY_TYPE", "config.toml:12"
}

type configResult struct {
	File     string    `json:"file"` // "" when there is none
	Identity string    `json:"identity,omitempty"`
	Settings []setting `json:"settings"`
	Warnings []string  `json:"warnings,omitempty"` // identity tables that look like a managed or given address but are not for it
}

func newConfigCmd(g *globals) *cobra.Command {
	var o configShowOptions
	cmd := &cobra.Command{
		Use:   "config [EMAIL]",
		Short: "Check the configuration file and show the settings for EMAIL",
		Long:  configLong,
		Example: `  acmemail config alice@example.com
  acmemail --config ./test.toml config --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			email := ""
			if len(args) == 1 {
				var err error
				if email, err = checkEmail(args[0]); err != nil {
					return err
				}
			}
			return runConfig(g, cmd, &o, email)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print the settings as JSON on stdout")
	return cmd
}

func runConfig(g *globals, cmd *cobra.Command, o *configShowOptions, email string) error {
	res := configResult{Identity: email, Settings: []setting{}}
	path, _ := g.configPath(g.configFile)
	c := g.config
	if c != nil {
		res.File, res.Warnings = path, c.Lookalikes(knownAddresses(g, email))
	}
	seen := map[string]bool{}
	known := cfgfile.FlagNames(cmd.Root())
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if v, ok := cfgfile.Env(g.getenv, k); ok {
			res.Settings = append(res.Settings, setting{Key: k, Value: v, Source: cfgfile.EnvName(k)})
			seen[k] = true
		}
	}
	if c != nil {
		add := func(m map[string]cfgfile.Value) {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if seen[k] {
					continue
				}
				seen[k] = true
				res.Settings = append(res.Settings, setting{Key: k, Value: m[k].Value, Source: m[k].Where})
			}
		}
		if email != "" {
			add(c.Identities[email])
		}
		add(c.Defaults)
	}
	sort.Slice(res.Settings, func(i, j int) bool { return res.Settings[i].Key < res.Settings[j].Key })
	if o.json {
		if err := json.NewEncoder(g.stdout).Encode(res); err != nil {
			return err
		}
		return g.checkSettings(email)
	}
	w := g.stdout
	switch {
	case c != nil:
		fmt.Fprintf(w, "# %s\n", path)
		if email != "" && c.Identities[email] == nil {
			fmt.Fprintf(w, "# no [identity.%q] table: only [defaults] applies\n", email)
		}
	case path != "":
		fmt.Fprintf(w, "# no configuration file (%s does not exist)\n", path)
	default:
		fmt.Fprintln(w, "# no configuration file (neither XDG_CONFIG_HOME nor HOME is set)")
	}
	for _, s := range res.Settings {
		fmt.Fprintf(w, "%s = %s  # %s\n", s.Key, tomlValue(s.Value), s.Source)
	}
	warnAll(g, res.Warnings)
	if c != nil && email == "" && len(c.Identities) > 0 {
		ids := make([]string, 0, len(c.Identities))
		for id := range c.Identities {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		fmt.Fprintf(w, "# identities: %s\n", strings.Join(ids, ", "))
	}
	return g.checkSettings(email)
}

// tomlValue formats a value as it would be written in the file.
func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = tomlValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v)
}
