// Package config reads acmemail's configuration file, config.toml:
// defaults for every command ([defaults]) and one table per identity
// ([identity."ADDRESS"]), whose keys are the commands' flag names.
//
// It parses the TOML (with the line of every key, for messages), refuses
// what does not belong in the file (unknown keys, with a suggestion for a
// typo; secrets; nested tables; a file others can write) and turns values
// into the text a flag takes. Applying the settings to the flags, and
// checking them as the commands do, is the CLI's part.
//
// Mistakes in the file are *[issuer.UsageError]s, some with
// *[issuer.HintError] hints: the CLI exits with its usage status.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
)

// Value is one key's value and where it was set.
type Value struct {
	Value any    // as decoded: string, int64, float64, bool, []any, time types
	Line  int    // 1-based line of the key
	Where string // "config.toml:12"
}

// File is a parsed configuration file.
type File struct {
	Path       string
	Defaults   map[string]Value
	Identities map[string]map[string]Value // normalized address -> key -> value
	// TableAt is where each identity's table starts ("config.toml:5"),
	// by its normalized address.
	TableAt map[string]string
}

// secretWords mark keys that would hold a secret literal.
var secretWords = []string{"password", "passphrase", "secret", "hmac", "token"}

// Reserved are flags that cannot come from the file, with the reason.
var Reserved = map[string]string{
	"config":  "the configuration file cannot name another one",
	"help":    "not a setting",
	"version": "not a setting",
}

// Parse parses config.toml. known reports whether a key names a flag of
// some command. name is used in messages (the file's base name).
func Parse(data []byte, name string, known func(string) bool) (*File, error) {
	// Deeply nested arrays and inline tables cost the TOML decoder memory
	// far out of proportion to their size; a configuration has two levels.
	if d := nesting(data); d > maxNesting {
		return nil, fmt.Errorf("%s: arrays or inline tables nested %d deep; a configuration file needs at most %d", name, d, maxNesting)
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			err := fmt.Errorf("%s:%d:%d: %s", name, row, col, strings.TrimPrefix(de.Error(), "toml: "))
			return nil, issuer.WithHint(err, syntaxHints(data, row, de.Error())...)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	lines, err := keyLines(data)
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
	c := &File{Path: name, Defaults: map[string]Value{}, Identities: map[string]map[string]Value{}, TableAt: map[string]string{}}
	table := func(section string, m map[string]any, path ...string) (map[string]Value, error) {
		out := map[string]Value{}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := m[k]
			line, where := at(append(slices.Clone(path), k)...)
			if err := checkKey(k, v, known); err != nil {
				return nil, fmt.Errorf("%s: %s in %s: %w", where, strconv.Quote(k), section, err)
			}
			out[k] = Value{Value: v, Line: line, Where: where}
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
			if c.Defaults, err = table("[defaults]", m, top); err != nil {
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
				norm, err := normalizeAddress(addr)
				if err != nil {
					return nil, fmt.Errorf("%s: [identity.%q]: %w", where, addr, err)
				}
				if _, dup := c.Identities[norm]; dup {
					return nil, fmt.Errorf("%s: [identity.%q]: a second table for %s", where, addr, norm)
				}
				c.TableAt[norm] = where
				section := fmt.Sprintf("[identity.%q]", addr)
				if c.Identities[norm], err = table(section, m, top, addr); err != nil {
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

// Lookalikes warns of the identity tables that apply to none of addrs
// (normalized: the managed addresses, the one a command is given) but
// look like one of them: the address differs only in the case of its
// local part. The domain's case never matters, but the local part's is
// kept (RFC 5321 §2.4: a mail server may tell Alice from alice), so such
// a table applies only to an address spelled as it is. An address with a
// table of its own is not warned of. One sentence per table, sorted by
// address.
func (c *File) Lookalikes(addrs []string) []string {
	if c == nil {
		return nil
	}
	ids := make([]string, 0, len(c.Identities))
	for id := range c.Identities {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []string
	for _, id := range ids {
		if slices.Contains(addrs, id) {
			continue
		}
		if s := acmemail.SimilarAddress(id, addrs); s != "" && c.Identities[s] == nil {
			out = append(out, fmt.Sprintf("%s: [identity.%q] does not apply to %s, only to an address spelled %s (the case of the local part counts): did you mean [identity.%q]?",
				c.TableAt[id], id, s, id, s))
		}
	}
	return out
}

// checkKey refuses keys that name no flag, reserved flags, secrets and
// nested tables.
func checkKey(k string, v any, known func(string) bool) error {
	if why, ok := Reserved[k]; ok {
		return fmt.Errorf("not allowed here: %s", why)
	}
	if !known(k) {
		lower := strings.ToLower(k)
		for _, w := range secretWords {
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

// keyLines maps every key path (parts joined by NUL) to the line it is
// defined on, inline tables included.
func keyLines(data []byte) (map[string]int, error) {
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

// FlagArgs turns a value from the file into the text pflag's Set takes,
// for a flag of type typ ("string", "bool", "int", "duration",
// "stringSlice", ...): one element, or one per element for slice flags. A
// leading ~/ in a string is home (no shell expands it in the file).
func FlagArgs(v any, typ, home string) ([]string, error) {
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
			return []string{ExpandHome(v, home)}, nil
		case []any:
			out := make([]string, 0, len(v))
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("want an array of strings, not one holding %s", kind(e))
				}
				out = append(out, ExpandHome(s, home))
			}
			return out, nil
		}
		return nil, fmt.Errorf("want a string or an array of strings, not %s", kind(v))
	}
	if s, ok := v.(string); ok {
		return []string{ExpandHome(s, home)}, nil
	}
	return nil, fmt.Errorf("want a string, not %s", kind(v))
}

// ExpandHome expands a leading ~/ in s to home ("" leaves s as it is).
func ExpandHome(s, home string) string {
	if rest, ok := strings.CutPrefix(s, "~/"); ok && home != "" {
		return filepath.Join(home, rest)
	}
	return s
}

// Path returns the configuration file to read and whether the user named
// it (then it must exist): flagValue (--config), else $ACMEMAIL_CONFIG,
// else $XDG_CONFIG_HOME/acmemail/config.toml, else
// $HOME/.config/acmemail/config.toml; "" when none of them is set.
func Path(flagValue string, getenv func(string) string) (string, bool) {
	if flagValue != "" {
		return flagValue, true
	}
	if p := getenv("ACMEMAIL_CONFIG"); p != "" {
		return p, true
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "acmemail", "config.toml"), false
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "acmemail", "config.toml"), false
	}
	return "", false
}

// Load reads and parses the configuration file at path (see [Path]),
// after checking that others cannot change it ([CheckPerm]). A missing
// file that the user did not name (explicit false) is no configuration:
// nil and no error.
func Load(path string, explicit bool, known func(string) bool) (*File, error) {
	if path == "" {
		return nil, nil
	}
	f, fi, err := issuer.OpenFile(path) // a FIFO must not block
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil, nil
	}
	if err != nil {
		return nil, issuer.Usagef("configuration file: %w", err)
	}
	defer f.Close()
	if err := CheckPerm(path, fi); err != nil {
		return nil, err
	}
	data := make([]byte, 0, fi.Size())
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		data = append(data, buf[:n]...)
		if len(data) > 1<<20 {
			return nil, issuer.Usagef("configuration file %s is larger than 1 MiB", path)
		}
		if err != nil {
			break
		}
	}
	c, err := Parse(data, path, known)
	if err != nil {
		return nil, &issuer.UsageError{Err: err}
	}
	return c, nil
}

// CheckPerm refuses a file that others can change: it names commands that
// acmemail runs (hooks, password commands) and files it reads secrets
// from.
func CheckPerm(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return issuer.Usagef("configuration file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return issuer.WithHint(issuer.Usagef("configuration file %s is writable by others (mode %04o); refusing to use it", path, fi.Mode().Perm()),
			"it can name commands acmemail runs; make it yours alone: chmod go-w "+path)
	}
	if uid, foreign := foreignOwner(fi); foreign {
		return issuer.WithHint(issuer.Usagef("configuration file %s belongs to another user (uid %d); refusing to use it", path, uid),
			"use a file you own")
	}
	return nil
}

// maxNesting bounds how deep arrays and inline tables may nest.
const maxNesting = 8

// nesting is the deepest nesting of [ and { in data outside strings and
// comments (table headers count one).
func nesting(data []byte) int {
	depth, max := 0, 0
	var quote byte // the open string's quote, or 0
	comment := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '\n':
			comment = false
		case comment:
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '#':
			comment = true
		case c == '"' || c == '\'':
			quote = c
		case c == '[' || c == '{':
			depth++
			if depth > max {
				max = depth
			}
		case c == ']' || c == '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return max
}
