package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// TestSandboxCommandTry: "acmemail sandbox" prints an obtain command on
// stderr; run as printed (its one variable as the environment), it gets a
// certificate from that sandbox.
func TestSandboxCommandTry(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "sb")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stdout bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"sandbox", "--dir", dir}, strings.NewReader(""), &stdout, pw, func(string) string { return "" })
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var try string
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "  ACMEMAIL_CA_ROOTS=") {
			try = strings.TrimSpace(sc.Text())
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if try == "" {
		t.Fatalf("acmemail sandbox printed no command to try")
	}
	words := strings.Fields(try)
	if len(words) < 3 || words[1] != "acmemail" || words[2] != "obtain" {
		t.Fatalf("the command to try = %q", try)
	}
	env := map[string]string{
		"ACMEMAIL_CA_ROOTS":     strings.TrimPrefix(words[0], "ACMEMAIL_CA_ROOTS="),
		"ACMEMAIL_HOME":         filepath.Join(t.TempDir(), "home"),
		"ACMEMAIL_P12_PASSWORD": "test",
	}
	r := runCLI(t, env, words[2:]...)
	if r.code != 0 {
		t.Fatalf("%s: exit %d\n%s", try, r.code, r.stderr)
	}
	checkP12(t, strings.TrimSpace(r.stdout), "alice@example.test")
	cancel()
	if code := <-done; code != exitInterrupted && code != 0 {
		t.Errorf("sandbox exit %d", code)
	}
	// It names the TSIG key file for DNS updates (server certificates).
	if want := "dns-update     " + filepath.Join(dir, "tsig.key") + "\n"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout has no %q:\n%s", want, stdout.String())
	}
}
