package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// maxRSS is the peak memory any command may use, whatever its input.
const maxRSS = 100 << 20

// runBounded runs acmemail (this test binary acting as it) with args and
// env, and returns its exit status, stderr and peak resident memory. A
// run that does not end within a minute fails the test: a FIFO must not
// block it.
func runBounded(t *testing.T, env map[string]string, stdin []byte, args ...string) (int, string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	peak := filepath.Join(t.TempDir(), "peak")
	cmd.Env = []string{peakMemoryFile + "=" + peak, "HOME=" + t.TempDir(), "XDG_CONFIG_HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var errb bytes.Buffer
	cmd.Stdin, cmd.Stderr = bytes.NewReader(stdin), &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("acmemail %s did not end within a minute:\n%s", strings.Join(args, " "), errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(peak)
	if err != nil {
		t.Fatalf("acmemail did not say its peak memory: %v", err)
	}
	kb, err := strconv.ParseInt(strings.TrimSuffix(string(data), " kB"), 10, 64)
	if err != nil {
		t.Fatalf("peak memory %q: %v", data, err)
	}
	return code, errb.String(), kb << 10
}

// TestHostileFiles: every file a flag or variable names is read bounded:
// /dev/zero (endless) and a FIFO nobody writes to (blocks a plain open)
// are refused with an error naming the flag, in bounded time and memory.
// So is a configuration file of deeply nested inline tables.
func TestHostileFiles(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	nested := filepath.Join(dir, "nested.toml")
	if err := os.WriteFile(nested, []byte("[defaults]\nx = "+strings.Repeat("{a=", 10000)+"1"+strings.Repeat("}", 10000)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := obtainArgs(w)
	obtain := func(extra ...string) []string {
		return append(append([]string{}, base[:len(base)-1]...), append(extra, base[len(base)-1])...)
	}
	cases := []struct {
		name string
		env  map[string]string // added to the world's
		args func(path string) []string
	}{
		{"--issuer-roots", nil, func(p string) []string { return obtain("--issuer-roots", p) }},
		{"--smime-roots", nil, func(p string) []string { return obtain("--smime-roots", p) }},
		{"--p12-password-file", map[string]string{"ACMEMAIL_P12_PASSWORD": ""}, func(p string) []string { return obtain("--p12-password-file", p) }},
		{"--password-file", map[string]string{"ACMEMAIL_PASSWORD": ""}, func(p string) []string { return obtain("--password-file", p) }},
		{"--smtp-password-file", nil, func(p string) []string { return obtain("--smtp-user", "alice@example.test", "--smtp-password-file", p) }},
		{"--eab-hmac-file", nil, func(p string) []string { return obtain("--eab-kid", "kid", "--eab-hmac-file", p) }},
		{"--challenge-file", nil, func(p string) []string {
			return []string{"obtain", "--manual", "--yes", "--server", w.DirectoryURL, "--agree-tos", "--challenge-file", p, "alice@example.test"}
		}},
		{"--config", nil, func(p string) []string { return append([]string{"--config", p}, base...) }},
		{"ACMEMAIL_CA_ROOTS", nil, func(p string) []string { return base }},
		{"revoke --cert", nil, func(p string) []string { return []string{"revoke", "--server", w.DirectoryURL, "--cert", p} }},
		{"--also-password-file", nil, func(p string) []string {
			return obtain("--also", "bob@example.test", "--also-imap", "bob@example.test="+w.IMAPURL, "--also-password-file", "bob@example.test="+p)
		}},
	}
	for _, tc := range cases {
		for _, path := range []string{"/dev/zero", fifo} {
			t.Run(tc.name+" "+filepath.Base(path), func(t *testing.T) {
				e := map[string]string{}
				for k, v := range env {
					e[k] = v
				}
				for k, v := range tc.env {
					e[k] = v
				}
				e["ACMEMAIL_HOME"] = t.TempDir() // no account yet: the EAB key is read
				if tc.name == "ACMEMAIL_CA_ROOTS" {
					e["ACMEMAIL_CA_ROOTS"] = path
				}
				code, stderr, rss := runBounded(t, e, nil, tc.args(path)...)
				if code == 0 {
					t.Errorf("exit 0 with %s %s:\n%s", tc.name, path, stderr)
				}
				if !strings.Contains(stderr, path) && !strings.Contains(stderr, "not a regular file") {
					t.Errorf("the error does not name the file:\n%s", stderr)
				}
				if rss > maxRSS && !raceEnabled {
					t.Errorf("peak memory %d MiB, want < %d MiB", rss>>20, maxRSS>>20)
				}
			})
		}
	}
	t.Run("respond 20 MB", func(t *testing.T) {
		big := bytes.Repeat([]byte("X-Filler: "+strings.Repeat("y", 990)+"\r\n"), 20<<10)
		code, stderr, rss := runBounded(t, map[string]string{"ACMEMAIL_HOME": t.TempDir()}, big, "respond", "--print", "alice@example.test")
		if code == 0 || !strings.Contains(stderr, "larger than") && !strings.Contains(stderr, "too large") && !strings.Contains(stderr, "longer than") {
			t.Errorf("respond with 20 MB on stdin: exit %d\n%s", code, stderr)
		}
		if rss > maxRSS && !raceEnabled {
			t.Errorf("peak memory %d MiB, want < %d MiB", rss>>20, maxRSS>>20)
		}
	})
	t.Run("nested config", func(t *testing.T) {
		code, stderr, rss := runBounded(t, env, nil, append([]string{"--config", nested}, base...)...)
		if code != exitUsage || !strings.Contains(stderr, "nested") {
			t.Errorf("exit %d, want %d and what is wrong:\n%s", code, exitUsage, stderr)
		}
		if rss > maxRSS && !raceEnabled {
			t.Errorf("peak memory %d MiB, want < %d MiB", rss>>20, maxRSS>>20)
		}
	})
}
