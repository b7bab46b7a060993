package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/issuer"
)

// knownFlags are flag names of acmemail's commands, enough for the tests:
// every key of examples/config.toml and a few more.
var knownFlags = []string{
	"agree-tos", "auth-mech", "config", "contact", "deploy-hook", "eab-hmac-file", "eab-kid", "help",
	"imap", "join", "key-type", "mailbox", "p12-password-file", "p12-profile", "password-command",
	"password-file", "reply-settle", "server", "smtp", "timeout", "usage", "user", "version",
}

func known(k string) bool { return slices.Contains(knownFlags, k) }

const exampleConfig = `
[defaults]
key-type = "rsa3072"
server = "castle-staging"
timeout = "20m"
agree-tos = true

[identity."alice@example.com"]
key-type = "p384"
imap = "imaps://imap.example.com"
contact = ["alice@example.com", "postmaster@example.com"]
password-file = "~/.config/acmemail/alice.password"
`

// TestParseConfigErrors: every mistake names the file and the line.
func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		{"unknown-in-defaults", "[defaults]\nserver = \"castle\"\n\nfrobnicate = 1\n", `c.toml:4: "frobnicate" in [defaults]: unknown key`},
		{"unknown-in-identity", "[defaults]\n[identity.\"alice@example.com\"]\nimap = \"imaps://x\"\nsmpt = \"smtps://x\"\n", `c.toml:4: "smpt" in [identity."alice@example.com"]: unknown key`},
		{"underscore", "[defaults]\n\n\nkey_type = \"p256\"\n", `c.toml:4: "key_type" in [defaults]: unknown key (did you mean "key-type"?)`},
		{"typo", "[defaults]\nsever = \"castle\"\n", `c.toml:2: "sever" in [defaults]: unknown key (did you mean "server"?)`},
		{"top-level-flag", "# comment\nkey-type = \"p256\"\n", `c.toml:2: unknown key "key-type" (put it in [defaults] or in an [identity."ADDRESS"] table)`},
		{"top-level-other", "\n\n[servers]\nx = 1\n", `c.toml:3: unknown key "servers"`},
		{"password-literal", "[identity.\"a@example.com\"]\npassword = \"hunter2\"\n", `c.toml:2: "password" in [identity."a@example.com"]: unknown key; secrets never go in the configuration file`},
		{"hmac-literal", "[defaults]\neab-hmac = \"abc\"\n", `c.toml:2: "eab-hmac" in [defaults]: unknown key; secrets never go`},
		{"reserved", "[defaults]\nconfig = \"/etc/other.toml\"\n", `c.toml:2: "config" in [defaults]: not allowed here`},
		{"nested-table", "[identity.\"a@example.com\"]\n[identity.\"a@example.com\".imap]\nhost = \"x\"\n", `c.toml:2: "imap" in [identity."a@example.com"]: want a value, not a table`},
		{"dotted-key-table", "[defaults]\nserver.url = \"x\"\n", `c.toml:2: "server" in [defaults]: want a value, not a table`},
		{"bad-address", "[identity.\"not-an-address\"]\nserver = \"castle\"\n", `c.toml:1: [identity."not-an-address"]: "not-an-address" is not a mail address`},
		{"wildcard-address", "[identity.\"*@example.com\"]\n", `c.toml:1: [identity."*@example.com"]: "*@example.com": wildcards are not allowed`},
		{"identity-not-table", "identity = 3\n", `c.toml:1: identity must hold tables`},
		{"defaults-not-table", "\ndefaults = 3\n", `c.toml:2: defaults must be a table`},
		{"same-identity-twice", "[identity.\"a@Example.com\"]\n[identity.\"a@example.COM\"]\n", `[identity."a@example.COM"]: a second table for a@example.com`},
		{"duplicate-key", "[defaults]\nserver = \"a\"\nserver = \"b\"\n", `c.toml:3:`},
		{"syntax", "[defaults]\nserver = \n", `c.toml:2:`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "c.toml", known)
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want %q", tc.text, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) = %q, want it to contain %q", tc.text, err, tc.want)
			}
		})
	}
}

// TestParse: the values, their lines, and the identities by normalized
// address.
func TestParse(t *testing.T) {
	text := exampleConfig + "\n[identity.\"Bob@Example.ORG\"]\nuser = \"bob\"\n"
	c, err := Parse([]byte(text), "c.toml", known)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != "c.toml" || len(c.Defaults) != 4 || len(c.Identities) != 2 {
		t.Fatalf("Parse = %+v", c)
	}
	if v := c.Defaults["timeout"]; v.Value != "20m" || v.Line != 5 || v.Where != "c.toml:5" {
		t.Errorf("timeout = %+v", v)
	}
	if v := c.Defaults["agree-tos"]; v.Value != true {
		t.Errorf("agree-tos = %+v", v)
	}
	if v := c.Identities["alice@example.com"]["contact"]; len(v.Value.([]any)) != 2 || v.Line != 11 {
		t.Errorf("contact = %+v", v)
	}
	if v := c.Identities["Bob@example.org"]["user"]; v.Value != "bob" || v.Where != "c.toml:15" {
		t.Errorf("Bob's user = %+v (identities %v)", v, c.Identities)
	}
	// Inline tables have lines too.
	c, err = Parse([]byte("\nidentity = {\"a@b.example\" = {server = \"x\"}}\n"), "c.toml", known)
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Identities["a@b.example"]["server"]; v.Line != 2 {
		t.Errorf("inline server = %+v", v)
	}
}

// TestSyntaxHints: the TOML mistakes people make most get a hint.
func TestSyntaxHints(t *testing.T) {
	for text, want := range map[string]string{
		"[identity.alice@example.com]\n": `an address in a table name goes in double quotes: [identity."alice@example.com"]`,
		"[defaults]\nserver = castle\n":  `a string value goes in double quotes, e.g. server = "castle"`,
	} {
		_, err := Parse([]byte(text), "c.toml", known)
		var he *issuer.HintError
		if !errors.As(err, &he) || !slices.Contains(he.Hints, want) {
			t.Errorf("Parse(%q) = %v, want the hint %q", text, err, want)
		}
	}
}

func TestOneEditAway(t *testing.T) {
	known := func(k string) bool { return k == "server" || k == "smtp" || k == "imap" || k == "key-type" }
	for k, want := range map[string]string{
		"sever": "server", "smpt": "smtp", "imapp": "imap", "key_type": "key-type", "keytype": "key-type",
		"servre": "server", "smtq": "smtp", "password": "", "imap": "", "": "",
	} {
		if got := oneEditAway(k, known); got != want {
			t.Errorf("oneEditAway(%q) = %q, want %q", k, got, want)
		}
	}
}

func TestFlagArgs(t *testing.T) {
	for _, tc := range []struct {
		v    any
		typ  string
		want []string
		err  string
	}{
		{true, "bool", []string{"true"}, ""},
		{"yes", "bool", nil, "want true or false, not a string"},
		{int64(3), "int", []string{"3"}, ""},
		{3.5, "count", nil, "want an integer, not a number"},
		{"15m", "duration", []string{"15m"}, ""},
		{int64(15), "duration", nil, `want a duration string such as "15m", not an integer`},
		{"~/a", "stringSlice", []string{"/home/u/a"}, ""},
		{[]any{"~/a", "b"}, "stringArray", []string{"/home/u/a", "b"}, ""},
		{[]any{"a", int64(1)}, "stringSlice", nil, "want an array of strings, not one holding an integer"},
		{false, "stringSlice", nil, "want a string or an array of strings, not a boolean"},
		{"~/x.password", "string", []string{"/home/u/x.password"}, ""},
		{"a~/b", "string", []string{"a~/b"}, ""},
		{[]any{"p256"}, "string", nil, "want a string, not an array"},
	} {
		got, err := FlagArgs(tc.v, tc.typ, "/home/u")
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("FlagArgs(%#v, %s) = %q, %v; want error %q", tc.v, tc.typ, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("FlagArgs(%#v, %s) = %q, %v; want %q", tc.v, tc.typ, got, err, tc.want)
		}
	}
	if got := ExpandHome("~/a", ""); got != "~/a" {
		t.Errorf("ExpandHome without a home = %q", got)
	}
}

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		flag     string
		env      map[string]string
		want     string
		explicit bool
	}{
		{"/f.toml", map[string]string{"ACMEMAIL_CONFIG": "/e.toml"}, "/f.toml", true},
		{"", map[string]string{"ACMEMAIL_CONFIG": "/e.toml", "HOME": "/h"}, "/e.toml", true},
		{"", map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, filepath.Join("/x", "acmemail", "config.toml"), false},
		{"", map[string]string{"XDG_CONFIG_HOME": "relative", "HOME": "/h"}, filepath.Join("/h", ".config", "acmemail", "config.toml"), false},
		{"", nil, "", false},
	} {
		got, explicit := Path(tc.flag, func(k string) string { return tc.env[k] })
		if got != tc.want || explicit != tc.explicit {
			t.Errorf("Path(%q, %v) = %q, %v; want %q, %v", tc.flag, tc.env, got, explicit, tc.want, tc.explicit)
		}
	}
}

func writeFile(t *testing.T, text string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(text), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return p
}

// TestLoad: a missing file is no configuration unless it was named; every
// mistake is a usage error.
func TestLoad(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "config.toml")
	if c, err := Load(missing, false, known); c != nil || err != nil {
		t.Errorf("Load(missing default) = %v, %v; want nothing", c, err)
	}
	if c, err := Load("", false, known); c != nil || err != nil {
		t.Errorf("Load(\"\") = %v, %v; want nothing", c, err)
	}
	isUsage := func(err error) bool { return errors.As(err, new(*issuer.UsageError)) }
	if _, err := Load(missing, true, known); !isUsage(err) || !strings.Contains(err.Error(), "configuration file: ") {
		t.Errorf("Load(missing named file) = %v, want a usage error", err)
	}
	path := writeFile(t, exampleConfig, 0o600)
	c, err := Load(path, true, known)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != path || c.Defaults["server"].Where != path+":4" || c.Identities["alice@example.com"] == nil {
		t.Errorf("Load = %+v", c)
	}
	bad := writeFile(t, "[defaults]\nfrobnicate = 1\n", 0o600)
	if _, err := Load(bad, false, known); !isUsage(err) || !strings.HasPrefix(err.Error(), bad+":2: ") {
		t.Errorf("Load(unknown key) = %v, want a usage error naming the line", err)
	}
	big := writeFile(t, "# "+strings.Repeat("x", 1<<20)+"\n", 0o600)
	if _, err := Load(big, true, known); !isUsage(err) || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Errorf("Load(2 MiB) = %v", err)
	}
	if _, err := Load(t.TempDir(), true, known); !isUsage(err) {
		t.Errorf("Load(a directory) = %v, want a usage error", err)
	}
}

func TestCheckPerm(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	for perm, bad := range map[os.FileMode]bool{0o600: false, 0o644: false, 0o620: true, 0o602: true} {
		path := writeFile(t, "[defaults]\n", perm)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckPerm(path, fi)
		if !bad {
			if err != nil {
				t.Errorf("mode %04o: %v", perm, err)
			}
			continue
		}
		var he *issuer.HintError
		if !errors.As(err, &he) || !errors.As(err, new(*issuer.UsageError)) || !strings.Contains(err.Error(), "writable by others") ||
			!strings.Contains(he.Hints[0], "chmod go-w "+path) {
			t.Errorf("mode %04o: %v, want a usage error with the chmod hint", perm, err)
		}
		if _, err := Load(path, true, known); err == nil {
			t.Errorf("Load of a file with mode %04o succeeded", perm)
		}
	}
}

// FuzzParseConfig: the parser of a file users (and others) write never
// panics, and every value it returns carries a real line number.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(exampleConfig))
	f.Add([]byte("[defaults]\nserver = \"a\"\nserver = \"b\"\n"))
	f.Add([]byte("[identity.\"a@b.c\".x]\ny = 1\n"))
	f.Add([]byte("identity = {\"a@b.c\" = {server = \"x\"}}\n"))
	f.Add([]byte("[defaults]\ncontact = [\"a\", [\"b\"]]\n"))
	if data, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", "config.toml")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "f.toml", known)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.toml") {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		lines := strings.Count(string(data), "\n") + 1
		check := func(m map[string]Value) {
			for k, v := range m {
				if v.Line < 1 || v.Line > lines {
					t.Errorf("key %q: line %d of %d", k, v.Line, lines)
				}
				if !known(k) {
					t.Errorf("unknown key %q accepted", k)
				}
			}
		}
		check(c.Defaults)
		for _, m := range c.Identities {
			check(m)
		}
	})
}

// BenchmarkParseConfig: parsing the two-identity example, as every run does.
func BenchmarkParseConfig(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", "config.toml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, "config.toml", known); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIdentityKeysNormalized: a table's address is normalized as the
// command line's are (the domain's case, Unicode NFC), so it applies to
// the address however either is spelled; two spellings of one address
// are two tables for it. A table whose address differs from a managed or
// given one only in the local part's case does not apply to it, and
// Lookalikes says so, with where the table is.
func TestIdentityKeysNormalized(t *testing.T) {
	text := "[identity.\"Alice@Example.TEST\"]\nuser = \"a\"\n\n[identity.\"bob@EXAMPLE.test\"]\nuser = \"b\"\n\n[identity.\"jo\u0308rg@example.test\"]\nuser = \"j\"\n"
	c, err := Parse([]byte(text), "c.toml", known)
	if err != nil {
		t.Fatal(err)
	}
	for id, user := range map[string]string{"Alice@example.test": "a", "bob@example.test": "b", "j\u00f6rg@example.test": "j"} {
		if v := c.Identities[id]["user"]; v.Value != user {
			t.Errorf("table of %+q: user = %+v (identities %v)", id, v, c.Identities)
		}
	}
	warn := c.Lookalikes([]string{"alice@example.test", "bob@example.test", "j\u00f6rg@example.test"})
	if len(warn) != 1 || !strings.HasPrefix(warn[0], `c.toml:1: [identity."Alice@example.test"]`) || !strings.Contains(warn[0], `did you mean [identity."alice@example.test"]?`) {
		t.Errorf("Lookalikes = %q; want one warning, for Alice's table at line 1", warn)
	}
	if warn := c.Lookalikes([]string{"Alice@example.test", "carol@example.test"}); len(warn) != 0 {
		t.Errorf("Lookalikes of the tables' own addresses = %q", warn)
	}
	c, err = Parse([]byte(text+"[identity.\"alice@example.test\"]\n"), "c.toml", known)
	if err != nil {
		t.Fatal(err)
	}
	if warn := c.Lookalikes([]string{"alice@example.test"}); len(warn) != 0 {
		t.Errorf("Lookalikes of an address with a table of its own = %q", warn)
	}
	_, err = Parse([]byte("[identity.\"j\u00f6rg@example.test\"]\n[identity.\"jo\u0308rg@example.test\"]\n"), "c.toml", known)
	if err == nil || !strings.Contains(err.Error(), "a second table") {
		t.Errorf("NFC and NFD tables of one address: %v", err)
	}
}
