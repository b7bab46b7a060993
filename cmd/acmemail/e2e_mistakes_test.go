package main

import (
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// mistakeArgs is obtain against w's mail servers with server as --server.
func mistakeArgs(w *sandbox.World, server string, extra ...string) []string {
	args := []string{"obtain", "--server", server, "--imap", w.IMAPURL, "--smtp", w.SMTPURL,
		"--dns-resolver", w.DNSAddr, "--agree-tos"}
	return append(append(args, extra...), "alice@example.test")
}

// TestMistakeServerNotDirectory: a --server URL that is not an ACME
// directory (here the sandbox CA's 404 for a mistyped path, which comes as a
// problem document) is neither "the CA refused the request" (5) nor a hint
// about the mail address, but says what --server wants; a server that is
// not there says to check the host.
func TestMistakeServerNotDirectory(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	for _, tc := range []struct {
		name, server, hint string
	}{
		{"mistyped-path", w.DirectoryURL + "x", "hint: --server takes the URL of the CA's ACME directory"},
		{"unreachable", "https://127.0.0.1:1/directory", "hint: check the host in --server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, env, mistakeArgs(w, tc.server)...)
			if r.code != exitError {
				t.Errorf("exit %d, want %d", r.code, exitError)
			}
			if !strings.Contains(r.stderr, tc.hint) || !strings.Contains(r.stderr, "acmemail doctor --server") {
				t.Errorf("stderr has no %q and doctor hint:\n%s", tc.hint, r.stderr)
			}
			if strings.Contains(r.stderr, "does not accept this address") {
				t.Errorf("a hint about the mail address for a wrong --server:\n%s", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
	if st := w.Stats(); st.Orders != 0 {
		t.Errorf("orders = %d, want 0", st.Orders)
	}
}

// TestMistakeSwappedPorts: --imap naming the submission server, or --smtp
// the IMAP server, gives a hint that the port is the other protocol's, and
// no order is placed.
func TestMistakeSwappedPorts(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	imapAtSMTP := "imaps://" + strings.TrimPrefix(w.SMTPURL, "smtps://")
	smtpAtIMAP := "smtps://" + strings.TrimPrefix(w.IMAPURL, "imaps://")
	for _, tc := range []struct {
		name, imap, smtp, hint string
	}{
		{"imap-is-smtp", imapAtSMTP, w.SMTPURL, "did not greet like an IMAP server: is " + imapAtSMTP + " the IMAP server's port"},
		{"smtp-is-imap", w.IMAPURL, smtpAtIMAP, "greeted like an IMAP server: is --smtp the submission server's port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"obtain", "--server", w.DirectoryURL, "--imap", tc.imap, "--smtp", tc.smtp,
				"--dns-resolver", w.DNSAddr, "--agree-tos", "alice@example.test"}
			r := runCLI(t, env, args...)
			if r.code != exitError {
				t.Errorf("exit %d, want %d", r.code, exitError)
			}
			if !strings.Contains(r.stderr, "hint: the server "+tc.hint) {
				t.Errorf("stderr has no hint %q:\n%s", tc.hint, r.stderr)
			}
		})
	}
	if st := w.Stats(); st.Orders != 0 {
		t.Errorf("orders = %d, want 0", st.Orders)
	}
}

// TestMistakePlaintextURL: a plaintext URL with a password, without
// --insecure (or to a host that is not loopback), is refused before any
// connection with the CLI's way out (not the library's AllowInsecure), and
// never contacts the CA.
func TestMistakePlaintextURL(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"imap-no-insecure", []string{"--imap", "imap+insecure://127.0.0.1:1", "--smtp", w.SMTPURL}},
		{"smtp-no-insecure", []string{"--imap", w.IMAPURL, "--smtp", "smtp+insecure://127.0.0.1:1"}},
		{"imap-not-loopback", []string{"--insecure", "--imap", "imap+insecure://192.0.2.1:143", "--smtp", w.SMTPURL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"obtain", "--server", w.DirectoryURL, "--dns-resolver", w.DNSAddr, "--agree-tos"}, tc.args...)
			r := runCLI(t, env, append(args, "alice@example.test")...)
			if r.code == 0 {
				t.Fatalf("exit 0, want a failure")
			}
			if !strings.Contains(r.stderr, "plaintext connection refused") || !strings.Contains(r.stderr, "hint: "+plaintextHint) {
				t.Errorf("stderr does not refuse plaintext with the --insecure hint:\n%s", r.stderr)
			}
			for _, bad := range []string{"AllowInsecure", "check the host and port", "alice-secret-pw"} {
				if strings.Contains(r.stderr, bad) {
					t.Errorf("stderr has %q:\n%s", bad, r.stderr)
				}
			}
		})
	}
	if st := w.Stats(); st.Orders != 0 {
		t.Errorf("orders = %d, want 0", st.Orders)
	}
}

// TestMistakeDomainTypo: an address whose domain the DNS does not know
// (a typo) asks whether it is spelled right, before the usual hints.
func TestMistakeDomainTypo(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	base := []string{"obtain", "--server", w.DirectoryURL, "--dns-resolver", w.DNSAddr, "--agree-tos"}
	r := runCLI(t, env, append(base, "alice@exmaple.test")...)
	if r.code != exitUsage {
		t.Errorf("exit %d, want %d", r.code, exitUsage)
	}
	if !strings.Contains(r.stderr, "hint: the DNS knows no MX, address or NS record for exmaple.test: is the address spelled right?") {
		t.Errorf("no hint about the spelling:\n%s", r.stderr)
	}
	if st := w.Stats(); st.Orders != 0 {
		t.Errorf("orders = %d, want 0", st.Orders)
	}
}

// TestMistakeExportPEMDir: export --format pem into a directory that does
// not exist says how to make it, and writes nothing.
func TestMistakeExportPEMDir(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	if r := runCLI(t, env, obtainArgs(w)...); r.code != 0 {
		t.Fatalf("obtain exit %d\n%s", r.code, r.stderr)
	}
	dir := filepath.Join(t.TempDir(), "pem")
	r := runCLI(t, env, "export", "--format", "pem", "--out", dir, "alice@example.test")
	if r.code != exitUsage {
		t.Errorf("exit %d, want %d", r.code, exitUsage)
	}
	if !strings.Contains(r.stderr, "hint: create it first (mkdir "+dir+"), or leave out --out") {
		t.Errorf("no hint on making the directory:\n%s", r.stderr)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s was created", dir)
	}
}

// TestMistakeOutputsCheckedFirst: an --out file that could not be written
// and a deploy hook that cannot run are found before the order, not after
// the CA issued (a script retrying would spend another issuance).
func TestMistakeOutputsCheckedFirst(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"out-dir-missing", []string{"--out", filepath.Join(missing, "alice.p12")}, "the directory " + missing + " does not exist"},
		{"hook-path-missing", []string{"--deploy-hook", filepath.Join(missing, "deploy.sh") + " --reload"}, "is not a program that can be run"},
		{"hook-program-unknown", []string{"--deploy-hook", "acmemail-no-such-program reload"}, "acmemail-no-such-program is not a program that can be run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, env, obtainArgs(w, tc.args...)...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, want %d and %q:\n%s", r.code, exitUsage, tc.want, r.stderr)
			}
		})
	}
	if st := w.Stats(); st.Orders != 0 {
		t.Errorf("orders = %d, want 0: the mistakes were found after ordering", st.Orders)
	}
	// Shell syntax and the shell's own commands are not judged.
	if r := runCLI(t, env, obtainArgs(w, "--deploy-hook", `test -n "$ACMEMAIL_SERIAL"`)...); r.code != 0 {
		t.Errorf("a hook starting with a shell command: exit %d\n%s", r.code, r.stderr)
	}
}

// TestMistakeServerNotJSON: a --server that answers with a web page says
// so in words, not in the ACME library's ("target container is not
// io.Writer").
func TestMistakeServerNotJSON(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	page := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/plain")
		io.WriteString(rw, "hello\n")
	}))
	defer page.Close()
	roots := filepath.Join(t.TempDir(), "roots.pem")
	pemData, _ := os.ReadFile(env["ACMEMAIL_CA_ROOTS"])
	pemData = append(pemData, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: page.Certificate().Raw})...)
	if err := os.WriteFile(roots, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	env["ACMEMAIL_CA_ROOTS"] = roots
	r := runCLI(t, env, mistakeArgs(w, page.URL+"/directory")...)
	if r.code != exitError || !strings.Contains(r.stderr, "the answer is text/plain, not the JSON of an ACME directory") || strings.Contains(r.stderr, "io.Writer") {
		t.Errorf("exit %d\n%s", r.code, r.stderr)
	}
}
