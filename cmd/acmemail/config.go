package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The configuration file, config.toml: defaults for every command, and one
// table per identity (mail address). Its keys are flag names, so any flag
// of any command (also one added later) can be set there, and every flag
// can be set from an ACMEMAIL_* environment variable too. Precedence: a
// flag on the command line, then the environment, then the identity's
// table, then [defaults], then the flag's built-in default.

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

// configValue is one key's value and where it was set.
type configValue struct {
	value any    // as decoded: string, int64, float64, bool, []any, time types
	line  int    // 1-based line of the key
	where string // "config.toml:12"
}

// config is a parsed configuration file.
type config struct {
	path       string
	defaults   map[string]configValue
	identities map[string]map[string]configValue // address (domain lowercased) -> key -> value

	// before holds, per flag the file set, the flag's value before, so that
	// settingsForIdentity can put it back.
	before map[string]priorValue
}

// priorValue is a flag's value before the configuration file set it.
type priorValue struct {
	text  string   // Value.String(), for Set
	slice []string // for slice flags, for Replace
}

// configSecretWords mark keys that would hold a secret literal.
var configSecretWords = []string{"password", "passphrase", "secret", "hmac", "token"}

// configReserved are flags that cannot come from the file.
var configReserved = map[string]string{
	"config":  "the configuration file cannot name another one",
	"help":    "not a setting",
	"version": "not a setting",
}

// parseConfig parses config.toml. known reports whether a key names a
// flag of some command. name is used in messages (the file's base name).
func parseConfig(data []byte, name string, known func(string) bool) (*config, error) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			err := fmt.Errorf("%s:%d:%d: %s", name, row, col, strings.TrimPrefix(de.Error(), "toml: "))
			return nil, withHint(err, tomlSyntaxHints(data, row, de.Error())...)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	lines, err := configKeyLines(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	at := func(path ...string) (int, string) {
		// The line of the key, else of the nearest enclosing one.
		l := 0
		for n := len(path); n > 0 && l == 0; n-- {
			l = lines[strings.Join(path[:n], "\x00")]
		}
		if l == 0 {
			l = 1
		}
		return l, fmt.Sprintf("%s:%d", name, l)
	}
	c := &config{path: name, defaults: map[string]configValue{}, identities: map[string]map[string]configValue{}}
	table := func(section string, m map[string]any, path ...string) (map[string]configValue, error) {
		out := map[string]configValue{}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := m[k]
			line, where := at(append(slices.Clone(path), k)...)
			if err := checkConfigKey(k, v, known); err != nil {
				return nil, fmt.Errorf("%s: %s in %s: %w", where, strconv.Quote(k), section, err)
			}
			out[k] = configValue{value: v, line: line, where: where}
		}
		return out, nil
	}
	tops := make([]string, 0, len(doc))
	for k := range doc {
		tops = append(tops, k)
	}
	sort.Strings(tops)
	for _, top := range tops {
		v := doc[top]
		_, where := at(top)
		switch top {
		case "defaults":
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: defaults must be a table: [defaults]", where)
			}
			if c.defaults, err = table("[defaults]", m, top); err != nil {
				return nil, err
			}
		case "identity":
			ids, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: identity must hold tables: [identity.\"alice@example.com\"]", where)
			}
			names := make([]string, 0, len(ids))
			for k := range ids {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, addr := range names {
				_, where := at(top, addr)
				m, ok := ids[addr].(map[string]any)
				if !ok {
					return nil, fmt.Errorf("%s: identity.%s must be a table: [identity.%q]", where, addr, addr)
				}
				norm, err := checkEmail(addr)
				if err != nil {
					return nil, fmt.Errorf("%s: [identity.%q]: %w", where, addr, err)
				}
				if _, dup := c.identities[norm]; dup {
					return nil, fmt.Errorf("%s: [identity.%q]: a second table for %s", where, addr, norm)
				}
				section := fmt.Sprintf("[identity.%q]", addr)
				if c.identities[norm], err = table(section, m, top, addr); err != nil {
					return nil, err
				}
			}
		default:
			hint := `the file holds only [defaults] and [identity."ADDRESS"] tables`
			if known(top) {
				hint = "put it in [defaults] or in an [identity.\"ADDRESS\"] table"
			}
			return nil, fmt.Errorf("%s: unknown key %q (%s)", where, top, hint)
		}
	}
	return c, nil
}

// checkConfigKey refuses keys that name no flag, reserved flags, secrets
// and nested tables.
func checkConfigKey(k string, v any, known func(string) bool) error {
	if why, ok := configReserved[k]; ok {
		return fmt.Errorf("not allowed here: %s", why)
	}
	if !known(k) {
		lower := strings.ToLower(k)
		for _, w := range configSecretWords {
			if strings.Contains(lower, w) {
				return errors.New("unknown key; secrets never go in the configuration file: name a file (password-file) or a command (password-command) instead")
			}
		}
		if alt := strings.ReplaceAll(lower, "_", "-"); alt != k && known(alt) {
			return fmt.Errorf("unknown key (did you mean %q?)", alt)
		}
		if alt := oneEditAway(lower, known); alt != "" {
			return fmt.Errorf("unknown key (did you mean %q?)", alt)
		}
		return errors.New("unknown key (keys are the commands' flag names, see acmemail COMMAND --help)")
	}
	if _, ok := v.(map[string]any); ok {
		return errors.New("want a value, not a table")
	}
	return nil
}

// configKeyLines maps every key path (parts joined by NUL) to the line it
// is defined on, inline tables included.
func configKeyLines(data []byte) (map[string]int, error) {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	keyOf := func(e *unstable.Node) (parts []string, line int) {
		it := e.Key()
		for it.Next() {
			n := it.Node()
			parts = append(parts, string(n.Data))
			if line == 0 {
				line = p.Shape(n.Raw).Start.Line
			}
		}
		return parts, line
	}
	record := func(full []string, from, line int) {
		for i := from; i < len(full); i++ {
			k := strings.Join(full[:i+1], "\x00")
			if _, ok := lines[k]; !ok {
				lines[k] = line
			}
		}
	}
	var keyValue func(prefix []string, e *unstable.Node)
	keyValue = func(prefix []string, e *unstable.Node) {
		parts, line := keyOf(e)
		full := append(slices.Clone(prefix), parts...)
		record(full, len(prefix), line)
		if v := e.Value(); v != nil && v.Kind == unstable.InlineTable {
			it := v.Children()
			for it.Next() {
				keyValue(full, it.Node())
			}
		}
	}
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			parts, line := keyOf(e)
			table = parts
			record(parts, 0, line)
		case unstable.KeyValue:
			keyValue(table, e)
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	return lines, nil
}

// flagString turns a config value into the text pflag's Set takes, for a
// flag of type typ ("string", "bool", "int", "duration", "stringSlice", ...).
func flagString(v any, typ string) ([]string, error) {
	kind := func(v any) string {
		switch v.(type) {
		case string:
			return "a string"
		case bool:
			return "a boolean"
		case int64:
			return "an integer"
		case float64:
			return "a number"
		case []any:
			return "an array"
		}
		return fmt.Sprintf("a %T", v)
	}
	switch typ {
	case "bool":
		if b, ok := v.(bool); ok {
			return []string{strconv.FormatBool(b)}, nil
		}
		return nil, fmt.Errorf("want true or false, not %s", kind(v))
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "count":
		if i, ok := v.(int64); ok {
			return []string{strconv.FormatInt(i, 10)}, nil
		}
		return nil, fmt.Errorf("want an integer, not %s", kind(v))
	case "duration":
		if s, ok := v.(string); ok {
			return []string{s}, nil
		}
		return nil, fmt.Errorf(`want a duration string such as "15m", not %s`, kind(v))
	case "stringSlice", "stringArray":
		switch v := v.(type) {
		case string:
			return []string{expandHome(v)}, nil
		case []any:
			out := make([]string, 0, len(v))
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("want an array of strings, not one holding %s", kind(e))
				}
				out = append(out, expandHome(s))
			}
			return out, nil
		}
		return nil, fmt.Errorf("want a string or an array of strings, not %s", kind(v))
	}
	if s, ok := v.(string); ok {
		return []string{expandHome(s)}, nil
	}
	return nil, fmt.Errorf("want a string, not %s", kind(v))
}

// homeDir is $HOME for expandHome; set by loadConfig.
var homeDir string

// expandHome expands a leading ~/ in values from the configuration file
// (no shell expands them there).
func expandHome(s string) string {
	if rest, ok := strings.CutPrefix(s, "~/"); ok && homeDir != "" {
		return filepath.Join(homeDir, rest)
	}
	return s
}

// configPath returns the configuration file to read and whether the user
// named it (then it must exist).
func (g *globals) configPath(flagValue string) (string, bool) {
	if flagValue != "" {
		return flagValue, true
	}
	if p := g.getenv("ACMEMAIL_CONFIG"); p != "" {
		return p, true
	}
	if d := g.getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "acmemail", "config.toml"), false
	}
	if h := g.getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "acmemail", "config.toml"), false
	}
	return "", false
}

// loadConfig reads and parses the configuration file; a missing default
// file is no configuration.
func (g *globals) loadConfig(flagValue string, known func(string) bool) (*config, error) {
	path, explicit := g.configPath(flagValue)
	if path == "" {
		return nil, nil
	}
	homeDir = g.getenv("HOME")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil, nil
	}
	if err != nil {
		return nil, usageErrorf("configuration file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, usageErrorf("configuration file: %w", err)
	}
	if err := checkConfigPerm(path, fi); err != nil {
		return nil, err
	}
	data := make([]byte, 0, fi.Size())
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		data = append(data, buf[:n]...)
		if len(data) > 1<<20 {
			return nil, usageErrorf("configuration file %s is larger than 1 MiB", path)
		}
		if err != nil {
			break
		}
	}
	c, err := parseConfig(data, path, known)
	if err != nil {
		return nil, &usageError{Err: err}
	}
	return c, nil
}

// checkConfigPerm refuses a file that others can change: it names
// commands that acmemail runs (hooks, password commands) and files it
// reads secrets from.
func checkConfigPerm(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return usageErrorf("configuration file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return withHint(usageErrorf("configuration file %s is writable by others (mode %04o); refusing to use it", path, fi.Mode().Perm()),
			"it can name commands acmemail runs; make it yours alone: chmod go-w "+path)
	}
	if uid, foreign := foreignOwner(fi); foreign {
		return withHint(usageErrorf("configuration file %s belongs to another user (uid %d); refusing to use it", path, uid),
			"use a file you own")
	}
	return nil
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
		vals, err := flagString(cv.value, f.Value.Type())
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
