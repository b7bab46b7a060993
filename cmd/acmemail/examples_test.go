package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cfgfile "github.com/acmemail/acmemail/cmd/internal/config"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/acmemail/acmemail/acmemail/sandbox"
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
	known := cfgfile.FlagNames(newRootCmd(g))
	c, err := g.loadConfig(path, func(k string) bool { return known[k] })
	if err != nil {
		t.Fatalf("examples/config.toml: %v", err)
	}
	if len(c.Identities) != 2 {
		t.Fatalf("examples/config.toml has %d identities, want 2", len(c.Identities))
	}
	env := map[string]string{"ACMEMAIL_CONFIG": path, "HOME": "/home/u"}
	type want struct{ server, keyType, imap, passwordFile, passwordCommand string }
	for addr, w := range map[string]want{
		"alice@example.com": {"castle", "rsa2048", "imaps://imap.example.com:993", "/home/u/.config/acmemail/alice.password", ""},
		"bob@example.org":   {"https://acme.example.org/directory", "p256", "imap://mail.example.org:143", "", "pass show mail/bob@example.org"},
	} {
		if c.Identities[addr] == nil {
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
		hook, _ := settingsFlag(t, env, "obtain", addr, "deploy-hook")
		if (addr == "alice@example.com") != strings.Contains(hook, "$ACMEMAIL_P12_PATH") {
			t.Errorf("%s: deploy-hook %q", addr, hook)
		}
		// Every setting must also be valid for the commands: obtain's and
		// renew's own checks of the values pass (as acmemail config runs
		// them).
		g := &globals{getenv: func(k string) string { return env[k] }, config: c}
		if err := g.checkSettings(addr); err != nil {
			t.Errorf("%s: the example's values are refused: %v", addr, err)
		}
	}
}

// TestExampleScripts runs the shell examples against the sandbox.
func TestExampleScripts(t *testing.T) {
	t.Parallel()
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

// TestConfigReachesObtainAndRenew: an identity's table supplies what
// obtain needs (here the mail password file), and renew, which goes over
// every managed address, applies each one's table in turn (its password
// file wins over the one recorded with the certificate).
func TestConfigReachesObtainAndRenew(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	delete(env, "ACMEMAIL_PASSWORD")
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "alice.password")
	if err := os.WriteFile(pwFile, []byte("alice-secret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	text := fmt.Sprintf("[defaults]\nagree-tos = true\n\n[identity.%q]\npassword-file = %q\n", "alice@example.test", pwFile)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	args := obtainArgs(w)
	// Without the file there is no password (and no terminal in a test).
	if r := runCLI(t, env, args...); r.code != exitUsage || !strings.Contains(r.stderr, "password") {
		t.Fatalf("obtain without a password: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	env["ACMEMAIL_CONFIG"] = cfg
	if r := runCLI(t, env, args...); r.code != 0 {
		t.Fatalf("obtain with the identity's password-file: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	// The table now names another file; the one obtain recorded is gone.
	pwFile2 := filepath.Join(dir, "alice2.password")
	if err := os.WriteFile(pwFile2, []byte("alice-secret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text = fmt.Sprintf("[defaults]\nagree-tos = true\n\n[identity.%q]\npassword-file = %q\n", "alice@example.test", pwFile2)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(pwFile); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, env, "renew", "--force")
	if r.code != 0 || !strings.Contains(r.stdout, "renewed alice@example.test") {
		t.Fatalf("renew --force with the identity's password-file: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if st := w.Stats(); st.CertificatesIssued != 2 {
		t.Errorf("sandbox issued %d certificates, want 2", st.CertificatesIssued)
	}
	// Without the configuration, renew uses the file recorded last (the
	// table's); with it gone too there is no password.
	delete(env, "ACMEMAIL_CONFIG")
	if err := os.Remove(pwFile2); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, env, "renew", "--force"); r.code == 0 || !strings.Contains(r.stderr, pwFile2) {
		t.Errorf("renew --force without the configuration: exit %d, want a failure reading %s:\n%s", r.code, pwFile2, r.stderr)
	}
}

// settingsFlag is one flag's value for COMMAND ADDR after the settings.
func settingsFlag(t *testing.T, env map[string]string, command, addr, flag string) (string, error) {
	t.Helper()
	g := &globals{getenv: func(k string) string { return env[k] }}
	cmd, _, err := newRootCmd(g).Find([]string{command})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if err := g.settingsPreRun(cmd, []string{addr}); err != nil {
		return "", err
	}
	f := cmd.Flags().Lookup(flag)
	if f == nil {
		t.Fatalf("%s has no --%s", command, flag)
	}
	return f.Value.String(), nil
}
