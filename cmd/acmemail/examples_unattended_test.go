package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// exampleCommand returns the command of examples/crontab (what follows the
// five time fields of its entry) or of examples/systemd's ExecStart=, with
// %h as home.
func exampleCommand(t *testing.T, file, home string) string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "examples", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "ExecStart="):
			return strings.ReplaceAll(strings.TrimPrefix(line, "ExecStart="), "%h", home)
		case line != "" && !strings.HasPrefix(line, "#") && strings.HasSuffix(file, "crontab"):
			fields := strings.Fields(line)
			return strings.Join(fields[5:], " ")
		}
	}
	t.Fatalf("no command in examples/%s", file)
	return ""
}

// TestExamplesUnattended runs examples/crontab's and examples/systemd's
// commands as written, under env -i HOME=..., for a certificate obtained
// with the sandbox CA's roots given only then (ACMEMAIL_CA_ROOTS) and the
// mail and PKCS#12 passwords in files: when renewal is due, both renew.
func TestExamplesUnattended(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	home := t.TempDir()
	// acmemail as the examples find it: ~/go/bin/acmemail (this test
	// binary, acting as acmemail).
	bin := filepath.Join(home, "go", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\n" + actAsMain + "=1 exec '" + self + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "acmemail"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(home, ".config", "acmemail")
	os.MkdirAll(secrets, 0o700)
	mailPW, p12PW := filepath.Join(secrets, "mail.pw"), filepath.Join(secrets, "p12.pw")
	os.WriteFile(mailPW, []byte(env["ACMEMAIL_PASSWORD"]+"\n"), 0o600)
	os.WriteFile(p12PW, []byte("p12-secret\n"), 0o600)

	// obtain, from a shell with the roots in its environment (and a
	// configuration directory of its own).
	obtainEnv := map[string]string{"HOME": home, "ACMEMAIL_CA_ROOTS": env["ACMEMAIL_CA_ROOTS"]}
	args := append(obtainArgs(w), "--password-file", mailPW, "--p12-password-file", p12PW)
	if r := runCLI(t, obtainEnv, args...); r.code != 0 {
		t.Fatalf("obtain: exit %d\n%s", r.code, r.stderr)
	}
	now := time.Now()
	for _, file := range []string{"crontab", "systemd/acmemail-renew.service"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			w.SetRenewalWindow(now.Add(-2*time.Hour), now.Add(-time.Hour)) // due
			// The renewal window is asked again only after Retry-After.
			expire := filepath.Join(home, ".local", "share", "acmemail", "certificates", "alice@example.test", "renewal.json")
			os.Remove(expire)
			command := exampleCommand(t, file, home)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c := exec.CommandContext(ctx, "env", "-i", "HOME="+home, "sh", "-c", command)
			out, err := c.Output()
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			if err != nil || !strings.HasPrefix(string(out), "renewed alice@example.test") {
				t.Fatalf("examples/%s's %q under env -i: %v\nstdout: %s\nstderr: %s", file, command, err, out, stderr)
			}
		})
	}
}
