package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
)

// listJSON is list --json, which must succeed.
func listJSON(t *testing.T, env map[string]string) []certInfo {
	t.Helper()
	r := runCLI(t, env, "list", "--json")
	var list []certInfo
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil {
		t.Fatalf("list --json: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	return list
}

// certDirs are the names in the state directory's certificates/.
func certDirs(t *testing.T, env map[string]string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(env["ACMEMAIL_HOME"], "certificates"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestAddressNFD: an address typed in Unicode NFD is the NFC one: obtain
// makes one identity, list shows it once, in NFC, and renew finds it in
// either form. A directory that an older acmemail named in NFD is still
// the identity's: listed once, renewed in place, never duplicated.
func TestAddressNFD(t *testing.T) {
	t.Parallel()
	const nfc, nfd = "j\u00f6s\u00e9@example.test", "jo\u0308se\u0301@example.test"
	w, env := world(t, sandbox.Options{})
	if err := w.AddUser(nfc, "alice-secret-pw"); err != nil {
		t.Fatal(err)
	}
	args := obtainArgs(w, "--json")
	args[len(args)-1] = nfd
	r := runCLI(t, env, args...)
	var res issuer.CertResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Email != nfc {
		t.Fatalf("obtain %+q: exit %d, email %+q, want %+q\n%s", nfd, r.code, res.Email, nfc, r.stderr)
	}
	if list := listJSON(t, env); len(list) != 1 || list[0].Email != nfc {
		t.Fatalf("list after obtain: %d rows, first %+q; want one, %+q", len(list), list[0].Email, nfc)
	}
	for _, arg := range []string{nfd, nfc} {
		if r := runCLI(t, env, "renew", "--force", arg); r.code != 0 {
			t.Fatalf("renew --force %+q: exit %d\n%s", arg, r.code, r.stderr)
		}
	}
	if dirs := certDirs(t, env); len(dirs) != 1 || dirs[0] != nfc {
		t.Errorf("certificates/ holds %+q, want only %+q", dirs, nfc)
	}

	// As an older acmemail named the directory, and recorded the address.
	home := filepath.Join(env["ACMEMAIL_HOME"], "certificates")
	if err := os.Rename(filepath.Join(home, nfc), filepath.Join(home, nfd)); err != nil {
		t.Fatal(err)
	}
	before := listJSON(t, env)
	if len(before) != 1 || before[0].Email != nfc || before[0].Files.Dir != filepath.Join(home, nfd) {
		t.Fatalf("list with the older directory: %+v; want one row, %+q, in %+q", before, nfc, nfd)
	}
	if r := runCLI(t, env, "renew", "--force", nfc); r.code != 0 {
		t.Fatalf("renew --force in the older directory: exit %d\n%s", r.code, r.stderr)
	}
	after := listJSON(t, env)
	if len(after) != 1 || after[0].Serial == before[0].Serial || after[0].Files.Dir != filepath.Join(home, nfd) {
		t.Errorf("after renew: %+v; want one row, a new serial, in the older directory", after)
	}
	if dirs := certDirs(t, env); len(dirs) != 1 || dirs[0] != nfd {
		t.Errorf("certificates/ holds %+q, want only the older %+q", dirs, nfd)
	}

	// The older acmemail recorded the address in NFD too: list and show
	// tell it normalized.
	meta := filepath.Join(home, nfd, "meta.json")
	data, err := os.ReadFile(meta)
	if err != nil || !strings.Contains(string(data), nfc) {
		t.Fatalf("meta.json: %v\n%s", err, data)
	}
	if err := os.WriteFile(meta, []byte(strings.ReplaceAll(string(data), nfc, nfd)), 0o600); err != nil {
		t.Fatal(err)
	}
	if list := listJSON(t, env); len(list) != 1 || list[0].Email != nfc {
		t.Errorf("list with the address recorded in NFD: %+v; want one row, %+q", list, nfc)
	}
	r = runCLI(t, env, "show", "--json", nfd)
	var ci certInfo
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ci) != nil || ci.Email != nfc {
		t.Errorf("show %+q: exit %d, email %+q; want %+q\n%s", nfd, r.code, ci.Email, nfc, r.stderr)
	}
}

// TestAddressCase: the domain's case never matters, the local part's
// does (RFC 5321 §2.4): obtain Carol@Example.TEST manages
// Carol@example.test, which show finds in any case of its domain;
// carol@example.test is not managed, and show, renew, revoke and export
// say so as for any address, with a hint naming Carol@example.test.
func TestAddressCase(t *testing.T) {
	t.Parallel()
	const carol = "Carol@example.test"
	w, env := world(t, sandbox.Options{})
	if err := w.AddUser(carol, "alice-secret-pw"); err != nil {
		t.Fatal(err)
	}
	args := obtainArgs(w)
	args[len(args)-1] = "Carol@Example.TEST"
	if r := runCLI(t, env, args...); r.code != 0 {
		t.Fatalf("obtain: exit %d\n%s", r.code, r.stderr)
	}
	for _, arg := range []string{carol, "Carol@EXAMPLE.test"} {
		r := runCLI(t, env, "show", "--json", arg)
		var ci certInfo
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ci) != nil || ci.Email != carol {
			t.Errorf("show %s: exit %d, email %q\n%s", arg, r.code, ci.Email, r.stderr)
		}
	}
	for _, cmd := range [][]string{{"show"}, {"renew"}, {"revoke"}, {"export", "--format", "pem", "--out", t.TempDir()}} {
		unknown := runCLI(t, env, append(cmd, "dave@example.test")...)
		r := runCLI(t, env, append(cmd, "carol@example.test")...)
		if r.code == 0 || r.code != unknown.code {
			t.Errorf("%s carol@example.test: exit %d, want %d as for an address never seen", cmd[0], r.code, unknown.code)
		}
		if !strings.Contains(r.stderr, "acmemail: hint: did you mean "+carol+"?") || strings.Contains(unknown.stderr, "did you mean") {
			t.Errorf("%s carol@example.test: no did-you-mean hint (or one for dave):\n%s\n%s", cmd[0], r.stderr, unknown.stderr)
		}
	}
}

// TestConfigIdentityCase: an [identity."..."] table applies to its
// address however the domain is written; one whose local part differs
// from the address only in case does not apply, and obtain and acmemail
// config warn of it, naming the table that would.
func TestConfigIdentityCase(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "[identity.\"Alice@Example.TEST\"]\nkey-type = \"p384\"\n\n[identity.\"bob@EXAMPLE.test\"]\nkey-type = \"p256\"\n")
	home := t.TempDir()
	env := map[string]string{"ACMEMAIL_CONFIG": path, "ACMEMAIL_HOME": home}
	for email, want := range map[string]string{"alice@example.test": "rsa2048", "Alice@example.test": "p384", "bob@example.test": "p256", "BOB@example.TEST": "rsa2048"} {
		v, err := settingsFor(t, env, "obtain", email)
		if err != nil || v.keyType != want {
			t.Errorf("obtain %s: key-type %v, %v; want %s", email, v, err, want)
		}
	}
	r := runCLI(t, env, "obtain", "--server", "https://127.0.0.1:1/dir", "--timeout", "1ms", "alice@example.test")
	if !strings.Contains(r.stderr, `acmemail: warning: `+path+`:1: [identity."Alice@example.test"] does not apply to alice@example.test`) {
		t.Errorf("obtain alice@example.test does not warn of Alice's table:\n%s", r.stderr)
	}

	// acmemail config checks the tables against the managed addresses.
	store, err := keystore.Open(home)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CertKey("alice@example.test", keystore.KeyP256); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"config", "--json"}, {"config", "--json", "alice@example.test"}} {
		r := runCLI(t, env, args...)
		var res configResult
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil {
			t.Fatalf("%q: exit %d\n%s\n%s", args, r.code, r.stdout, r.stderr)
		}
		if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], `did you mean [identity."alice@example.test"]?`) {
			t.Errorf("%q: warnings %q, want one did-you-mean for Alice's table", args, res.Warnings)
		}
	}
	if r := runCLI(t, env, "config", "bob@example.test"); r.code != 0 || !strings.Contains(r.stderr, "acmemail: warning: ") {
		t.Errorf("config (text): exit %d, no warning on stderr:\n%s", r.code, r.stderr)
	}
}
