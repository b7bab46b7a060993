package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// firstError is the first "acmemail: error:" line of a run's stderr.
func firstError(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "acmemail: error: ") {
			return l
		}
	}
	return ""
}

// TestConfigCheckSameAsRun: acmemail config refuses exactly the settings
// obtain (or renew) refuses, from the same file and environment, with the
// same first error line and the same file:line (in the error or its
// hint): wrong TOML types, values the flag refuses, values obtain's
// profile check refuses, and combinations of them. The runs stop before
// anything is read or sent.
func TestConfigCheckSameAsRun(t *testing.T) {
	const who = "a@example.com"
	cases := []struct {
		name string
		file string            // config.toml
		env  map[string]string // more variables
		run  string            // the command that refuses it: obtain (default) or renew
		want string            // in the error line
		at   string            // in stderr: where the bad value is
	}{
		{"key-type integer", "[defaults]\nkey-type = 5\n", nil, "", `key-type: want a string, not an integer`, "config.toml:2"},
		{"agree-tos string", "[defaults]\nagree-tos = \"yes\"\n", nil, "", `agree-tos: want true or false, not a string`, "config.toml:2"},
		{"timeout integer", "[defaults]\n\ntimeout = 15\n", nil, "", `timeout: want a duration string`, "config.toml:3"},
		{"mail-wait unparsable", "[defaults]\nmail-wait = \"soon\"\n", nil, "", `mail-wait: time: invalid duration "soon"`, "config.toml:2"},
		{"contact of numbers", "[defaults]\ncontact = [1, 2]\n", nil, "", `contact: want an array of strings`, "config.toml:2"},
		{"identity key-type array", "[identity.\"a@example.com\"]\nkey-type = [\"p256\"]\n", nil, "", `key-type: want a string, not an array`, "config.toml:2"},
		{"key-type unknown", "[defaults]\nkey-type = \"rsa1024\"\n", nil, "", `--key-type "rsa1024": choose rsa2048`, "config.toml:2"},
		{"key-type ed25519", "[identity.\"a@example.com\"]\nkey-type = \"ed25519\"\n", nil, "", `--key-type "ed25519"`, "config.toml:2"},
		{"usage", "[defaults]\nusage = \"signing\"\n", nil, "", `--usage: `, "config.toml:2"},
		{"p12-profile", "[defaults]\np12-profile = \"ancient\"\n", nil, "", `--p12-profile "ancient": choose modern or legacy`, "config.toml:2"},
		{"join", "[defaults]\njoin = \"glue\"\n", nil, "", `--join`, "config.toml:2"},
		{"server http", "[defaults]\nserver = \"http://ca.example/dir\"\n", nil, "", `--server: http://ca.example/dir: ACME needs HTTPS`, "config.toml:2"},
		{"server unknown", "[defaults]\nserver = \"nowhere\"\n", nil, "", `--server "nowhere" is neither a directory URL nor a known name`, "config.toml:2"},
		{"auth-mech", "[defaults]\nauth-mech = \"cram-md5\"\n", nil, "", `--auth-mech: unknown authentication mechanism`, "config.toml:2"},
		{"dns-resolver", "[defaults]\ndns-resolver = \"192.0.2.53\"\n", nil, "", `--dns-resolver "192.0.2.53": want HOST:PORT`, "config.toml:2"},
		{"split with usage", "[defaults]\nsplit = true\nusage = \"sign\"\n", nil, "", `--split: a signing and an encryption certificate do not go with usage sign`, "config.toml:2"},
		{"also the address itself", "[identity.\"a@example.com\"]\nalso = [\"A@example.com\"]\n", nil, "", `--also A@example.com: the address is already in the certificate`, "config.toml:2"},
		{"also-imap without also", "[defaults]\nalso-imap = [\"b@example.com=imaps://imap.example.com\"]\n", nil, "", `b@example.com is not an --also address`, "config.toml:2"},
		{"also-smtp without also-imap", "[defaults]\nalso = [\"b@example.com\"]\nalso-smtp = [\"b@example.com=smtps://smtp.example.com\"]\n", nil, "", `that address has no --also-imap`, "config.toml:3"},
		{"also password twice", "[defaults]\nalso = [\"b@example.com\"]\nalso-imap = [\"b@example.com=imaps://imap.example.com\"]\nalso-password-file = [\"b@example.com=/pw\"]\nalso-password-command = [\"b@example.com=pass b\"]\n", nil, "",
			`--also-password-file and --also-password-command both give the mail password for b@example.com`, "config.toml:5"},
		{"manual and pipe", "[defaults]\nmanual = true\npipe = true\n", nil, "", `--manual and --pipe exclude each other`, "config.toml:2"},
		{"manual with the sandbox", "[defaults]\nmanual = true\nserver = \"sandbox\"\n", nil, "", `--manual and --pipe need a mailbox you can reach`, "config.toml:2"},
		{"yes without manual", "[defaults]\nyes = true\n", nil, "", `--challenge-file and --yes need --manual`, "config.toml:2"},
		{"also with pipe", "[defaults]\npipe = true\nalso = [\"b@example.com\"]\n", nil, "", `--also needs IMAP and SMTP`, "config.toml:3"},
		{"sandbox knob", "[defaults]\nserver = \"sandbox\"\nsandbox-token-length = 5\n", nil, "", `--sandbox-token-length 5: choose 22, 32 or 43`, "config.toml:3"},
		{"environment key-type", "[defaults]\n", map[string]string{"ACMEMAIL_KEY_TYPE": "rsa1024"}, "", `--key-type "rsa1024"`, "ACMEMAIL_KEY_TYPE"},
		{"environment agree-tos", "[defaults]\n", map[string]string{"ACMEMAIL_AGREE_TOS": "yes"}, "", `ACMEMAIL_AGREE_TOS="yes": `, "ACMEMAIL_AGREE_TOS"},
		{"renew parallel", "[defaults]\nparallel = 0\n", nil, "renew", `--parallel 0: must be at least 1`, "config.toml:2"},
		{"renew parallel string", "[defaults]\nparallel = \"many\"\n", nil, "renew", `parallel: want an integer, not a string`, "config.toml:2"},
		{"renew force string", "[defaults]\nforce = \"yes\"\n", nil, "renew", `force: want true or false, not a string`, "config.toml:2"},
		{"renew auth-mech", "[defaults]\nauth-mech = \"cram-md5\"\n", nil, "renew", `--auth-mech: unknown authentication mechanism`, "config.toml:2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "config.toml")
			if err := os.WriteFile(cfg, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			// No P12 password and no mail password: a run that got past
			// its settings would stop at the prompt, before the network.
			env := map[string]string{"ACMEMAIL_HOME": filepath.Join(dir, "home"), "ACMEMAIL_CONFIG": cfg, "HOME": dir}
			for k, v := range tc.env {
				env[k] = v
			}
			runArgs := []string{"obtain", who}
			if tc.run == "renew" {
				runArgs = []string{"renew"}
			}
			ran := runCLI(t, env, runArgs...)
			line := firstError(ran.stderr)
			if ran.code != exitUsage || !strings.Contains(line, tc.want) || !strings.Contains(ran.stderr, tc.at) {
				t.Fatalf("%s: exit %d, want %d, an error with %q and %s:\n%s", runArgs[0], ran.code, exitUsage, tc.want, tc.at, ran.stderr)
			}
			for _, args := range [][]string{{"config", who}, {"config"}, {"config", "--json", who}} {
				got := runCLI(t, env, args...)
				if got.code != ran.code || firstError(got.stderr) != line || !strings.Contains(got.stderr, tc.at) {
					t.Errorf("%s: exit %d, %q; want exit %d, %q as %s says, and %s:\n%s",
						strings.Join(args, " "), got.code, firstError(got.stderr), ran.code, line, runArgs[0], tc.at, got.stderr)
				}
			}
		})
	}
}

// TestConfigCheckPasses: settings every command takes pass acmemail config,
// for an address with a table, one without, and without an address, and
// examples/config.toml passes it.
func TestConfigCheckPasses(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	text := precedenceConfig + "usage = \"sign\"\nsplit = false\nparallel = 4\nauth-mech = \"xoauth2\"\ndns-resolver = \"192.0.2.53:53\"\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{cfg, copyExample(t, "config.toml")} {
		env := map[string]string{"ACMEMAIL_HOME": filepath.Join(dir, "home"), "ACMEMAIL_CONFIG": path, "HOME": dir, "ACMEMAIL_TIMEOUT": "1m"}
		for _, args := range [][]string{{"config"}, {"config", "alice@example.com"}, {"config", "bob@example.org"}, {"config", "carol@example.net"}} {
			if r := runCLI(t, env, args...); r.code != 0 || r.stderr != "" {
				t.Errorf("%s with %s: exit %d\n%s", strings.Join(args, " "), filepath.Base(filepath.Dir(path)), r.code, r.stderr)
			}
		}
	}
}

// TestConfigCheckNamesIdentity: acmemail config without EMAIL checks each
// identity's table too, and says whose settings the error is in.
func TestConfigCheckNamesIdentity(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	text := "[defaults]\nusage = \"sign\"\n\n[identity.\"alice@example.com\"]\nkey-type = \"p384\"\n\n[identity.\"bob@example.com\"]\nsplit = true\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ACMEMAIL_HOME": filepath.Join(dir, "home"), "ACMEMAIL_CONFIG": cfg}
	ran := runCLI(t, env, "obtain", "bob@example.com")
	r := runCLI(t, env, "config")
	if r.code != exitUsage || firstError(r.stderr) != firstError(ran.stderr) || !strings.Contains(r.stderr, "hint: these are the settings of bob@example.com") {
		t.Errorf("config: exit %d\n%s\nwant obtain bob's error:\n%s", r.code, r.stderr, ran.stderr)
	}
	if r := runCLI(t, env, "config", "alice@example.com"); r.code != 0 {
		t.Errorf("config alice@example.com: exit %d\n%s", r.code, r.stderr)
	}
}

// TestRenewConfigRefusedPerIdentity: renew of every managed address
// refuses a value in one address's table as renew EMAIL would, for that
// address, instead of renewing with something else; acmemail config says
// the same.
func TestRenewConfigRefusedPerIdentity(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	mustObtain(t, env, w)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte("[identity.\"alice@example.test\"]\np12-profile = \"ancient\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const want = `--p12-profile "ancient": choose modern or legacy`
	r := runCLI(t, env, "--config", cfg, "renew", "--force")
	if r.code != exitSomeFailed || strings.Contains(r.stdout, "renewed") || !strings.Contains(r.stderr, "renew alice@example.test: "+want) {
		t.Errorf("renew: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "--config", cfg, "renew", "--force", "alice@example.test")
	if r.code != exitUsage || !strings.Contains(firstError(r.stderr), want) {
		t.Errorf("renew EMAIL: exit %d\n%s", r.code, r.stderr)
	}
	c := runCLI(t, env, "--config", cfg, "config", "alice@example.test")
	if c.code != exitUsage || firstError(c.stderr) != firstError(r.stderr) {
		t.Errorf("config: exit %d\n%s\nwant renew's error:\n%s", c.code, c.stderr, r.stderr)
	}
}
