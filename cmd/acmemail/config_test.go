package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// settingsFor parses args for the obtain command of a real root, with the
// environment env, and applies the settings as a run would.
// settingsView is what the tests look at of the flags after the settings.
type settingsView struct {
	keyType, server, imap, passwordFile, passwordCommand string
	timeout                                              time.Duration
	contact                                              []string
	agreeTOS                                             bool
}

func settingsFor(t *testing.T, env map[string]string, args ...string) (*settingsView, error) {
	t.Helper()
	g := &globals{getenv: func(k string) string { return env[k] }, stderr: io.Discard}
	root := newRootCmd(g)
	cmd, rest, err := root.Find(args)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatal(err)
	}
	if err := g.settingsPreRun(cmd, cmd.Flags().Args()); err != nil {
		return nil, err
	}
	v, _ := cmd.Flags().GetString("key-type")
	timeout, _ := cmd.Flags().GetDuration("timeout")
	contact, _ := cmd.Flags().GetStringSlice("contact")
	agree, _ := cmd.Flags().GetBool("agree-tos")
	server, _ := cmd.Flags().GetString("server")
	imap, _ := cmd.Flags().GetString("imap")
	pw, _ := cmd.Flags().GetString("password-file")
	pwc, _ := cmd.Flags().GetString("password-command")
	return &settingsView{keyType: v, timeout: timeout, contact: contact, agreeTOS: agree, server: server, imap: imap, passwordFile: pw, passwordCommand: pwc}, nil
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const precedenceConfig = `
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

// TestConfigPrecedence: command line > environment > identity > defaults.
func TestConfigPrecedence(t *testing.T) {
	path := writeConfig(t, precedenceConfig)
	env := map[string]string{"ACMEMAIL_CONFIG": path, "HOME": "/home/alice"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for k, v := range env {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		keyType string
	}{
		{"defaults", env, []string{"obtain", "bob@example.com"}, "rsa3072"},
		{"identity-over-defaults", env, []string{"obtain", "alice@example.com"}, "p384"},
		{"identity-domain-case", env, []string{"obtain", "alice@EXAMPLE.com"}, "p384"},
		{"env-over-identity", with("ACMEMAIL_KEY_TYPE", "p256"), []string{"obtain", "alice@example.com"}, "p256"},
		{"flag-over-env", with("ACMEMAIL_KEY_TYPE", "p256"), []string{"obtain", "--key-type", "rsa4096", "alice@example.com"}, "rsa4096"},
		{"no-config", map[string]string{}, []string{"obtain", "alice@example.com"}, "rsa2048"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := settingsFor(t, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if o.keyType != tc.keyType {
				t.Errorf("key-type = %q, want %q", o.keyType, tc.keyType)
			}
		})
	}
	o, err := settingsFor(t, env, "obtain", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if o.server != "castle-staging" || o.timeout.Minutes() != 20 || !o.agreeTOS || o.imap != "imaps://imap.example.com" {
		t.Errorf("settings from the file = %+v", o)
	}
	if len(o.contact) != 2 || o.contact[1] != "postmaster@example.com" {
		t.Errorf("contact = %q", o.contact)
	}
	if o.passwordFile != "/home/alice/.config/acmemail/alice.password" {
		t.Errorf("password-file = %q, want ~ expanded", o.passwordFile)
	}
	// Another address gets only the defaults.
	if o, _ := settingsFor(t, env, "obtain", "bob@example.com"); o.imap != "" {
		t.Errorf("bob got alice's imap %q", o.imap)
	}
	// Environment variables for every flag, slices and booleans too.
	o, err = settingsFor(t, map[string]string{"ACMEMAIL_CONTACT": "a@example.com,b@example.com", "ACMEMAIL_AGREE_TOS": "true", "ACMEMAIL_TIMEOUT": "90s"}, "obtain", "x@example.com")
	if err != nil || len(o.contact) != 2 || !o.agreeTOS || o.timeout.Seconds() != 90 {
		t.Errorf("from the environment: %+v, %v", o, err)
	}
	// The --config flag beats ACMEMAIL_CONFIG.
	other := writeConfig(t, "[defaults]\nkey-type = \"p256\"\n")
	if o, _ := settingsFor(t, env, "obtain", "--config", other, "bob@example.com"); o.keyType != "p256" {
		t.Errorf("--config: key-type %q, want p256", o.keyType)
	}
}

// TestConfigValueErrors: a value of the wrong type, or one the flag
// refuses, names the file, the line and the flag; a bad environment value
// names the variable.
func TestConfigValueErrors(t *testing.T) {
	cases := []struct{ text, want string }{
		{"[defaults]\n\ntimeout = 15\n", `:3: timeout: want a duration string such as "15m", not an integer`},
		{"[defaults]\nagree-tos = \"yes\"\n", `:2: agree-tos: want true or false, not a string`},
		{"[defaults]\ntimeout = \"soon\"\n", `:2: timeout: time: invalid duration "soon"`},
		{"[defaults]\ncontact = [1, 2]\n", `:2: contact: want an array of strings`},
		{"[identity.\"a@example.com\"]\nkey-type = [\"p256\"]\n", `:2: key-type: want a string, not an array`},
	}
	for _, tc := range cases {
		_, err := settingsFor(t, map[string]string{"ACMEMAIL_CONFIG": writeConfig(t, tc.text)}, "obtain", "a@example.com")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: error %v, want %q", tc.text, err, tc.want)
		}
		if _, ok := err.(*usageError); !ok {
			t.Errorf("config %q: error %T, want a usage error (exit 2)", tc.text, err)
		}
	}
	_, err := settingsFor(t, map[string]string{"ACMEMAIL_TIMEOUT": "soon"}, "obtain", "a@example.com")
	if err == nil || !strings.Contains(err.Error(), `ACMEMAIL_TIMEOUT="soon"`) {
		t.Errorf("bad environment value: %v", err)
	}
}

func TestConfigPermissions(t *testing.T) {
	path := writeConfig(t, "[defaults]\n")
	if err := os.Chmod(path, 0o622); err != nil {
		t.Fatal(err)
	}
	_, err := settingsFor(t, map[string]string{"ACMEMAIL_CONFIG": path}, "obtain", "a@example.com")
	if err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("group-writable config: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // readable is fine: it holds no secrets
		t.Fatal(err)
	}
	if _, err := settingsFor(t, map[string]string{"ACMEMAIL_CONFIG": path}, "obtain", "a@example.com"); err != nil {
		t.Errorf("world-readable config: %v", err)
	}
	// A named file must exist; the default one may be missing.
	if _, err := settingsFor(t, map[string]string{"ACMEMAIL_CONFIG": path + ".missing"}, "obtain", "a@example.com"); err == nil {
		t.Error("a missing --config/ACMEMAIL_CONFIG file is not an error")
	}
	if _, err := settingsFor(t, map[string]string{"XDG_CONFIG_HOME": t.TempDir()}, "obtain", "a@example.com"); err != nil {
		t.Errorf("missing default config: %v", err)
	}
	// XDG_CONFIG_HOME is where the default file lives.
	xdg := t.TempDir()
	os.MkdirAll(filepath.Join(xdg, "acmemail"), 0o700)
	os.WriteFile(filepath.Join(xdg, "acmemail", "config.toml"), []byte("[defaults]\nkey-type = \"p384\"\n"), 0o600)
	if o, err := settingsFor(t, map[string]string{"XDG_CONFIG_HOME": xdg, "HOME": "/nonexistent"}, "obtain", "a@example.com"); err != nil || o.keyType != "p384" {
		t.Errorf("$XDG_CONFIG_HOME/acmemail/config.toml: %+v, %v", o, err)
	}
}

// TestSettingsForIdentity: a command that acts on several addresses gets
// each one's table in turn, with the command line and environment kept.
func TestSettingsForIdentity(t *testing.T) {
	path := writeConfig(t, precedenceConfig+`
[identity."bob@example.com"]
imap = "imaps://bob.example.com"
`)
	env := map[string]string{"ACMEMAIL_CONFIG": path, "ACMEMAIL_TIMEOUT": "1m"}
	g := &globals{getenv: func(k string) string { return env[k] }}
	root := newRootCmd(g)
	cmd, _, _ := root.Find([]string{"obtain"})
	if err := cmd.ParseFlags([]string{"--server", "https://ca.example/dir"}); err != nil {
		t.Fatal(err)
	}
	if err := g.settingsPreRun(cmd, nil); err != nil {
		t.Fatal(err)
	}
	get := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
	for _, step := range []struct{ email, keyType, imap, contact string }{
		{"alice@example.com", "p384", "imaps://imap.example.com", "[alice@example.com,postmaster@example.com]"},
		{"bob@example.com", "rsa3072", "imaps://bob.example.com", "[]"},
		{"carol@example.com", "rsa3072", "", "[]"},
		{"alice@EXAMPLE.com", "p384", "imaps://imap.example.com", "[alice@example.com,postmaster@example.com]"},
	} {
		if err := g.settingsForIdentity(cmd, step.email); err != nil {
			t.Fatal(err)
		}
		if get("key-type") != step.keyType || get("imap") != step.imap || get("contact") != step.contact {
			t.Errorf("%s: key-type %s imap %q contact %s; want %s %q %s", step.email, get("key-type"), get("imap"), get("contact"), step.keyType, step.imap, step.contact)
		}
		if get("server") != "https://ca.example/dir" || get("timeout") != "1m0s" {
			t.Errorf("%s: the command line or environment was overridden: server %s timeout %s", step.email, get("server"), get("timeout"))
		}
	}
}

// BenchmarkSettings: the whole per-run cost of the mechanism: collect the
// flag names, read and parse the file, apply environment and file.
func BenchmarkSettings(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "config.toml"))
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "config.toml")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		b.Fatal(err)
	}
	env := map[string]string{"ACMEMAIL_CONFIG": p, "ACMEMAIL_TIMEOUT": "1m"}
	b.ReportAllocs()
	for b.Loop() {
		g := &globals{getenv: func(k string) string { return env[k] }}
		root := newRootCmd(g)
		cmd, _, _ := root.Find([]string{"obtain"})
		if err := cmd.ParseFlags(nil); err != nil {
			b.Fatal(err)
		}
		if err := g.settingsPreRun(cmd, []string{"alice@example.com"}); err != nil {
			b.Fatal(err)
		}
	}
}
