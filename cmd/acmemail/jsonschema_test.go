package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// jsonSchemas names the schema (testdata/schema/NAME.schema.json) of
// each command's --json output, by the command's path after "acmemail".
// Every schema forbids properties it does not list, so a new field is
// documented here (and in the README's "Files and JSON") or fails.
var jsonSchemas = map[string]string{
	"obtain":             "obtain",
	"renew":              "renew",
	"list":               "list",
	"show":               "show",
	"revoke":             "revoke",
	"export":             "export",
	"account register":   "account",
	"account show":       "account",
	"account rollover":   "account",
	"account deactivate": "account",
	"config":             "config",
	"doctor":             "doctor",
	"forget":             "forget",
	"server obtain":      "server-certificate",
	"server show":        "server-certificate",
	"server list":        "server-list",
	"server renew":       "server-renew",
	"server revoke":      "server-revoke",
	"server doctor":      "doctor",
	"server export":      "server-export",
}

// jsonCommands are the paths (after "acmemail") of the commands that have
// a --json flag.
func jsonCommands() []string {
	var out []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("json") != nil {
			out = append(out, strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), "acmemail"), " "))
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(&globals{getenv: func(string) string { return "" }}))
	slices.Sort(out)
	return out
}

// TestEveryJSONOutputHasASchema: a command with --json cannot be added
// without a schema for its output (and the schema test running it).
func TestEveryJSONOutputHasASchema(t *testing.T) {
	t.Parallel()
	cmds := jsonCommands()
	if len(cmds) < len(jsonSchemas) {
		t.Errorf("only %d commands have --json (%q), %d schemas are listed", len(cmds), cmds, len(jsonSchemas))
	}
	for _, c := range cmds {
		name, ok := jsonSchemas[c]
		if !ok {
			t.Errorf("acmemail %s has --json but no schema: add testdata/schema/NAME.schema.json, name it in jsonSchemas and run it in TestJSONSchemas", c)
			continue
		}
		if _, err := os.Stat(filepath.Join("testdata", "schema", name+".schema.json")); err != nil {
			t.Errorf("acmemail %s: %v", c, err)
		}
	}
	for c := range jsonSchemas {
		if !slices.Contains(cmds, c) {
			t.Errorf("jsonSchemas names %q, which has no --json flag", c)
		}
	}
}

// schemaSet compiles the schemas of testdata/schema.
type schemaSet struct {
	c       *jsonschema.Compiler
	dir     string
	schemas map[string]*jsonschema.Schema
}

func newSchemaSet(t *testing.T) *schemaSet {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "schema"))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	return &schemaSet{c: c, dir: dir, schemas: map[string]*jsonschema.Schema{}}
}

// validate checks out, the --json output of the command cmd (a key of
// jsonSchemas), against its schema.
func (s *schemaSet) validate(t *testing.T, cmd, out string) error {
	t.Helper()
	name, ok := jsonSchemas[cmd]
	if !ok {
		t.Fatalf("no schema for %q", cmd)
	}
	sch, ok := s.schemas[name]
	if !ok {
		var err error
		if sch, err = s.c.Compile(filepath.Join(s.dir, name+".schema.json")); err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		s.schemas[name] = sch
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return sch.Validate(inst)
}

// TestJSONSchemas runs every command that has --json against a sandbox
// world, in the shapes of success and of typical failures (a broken
// address, a failed renewal, a refused revocation, a failing doctor
// check), and validates each output against its schema; every command of
// jsonSchemas must have been run.
func TestJSONSchemas(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	const bob, carol = "bob@example.test", "carol@example.test"
	if err := w.AddUser(bob, "alice-secret-pw"); err != nil {
		t.Fatal(err)
	}
	forBob := func(args []string) []string { return append(args[:len(args)-1:len(args)-1], bob) }
	out := t.TempDir()
	pemDir := filepath.Join(out, "pem")
	if err := os.Mkdir(pemDir, 0o700); err != nil {
		t.Fatal(err)
	}
	server := []string{"--server", w.DirectoryURL}
	s := newSchemaSet(t)
	ran := map[string]bool{}
	check := func(cmd string, wantCode int, args ...string) {
		t.Helper()
		ran[cmd] = true
		r := runCLI(t, env, args...)
		if r.code != wantCode {
			t.Errorf("%s: exit %d, want %d\nstderr:\n%s", strings.Join(args, " "), r.code, wantCode, r.stderr)
		}
		if err := s.validate(t, cmd, r.stdout); err != nil {
			t.Errorf("%s: the output does not match testdata/schema/%s.schema.json: %#v\noutput:\n%s", strings.Join(args, " "), jsonSchemas[cmd], err, r.stdout)
		}
	}

	check("obtain", 0, obtainArgs(w, "--json")...)                    // issued
	check("obtain", 0, obtainArgs(w, "--json")...)                    // kept
	check("obtain", 0, forBob(obtainArgs(w, "--json", "--split"))...) // a pair issued
	check("obtain", 0, forBob(obtainArgs(w, "--json", "--split"))...) // a pair kept
	// A mail server's certificate, through the world's DNS (RFC 2136):
	// renew and list --json show it with the addresses.
	for _, kv := range w.DNSUpdateEnv() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	const host = "mail.example.test"
	check("server obtain", 0, "server", "obtain", "--server", w.DirectoryURL, "--dns", "rfc2136", "--dns-resolver", w.DNSAddr,
		"--service", "imaps", "--service", "submission", "--json", host)
	check("server show", 0, "server", "show", "--json", host)
	check("server list", 0, "server", "list", "--json")
	check("server export", 0, "server", "export", "--json", "--out", out, host)
	check("server renew", 0, "server", "renew", "--json")                  // not due
	check("server renew", 0, "server", "renew", "--json", "--force", host) // renewed
	check("server doctor", exitError, "server", "doctor", "--json", "--timeout", "20s",
		"--connect", "imaps=127.0.0.1:1", "--connect", "submission=127.0.0.1:1", host) // the services do not answer
	check("list", 0, "list", "--json")
	check("renew", 0, "renew", "--json")                 // not due
	check("renew", 0, "renew", "--json", "--force", bob) // renewed, a pair
	check("export", 0, "export", "--json", "--out", filepath.Join(out, "a.p12"), "alice@example.test")
	check("export", 0, "export", "--json", "--format", "pem", "--out", pemDir, bob)
	check("config", 0, "config", "--json", "alice@example.test")
	check("account show", 0, append([]string{"account", "show", "--json"}, server...)...)
	check("account register", 0, append([]string{"account", "register", "--json", "--agree-tos"}, server...)...)
	check("account rollover", 0, append([]string{"account", "rollover", "--json"}, server...)...)
	check("doctor", 0, doctorArgs(w)...)
	check("doctor", exitError, doctorArgs(w, "--mailbox", "NoSuchFolder")...) // a failing check
	check("show", 0, "show", "--json", "alice@example.test")
	check("show", 0, "show", "--json", bob)
	check("revoke", 0, "revoke", "--json", bob)
	check("revoke", exitCA, "revoke", "--json", bob) // already revoked
	check("show", 0, "show", "--json", bob)          // revoked
	check("server revoke", 0, "server", "revoke", "--json", host)
	check("server revoke", exitCA, "server", "revoke", "--json", host) // already revoked
	check("server show", 0, "server", "show", "--json", host)          // revoked

	// A broken address and a pending one.
	carolDir := filepath.Join(env["ACMEMAIL_HOME"], "certificates", carol)
	if err := os.MkdirAll(carolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(carolDir, "chain.pem"), []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	check("list", exitError, "list", "--json")
	check("show", exitError, "show", "--json", carol)
	check("renew", exitSomeFailed, "renew", "--json")
	check("forget", 0, "forget", "--json", "--yes", bob)
	check("forget", 0, "forget", "--json", "--yes", carol) // broken
	check("account deactivate", 0, append([]string{"account", "deactivate", "--json", "--yes"}, server...)...)

	for c := range jsonSchemas {
		if !ran[c] {
			t.Errorf("acmemail %s --json is not run here", c)
		}
	}
}

// TestJSONSchemasRefuse: the schemas are strict where the vocabulary is:
// a property they do not list, a serial in lower case or without its
// leading zero, a time with a fraction or an offset are refused.
func TestJSONSchemasRefuse(t *testing.T) {
	t.Parallel()
	s := newSchemaSet(t)
	good := `{"email":"alice@example.test","status":"not-due","renewal_due":"2026-12-06T05:00:00Z"}`
	if err := s.validate(t, "renew", "["+good+"]"); err != nil {
		t.Fatalf("a good renew outcome is refused: %v", err)
	}
	for _, bad := range []string{
		`{"email":"alice@example.test","status":"not-due","renew_at":"2026-12-06T05:00:00Z"}`,
		`{"email":"alice@example.test","status":"not-due","renewal_due":"2026-12-06T05:00:00.123456789Z"}`,
		`{"email":"alice@example.test","status":"not-due","renewal_due":"2026-12-06T06:00:00+01:00"}`,
		`{"email":"alice@example.test","status":"renewed","serial":"67b2f535"}`,
		`{"email":"alice@example.test","status":"renewed","serial":"67B2F53"}`,
		`{"email":"alice@example.test","status":"done"}`,
	} {
		if err := s.validate(t, "renew", "["+bad+"]"); err == nil {
			t.Errorf("renew schema accepts %s", bad)
		}
	}
}
