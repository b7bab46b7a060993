package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/spf13/cobra"
)

// copyExample copies a file of examples/ into a private temporary file (a
// checkout may leave it group-writable, which the loader rightly refuses).
func copyExample(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(name))
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExampleConfig loads examples/config.toml with the real loader and
// checks what each identity gets, so the example cannot rot.
func TestExampleConfig(t *testing.T) {
	path := copyExample(t, "config.toml")
	g := &globals{getenv: func(k string) string { return map[string]string{"HOME": "/home/u"}[k] }}
	known := allFlagNames(newRootCmd(g))
	c, err := g.loadConfig(path, func(k string) bool { return known[k] })
	if err != nil {
		t.Fatalf("examples/config.toml: %v", err)
	}
	if len(c.identities) != 2 {
		t.Fatalf("examples/config.toml has %d identities, want 2", len(c.identities))
	}
	env := map[string]string{"ACMEMAIL_CONFIG": path, "HOME": "/home/u"}
	type want struct{ server, keyType, imap, passwordFile, passwordCommand string }
	for addr, w := range map[string]want{
		"alice@example.com": {"castle", "rsa2048", "imaps://imap.example.com:993", "/home/u/.config/acmemail/alice.password", ""},
		"bob@example.org":   {"https://acme.example.org/directory", "p256", "imap://mail.example.org:143", "", "pass show mail/bob@example.org"},
	} {
		if c.identities[addr] == nil {
			t.Errorf("no [identity.%q] in examples/config.toml", addr)
			continue
		}
		o, err := settingsFor(t, env, "obtain", addr)
		if err != nil {
			t.Fatalf("obtain %s with examples/config.toml: %v", addr, err)
		}
		if o.server != w.server || o.keyType != w.keyType || o.imap != w.imap || o.passwordFile != w.passwordFile || o.passwordCommand != w.passwordCommand {
			t.Errorf("%s gets %+v, want %+v", addr, o, w)
		}
		// Every setting must also be valid for the command: obtain's own
		// checks of the values pass.
		id, err := settingsIdentity(t, env, addr)
		if err != nil {
			t.Errorf("%s: the example's values are refused: %v", addr, err)
		} else if id.email != addr {
			t.Errorf("identity %q, want %q", id.email, addr)
		}
	}
}

// settingsIdentity applies the settings for obtain ADDR and validates them
// as obtain does.
func settingsIdentity(t *testing.T, env map[string]string, addr string) (*identity, error) {
	t.Helper()
	g := &globals{getenv: func(k string) string { return env[k] }}
	var o obtainOptions
	cmd := &cobra.Command{Use: "obtain"}
	o.addFlags(cmd.Flags())
	if err := cmd.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if err := g.settingsPreRun(cmd, []string{addr}); err != nil {
		return nil, err
	}
	return o.identity(addr)
}

// TestExampleScripts runs the shell examples against the sandbox.
func TestExampleScripts(t *testing.T) {
	examples, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/examples",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("ACMEMAIL_HOME", e.WorkDir+"/home")
			e.Setenv("EXAMPLES", examples)
			return nil
		},
	})
}
