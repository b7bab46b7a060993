package main

import (
	"bytes"
	"crypto"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/keystore/p12test"
)

// TestExport obtains two certificates for one address from the sandbox,
// then exports: the current one in each PKCS#12 profile, both in one file
// with --all-history, and PEM. Every PKCS#12 file is imported with
// openssl and with NSS pk12util into a fresh NSS database, and the
// imported certificates and keys are checked.
func TestExport(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	for i, kt := range []string{"p256", "rsa2048"} {
		// The second obtain (--force: the first is not due) writes its
		// cert.p12 with the legacy profile.
		if r := runCLI(t, env, obtainArgs(w, "--force", "--key-type", kt, "--p12-profile", []string{"modern", "legacy"}[i])...); r.code != 0 {
			t.Fatalf("obtain %d: exit %d\nstderr:\n%s", i+1, r.code, r.stderr)
		}
	}
	store, err := keystore.Open(env["ACMEMAIL_HOME"])
	if err != nil {
		t.Fatal(err)
	}
	gens, err := store.History("alice@example.test")
	if err != nil || len(gens) != 2 {
		t.Fatalf("History = %d generations, %v; want 2", len(gens), err)
	}
	want := func(g keystore.Generation, profile string) p12test.Want {
		return p12test.Want{Chain: g.Chain, PublicKey: g.Key.Public(), Profile: profile}
	}
	out := t.TempDir()

	t.Run("obtain-cert.p12-legacy", func(t *testing.T) {
		path := filepath.Join(gens[1].Dir, "cert.p12")
		checkMode(t, path, 0o600)
		p12test.OpenSSL(t, path, "test", want(gens[1], "legacy"))
		p12test.NSS(t, path, "test", want(gens[1], "legacy"))
	})

	for _, profile := range []string{"modern", "legacy"} {
		t.Run("p12-"+profile, func(t *testing.T) {
			path := filepath.Join(out, "alice-"+profile+".p12")
			r := runCLI(t, env, "export", "--p12-profile", profile, "--out", path, "alice@example.test")
			if r.code != 0 {
				t.Fatalf("export: exit %d\nstderr:\n%s", r.code, r.stderr)
			}
			if strings.TrimSpace(r.stdout) != path {
				t.Errorf("stdout = %q, want the path %s", r.stdout, path)
			}
			checkMode(t, path, 0o600)
			p12test.OpenSSL(t, path, "test", want(gens[1], profile))
			p12test.NSS(t, path, "test", want(gens[1], profile))
			// Never overwritten.
			if r := runCLI(t, env, "export", "--p12-profile", profile, "--out", path, "alice@example.test"); r.code != exitUsage || !strings.Contains(r.stderr, "never overwrites") {
				t.Errorf("export onto an existing file: exit %d, stderr %q; want %d and a refusal", r.code, r.stderr, exitUsage)
			}
		})
	}

	t.Run("all-history", func(t *testing.T) {
		path := filepath.Join(out, "history.p12")
		r := runCLI(t, env, "export", "--all-history", "--json", "--out", path, "alice@example.test")
		if r.code != 0 {
			t.Fatalf("export --all-history: exit %d\nstderr:\n%s", r.code, r.stderr)
		}
		var res exportResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
		}
		if res.Certificates != 2 || len(res.Serials) != 2 || res.Serials[0] != acmemail.FormatSerialText(gens[0].Meta.Serial) || res.Files[0] != path {
			t.Errorf("JSON result = %+v, want 2 certificates, oldest first, in %s", res, path)
		}
		checkMode(t, path, 0o600)
		wants := []p12test.Want{want(gens[0], "modern"), want(gens[1], "modern")}
		p12test.OpenSSLBundle(t, path, "test", wants)
		p12test.NSSBundle(t, path, "test", wants)
	})

	t.Run("stdout", func(t *testing.T) {
		r := runCLI(t, env, "export", "--out", "-", "alice@example.test")
		if r.code != 0 {
			t.Fatalf("export --out -: exit %d\nstderr:\n%s", r.code, r.stderr)
		}
		_, leaf, _, err := pkcs12.DecodeChain([]byte(r.stdout), "test")
		if err != nil || !leaf.Equal(gens[1].Chain[0]) {
			t.Errorf("stdout is not the PKCS#12 file of the current certificate: %v", err)
		}
		if r := runCLI(t, env, "export", "--out", "-", "--json", "alice@example.test"); r.code != exitUsage {
			t.Errorf("--out - --json: exit %d, want %d", r.code, exitUsage)
		}
	})

	t.Run("pem", func(t *testing.T) {
		dir := filepath.Join(out, "pem")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, env, "export", "--format", "pem", "--out", dir, "alice@example.test")
		if r.code != 0 {
			t.Fatalf("export --format pem: exit %d\nstderr:\n%s", r.code, r.stderr)
		}
		names := []string{"alice@example.test.key.pem", "alice@example.test.cert.pem", "alice@example.test.chain.pem", "alice@example.test.ca.pem"}
		if got := strings.Fields(r.stdout); len(got) != 4 || filepath.Base(got[0]) != names[0] || filepath.Base(got[3]) != names[3] {
			t.Errorf("stdout = %q, want the four paths", r.stdout)
		}
		checkMode(t, filepath.Join(dir, names[0]), 0o600)
		key, err := keystore.ParsePrivateKey(readFile(t, filepath.Join(dir, names[0])))
		if err != nil {
			t.Fatalf("the exported key does not parse: %v", err)
		}
		cert, err := keystore.ParseChain(readFile(t, filepath.Join(dir, names[1])))
		if err != nil || len(cert) != 1 || !cert[0].Equal(gens[1].Chain[0]) {
			t.Errorf("cert.pem = %d certificates (%v), want the leaf", len(cert), err)
		}
		if !samePub(key.Public(), gens[1].Key.Public()) {
			t.Error("key.pem is not the current key")
		}
		// One vocabulary: the chain is the leaf and its issuers, as
		// chain.pem in the state directory; the CA certificates alone are
		// the ca file.
		chain, err := keystore.ParseChain(readFile(t, filepath.Join(dir, names[2])))
		if err != nil || len(chain) != len(gens[1].Chain) || !chain[0].Equal(gens[1].Chain[0]) || !chain[1].Equal(gens[1].Chain[1]) {
			t.Errorf("EMAIL.chain.pem = %d certificates (%v), want the full chain, leaf first", len(chain), err)
		}
		if stateChain := readFile(t, filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test", "chain.pem")); !bytes.Equal(stateChain, readFile(t, filepath.Join(dir, names[2]))) {
			t.Error("EMAIL.chain.pem differs from chain.pem in the state directory")
		}
		ca, err := keystore.ParseChain(readFile(t, filepath.Join(dir, names[3])))
		if err != nil || len(ca) != len(gens[1].Chain)-1 || !ca[0].Equal(gens[1].Chain[1]) {
			t.Errorf("EMAIL.ca.pem = %d certificates (%v), want the CA certificates", len(ca), err)
		}
		if !strings.Contains(r.stderr, "unencrypted") {
			t.Errorf("no warning about the unencrypted key:\n%s", r.stderr)
		}
	})

	t.Run("errors", func(t *testing.T) {
		cases := []struct {
			args []string
			code int
			want string
		}{
			{[]string{"export", "--format", "der", "alice@example.test"}, exitUsage, `--format "der"`},
			{[]string{"export", "--p12-profile", "rc2", "alice@example.test"}, exitUsage, `--p12-profile "rc2"`},
			{[]string{"export", "--format", "pem", "--all-history", "alice@example.test"}, exitUsage, "does not go with --format pem"},
			{[]string{"export", "--out", filepath.Join(out, "x.p12"), "bob@example.test"}, exitError, "no certificate for bob@example.test"},
		}
		for _, c := range cases {
			r := runCLI(t, env, c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) {
				t.Errorf("%q: exit %d, stderr %q; want %d and %q", c.args, r.code, r.stderr, c.code, c.want)
			}
		}
		// No password from the environment or a file, and (when the test
		// runs without a terminal) nobody to ask: a clear error, no file.
		if f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
			f.Close()
			t.Log("a terminal is attached; skipping the no-password check")
			return
		}
		noPW := map[string]string{}
		for k, v := range env {
			noPW[k] = v
		}
		delete(noPW, "ACMEMAIL_P12_PASSWORD")
		path := filepath.Join(out, "nopw.p12")
		r := runCLI(t, noPW, "export", "--out", path, "alice@example.test")
		if r.code != exitUsage || !strings.Contains(r.stderr, "set ACMEMAIL_P12_PASSWORD or use --p12-password-file") {
			t.Errorf("export without a password: exit %d, stderr %q", r.code, r.stderr)
		}
		if _, err := os.Stat(path); err == nil {
			t.Error("export without a password wrote a file")
		}
	})
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want %v", filepath.Base(path), fi.Mode().Perm(), want)
	}
}

func samePub(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	x, ok := a.(eq)
	return ok && x.Equal(b)
}
