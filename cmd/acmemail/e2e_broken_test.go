package main

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/cmd/internal/termout"
	"github.com/acmemail/acmemail/keystore"
)

// TestObtainCorruptPendingKey: a pending-key.pem that does not hold a
// key (left by an earlier run) used to fail every obtain and renew of the
// address with a parse error. obtain moves it aside, kept byte for byte,
// says so as a warning, and gets the certificate with a new key.
func TestObtainCorruptPendingKey(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	dir := filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	garbage := []byte("-----BEGIN PRIVATE KEY-----\ntorn\n")
	pending := filepath.Join(dir, "pending-key.pem")
	if err := os.WriteFile(pending, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, env, obtainArgs(w)...)
	if r.code != 0 {
		t.Fatalf("obtain with a corrupt pending key: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	aside, _ := filepath.Glob(pending + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("moved aside: %q, want one file", aside)
	}
	if data, _ := os.ReadFile(aside[0]); !bytes.Equal(data, garbage) {
		t.Errorf("%s = %q, want the corrupt file as it was", aside[0], data)
	}
	if want := "acmemail: warning: " + pending + " did not hold a key"; !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, aside[0]) {
		t.Errorf("stderr does not say %q ... %s:\n%s", want, aside[0], r.stderr)
	}
	store, err := keystore.Open(env["ACMEMAIL_HOME"])
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := store.LoadCertificate("alice@example.test"); err != nil {
		t.Errorf("no certificate after obtain: %v", err)
	}
}

// installTestCert installs a self-signed certificate for email in the
// state directory, as obtain leaves one: key, chain, leaf and meta.
func installTestCert(t *testing.T, home, email string) {
	t.Helper()
	store, err := keystore.Open(home)
	if err != nil {
		t.Fatal(err)
	}
	key, err := store.CertKey(email, keystore.KeyP256)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: email}, EmailAddresses: []string{email},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	meta := keystore.CertMeta{Directory: "https://ca.example.test/dir", Usage: "both"}
	if _, err := store.SaveCertificate(email, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), meta); err != nil {
		t.Fatal(err)
	}
}

// TestListBroken: list and show name an address whose certificate files
// cannot be read as broken, with the file and what is wrong (escaped on
// the terminal), and exit 1; list shows the others. Before, list left it
// out and exited 0, printing "no certificates yet" (--json: []) when it
// was the only one. An address whose first obtain failed is pending,
// which is no error.
func TestListBroken(t *testing.T) {
	// The state directory's name has a control character: what is
	// wrong is told with its path, escaped.
	home := filepath.Join(t.TempDir(), "state\x1b[31m")
	env := map[string]string{"ACMEMAIL_HOME": home}
	const alice, bob, erin, frank = "alice@example.test", "bob@example.test", "erin@example.test", "frank@example.test"
	installTestCert(t, home, alice)
	installTestCert(t, home, bob)
	bobMeta := filepath.Join(home, "certificates", bob, "meta.json")
	if err := os.WriteFile(bobMeta, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := keystore.Open(home)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CertKey(erin, keystore.KeyP256); err != nil {
		t.Fatal(err)
	}
	if err := store.WriteOrderState(frank, []byte(`{"directory":"https://ca.example.test/dir","order_url":"https://ca.example.test/order/3"}`)); err != nil {
		t.Fatal(err)
	}
	escaped := termout.Escape(bobMeta)

	r := runCLI(t, env, "list")
	if r.code != exitError {
		t.Errorf("list with a broken address: exit %d, want %d\n%s", r.code, exitError, r.stderr)
	}
	states := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
		f := strings.Fields(line)
		states[f[0]] = f[6]
	}
	if want := map[string]string{alice: "valid", bob: "broken", erin: "pending", frank: "pending"}; !maps.Equal(states, want) {
		t.Errorf("list states = %v, want %v\n%s", states, want, r.stdout)
	}
	if want := "acmemail: error: the files of bob@example.test cannot be read:\n  the certificate of bob@example.test: parse " + escaped + ": "; !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "\x1b") {
		t.Errorf("list's stderr does not say %q, escaped:\n%q", want, r.stderr)
	}
	if !strings.Contains(r.stderr, "acmemail: hint: restore the file from a backup") {
		t.Errorf("list's stderr has no hint:\n%s", r.stderr)
	}

	r = runCLI(t, env, "list", "--json")
	if r.code != exitError {
		t.Errorf("list --json with a broken address: exit %d, want %d", r.code, exitError)
	}
	var list []certInfo
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 4 {
		t.Fatalf("list --json = %d entries, %v\n%s", len(list), err, r.stdout)
	}
	if b := list[1]; b.Email != bob || b.State != "broken" || !strings.HasPrefix(b.Reason, "parse "+bobMeta+": ") {
		t.Errorf("list --json: %s is %q (%q), want broken with the parse error of %s", b.Email, b.State, b.Reason, bobMeta)
	}
	if f := list[3]; f.State != "pending" || f.PendingOrder != "https://ca.example.test/order/3" || f.Reason == "" {
		t.Errorf("list --json: %s is %+v, want pending with its order", f.Email, f)
	}
	if !strings.Contains(r.stdout, `"state":"valid"`) {
		t.Errorf("list --json has no state of the valid certificate:\n%s", r.stdout)
	}

	r = runCLI(t, env, "show", bob)
	if r.code != exitError || !strings.Contains(r.stdout, "broken") || !strings.Contains(r.stderr, "parse "+escaped) {
		t.Errorf("show of a broken address: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "show", "--json", bob)
	var ci certInfo
	if json.Unmarshal([]byte(r.stdout), &ci); r.code != exitError || ci.State != "broken" || !strings.Contains(ci.Reason, bobMeta) {
		t.Errorf("show --json of a broken address: exit %d, %+v", r.code, ci)
	}
	r = runCLI(t, env, "show", erin)
	if r.code != 0 || !strings.Contains(r.stdout, "pending") || !strings.Contains(r.stdout, "no certificate yet") {
		t.Errorf("show of a pending address: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}

	// Without the broken one, the pending ones are no error.
	if err := os.Rename(filepath.Join(home, "certificates", bob), filepath.Join(t.TempDir(), bob)); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, env, "list"); r.code != 0 || strings.Count(r.stdout, "pending") != 2 {
		t.Errorf("list of valid and pending addresses: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestExportDamagedArchive: an archived certificate that cannot be read
// made every export of the address fail. The current certificate is
// exported (PEM and PKCS#12); --all-history fails with exit 1, naming the
// archive entry, with what to do.
func TestExportDamagedArchive(t *testing.T) {
	home := filepath.Join(t.TempDir(), "state")
	env := map[string]string{"ACMEMAIL_HOME": home, "ACMEMAIL_P12_PASSWORD": "test"}
	const alice = "alice@example.test"
	installTestCert(t, home, alice)
	installTestCert(t, home, alice)
	chains, _ := filepath.Glob(filepath.Join(home, "certificates", alice, "archive", "*", "chain.pem"))
	if len(chains) != 1 {
		t.Fatalf("archived chains: %q", chains)
	}
	if err := os.WriteFile(chains[0], []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if r := runCLI(t, env, "export", "--format", "pem", "--out", out, alice); r.code != 0 || len(strings.Fields(r.stdout)) != issuer.PEMFilesPerCert {
		t.Errorf("export --format pem with a damaged archive: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, env, "export", "--out", filepath.Join(out, "alice.p12"), alice); r.code != 0 {
		t.Errorf("export with a damaged archive: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	r := runCLI(t, env, "export", "--all-history", "--out", filepath.Join(out, "history.p12"), alice)
	if r.code != exitError || !strings.Contains(r.stderr, "the archived certificate in "+filepath.Dir(chains[0])+" cannot be read") ||
		!strings.Contains(r.stderr, "acmemail: hint: --all-history puts every archived key into the file") {
		t.Errorf("export --all-history with a damaged archive: exit %d, want %d naming %s\nstderr:\n%s", r.code, exitError, filepath.Dir(chains[0]), r.stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "history.p12")); err == nil {
		t.Errorf("export --all-history wrote a file without the damaged entry's key")
	}
}

// stateSnapshot describes every file and directory below dir (dir
// included): mode, size and modification time.
func stateSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		size := fi.Size()
		if fi.IsDir() {
			size = 0
		}
		snap[p] = fmt.Sprintf("%v %d %s", fi.Mode(), size, fi.ModTime())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestReadOnlyStateDir: list, show and export (into a directory outside
// it) work on a state directory that cannot be written, and change
// nothing in it. The test takes the write permission from the state
// directory (directories 0500, the state directory itself a loose 0555,
// files 0400) and removes its lock files, as a restored backup may lack
// them. Root is not held back by permissions, so as root the test proves
// that nothing is written, created or chmodded, from a snapshot of the
// tree (names, modes, sizes, modification times) before and after; run
// as another user it proves too that nothing fails for want of writing.
// Before, list and show made lock files (or failed to) and chmodded a
// loose state directory, and the files were listed as broken.
func TestReadOnlyStateDir(t *testing.T) {
	home := filepath.Join(t.TempDir(), "state")
	env := map[string]string{"ACMEMAIL_HOME": home, "ACMEMAIL_P12_PASSWORD": "test"}
	const alice, erin = "alice@example.test", "erin@example.test"
	installTestCert(t, home, alice)
	installTestCert(t, home, alice)
	store, err := keystore.Open(home)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CertKey(erin, keystore.KeyP256); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	err = filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			dirs = append(dirs, p)
			return nil
		case d.Name() == ".lock" || d.Name() == ".run-lock":
			return os.Remove(p)
		}
		return os.Chmod(p, 0o400)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		mode := os.FileMode(0o500)
		if dirs[i] == home {
			mode = 0o555
		}
		if err := os.Chmod(dirs[i], mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range dirs {
			os.Chmod(d, 0o700)
		}
	})
	before := stateSnapshot(t, home)
	out := t.TempDir()

	if r := runCLI(t, env, "list"); r.code != 0 || !strings.Contains(r.stdout, "valid") || !strings.Contains(r.stdout, "pending") {
		t.Errorf("list: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, env, "list", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"state":"valid"`) {
		t.Errorf("list --json: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{
		{"show", alice},
		{"show", "--json", alice},
		{"show", erin},
		{"export", "--format", "pem", "--out", out, alice},
		{"export", "--out", filepath.Join(out, "alice.p12"), alice},
		{"export", "--all-history", "--out", filepath.Join(out, "history.p12"), alice},
	} {
		if r := runCLI(t, env, args...); r.code != 0 {
			t.Errorf("%s: exit %d\nstderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if diff := diffStateSnapshots(before, stateSnapshot(t, home)); len(diff) > 0 {
		t.Errorf("reading changed the state directory:\n%s", strings.Join(diff, "\n"))
	}

	// No state directory: nothing is listed, and none is made.
	env["ACMEMAIL_HOME"] = filepath.Join(out, "none")
	if r := runCLI(t, env, "list"); r.code != 0 || !strings.Contains(r.stderr, "no certificates yet") {
		t.Errorf("list without a state directory: exit %d\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, env, "show", alice); r.code != exitError || !strings.Contains(r.stderr, "no certificate for "+alice+" is managed here") {
		t.Errorf("show without a state directory: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(env["ACMEMAIL_HOME"]); err == nil {
		t.Errorf("list or show made the state directory")
	}
}

func diffStateSnapshots(before, after map[string]string) []string {
	var diff []string
	for p, b := range before {
		if a, ok := after[p]; !ok {
			diff = append(diff, "removed "+p)
		} else if a != b {
			diff = append(diff, fmt.Sprintf("changed %s: %s -> %s", p, b, a))
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			diff = append(diff, "new "+p)
		}
	}
	return diff
}
