package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// serverInstall runs "acmemail server ARGS" as its own process (this test
// binary acting as acmemail), with the fake Postfix and Dovecot programs of
// hw first on PATH and ACMEMAIL_INSTALL_ROOT at hw's root, against w's CA and
// DNS server (lego's rfc2136 provider with the world's TSIG key).
func serverInstall(t *testing.T, w *sandbox.World, env map[string]string, hw *hookWorld, extraEnv []string, args ...string) cliResult {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, append([]string{"server"}, args...)...)
	cmd.Env = append([]string{actAsMain + "=1", "PATH=" + hw.bin + ":/usr/bin:/bin", "HOME=" + hw.state,
		"ACMEMAIL_HOME=" + env["ACMEMAIL_HOME"], "ACMEMAIL_CA_ROOTS=" + env["ACMEMAIL_CA_ROOTS"],
		"ACMEMAIL_INSTALL_ROOT=" + hw.root, "FAKE_LOG=" + hw.log}, w.DNSUpdateEnv()...)
	cmd.Env = append(cmd.Env, extraEnv...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if err != nil {
		code = procExitCode(err)
		if code < 0 {
			t.Fatalf("acmemail server %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
	}
	return cliResult{code, out.String(), errb.String()}
}

// procExitCode is the exit status of a finished command, -1 if it did not exit.
func procExitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func serverInstallObtainArgs(w *sandbox.World, extra ...string) []string {
	args := []string{"obtain", "--server", w.DirectoryURL, "--dns", "rfc2136", "--dns-resolver", w.DNSAddr,
		"--service", "submissions", "--service", "imaps", "--install", "postfix,dovecot", "--json"}
	return append(append(args, extra...), "mail.example.test")
}

// installedChain is the chain target serves through its current link.
func installedChain(t *testing.T, hw *hookWorld, target string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(hw.root, "etc/acmemail", target, "mail.example.test", "current", "chain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestServerInstall: server obtain --install postfix,dovecot puts the
// certificate acmemail saved into both servers (files, main.cf, the conf.d
// snippet) and reloads them; renew --force repeats it with the new one,
// keeping the previous version.
func TestServerInstall(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("--install writes root-owned keys: run as root")
	}
	w, env := world(t, sandbox.Options{})
	hw := newHookWorld(t)
	r := serverInstall(t, w, env, hw, nil, serverInstallObtainArgs(w)...)
	if r.code != 0 {
		t.Fatalf("server obtain --install: exit %d\n%s", r.code, r.stderr)
	}
	var res struct {
		Install   []string `json:"install"`
		ChainPath string   `json:"chain_path"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	if !slices.Equal(res.Install, []string{"postfix", "dovecot"}) {
		t.Errorf("install %q, want postfix and dovecot recorded", res.Install)
	}
	saved, err := os.ReadFile(res.ChainPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"postfix", "dovecot"} {
		if string(installedChain(t, hw, target)) != string(saved) {
			t.Errorf("%s: the installed chain is not the one acmemail saved", target)
		}
	}
	current := filepath.Join(hw.root, "etc/acmemail/postfix/mail.example.test/current")
	mainCF, _ := os.ReadFile(filepath.Join(hw.root, "etc/postfix/main.cf"))
	if !strings.Contains(string(mainCF), "\nsmtpd_tls_chain_files = "+current+"/key.pem, "+current+"/chain.pem\n") {
		t.Errorf("main.cf:\n%s", mainCF)
	}
	snippet, _ := os.ReadFile(filepath.Join(hw.root, "etc/dovecot/conf.d/99-acmemail.conf"))
	if !strings.Contains(string(snippet), "ssl_cert = <"+filepath.Join(hw.root, "etc/acmemail/dovecot/mail.example.test/current/chain.pem")) {
		t.Errorf("99-acmemail.conf:\n%s", snippet)
	}
	if log := hw.logLines(t); !slices.Contains(log, "postfix_reload") || !slices.Contains(log, "doveadm_reload") {
		t.Errorf("log %q: want both servers reloaded", log)
	}
	first, _ := os.Readlink(current)

	// renew --force: the recorded --install runs again, with the new
	// certificate; the previous version stays.
	if r := serverInstall(t, w, env, hw, nil, "renew", "--force", "mail.example.test"); r.code != 0 {
		t.Fatalf("server renew --force: exit %d\n%s", r.code, r.stderr)
	}
	renewed, _ := os.ReadFile(res.ChainPath)
	if string(renewed) == string(saved) {
		t.Fatalf("renew --force saved the same chain")
	}
	for _, target := range []string{"postfix", "dovecot"} {
		if string(installedChain(t, hw, target)) != string(renewed) {
			t.Errorf("%s: after renew, the installed chain is not the renewed one", target)
		}
	}
	if second, _ := os.Readlink(current); second == first {
		t.Errorf("renew did not switch current (still %s)", first)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(current), first, "key.pem")); err != nil {
		t.Errorf("the previous version is gone: %v", err)
	}
	if log := hw.logLines(t); !slices.Contains(log, "postfix_reload") || !slices.Contains(log, "doveadm_reload") {
		t.Errorf("renew: log %q: want both servers reloaded", log)
	}
}

// TestServerInstallRefusedCertificate: a certificate without serverAuth is
// refused (exit 5) before anything is installed or reloaded.
func TestServerInstallRefusedCertificate(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("--install writes root-owned keys: run as root")
	}
	w, env := world(t, sandbox.Options{BadCert: sandbox.BadCertNoServerAuth})
	hw := newHookWorld(t)
	r := serverInstall(t, w, env, hw, nil, serverInstallObtainArgs(w)...)
	if r.code != exitCA {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitCA, r.stderr)
	}
	if _, err := os.Lstat(filepath.Join(hw.root, "etc/acmemail")); err == nil {
		t.Errorf("a refused certificate was installed")
	}
	if _, err := os.Lstat(filepath.Join(hw.root, "etc/dovecot/conf.d/99-acmemail.conf")); err == nil {
		t.Errorf("a refused certificate configured Dovecot")
	}
	if log := hw.logLines(t); len(log) != 0 {
		t.Errorf("a refused certificate: %q", log)
	}
}

// TestServerInstallReloadFails: a server whose reload fails is reported
// (exit 7: the certificate is saved), its files stay in place, and the
// other server is still installed into and reloaded.
func TestServerInstallReloadFails(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("--install writes root-owned keys: run as root")
	}
	w, env := world(t, sandbox.Options{})
	hw := newHookWorld(t)
	r := serverInstall(t, w, env, hw, []string{"FAKE_POSTFIX_RELOAD_FAIL=1"}, serverInstallObtainArgs(w)...)
	if r.code != exitHookFailed {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitHookFailed, r.stderr)
	}
	saved, err := os.ReadFile(filepath.Join(env["ACMEMAIL_HOME"], "servers", "mail.example.test", "chain.pem"))
	if err != nil {
		t.Fatalf("the certificate was not saved: %v", err)
	}
	for _, target := range []string{"postfix", "dovecot"} {
		if string(installedChain(t, hw, target)) != string(saved) {
			t.Errorf("%s: the installed chain is not the saved one", target)
		}
	}
	if log := hw.logLines(t); slices.Contains(log, "postfix_reload") || !slices.Contains(log, "doveadm_reload") {
		t.Errorf("log %q: want Dovecot reloaded, Postfix's reload failed", log)
	}
}
