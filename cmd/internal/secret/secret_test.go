package secret

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/issuer"
)

// Tests never prompt: a test run from a terminal must not wait for input.
func init() { TTYPath = filepath.Join(os.TempDir(), "acmemail-test-no-tty", "tty") }

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGet: a file beats the environment, which beats a prompt; without a
// terminal the error says what to give.
func TestGet(t *testing.T) {
	env := map[string]string{"ACMEMAIL_P12_PASSWORD": "from-env"}
	s := &Sources{Getenv: func(k string) string { return env[k] }}
	spec := Spec{What: "PKCS#12 password", EnvVar: "ACMEMAIL_P12_PASSWORD", Flag: "p12-password-file", Confirm: true}
	if v, err := s.Get(spec); err != nil || v != "from-env" {
		t.Errorf("Get from the environment = %q, %v", v, err)
	}
	withFile := spec
	withFile.File = writeFile(t, "from-file\r\nsecond\n")
	if v, err := s.Get(withFile); err != nil || v != "from-file" {
		t.Errorf("Get from a file = %q, %v", v, err)
	}
	withFile.File = filepath.Join(t.TempDir(), "missing")
	if _, err := s.Get(withFile); err == nil || !strings.HasPrefix(err.Error(), "read the PKCS#12 password from --p12-password-file: ") || !errors.As(err, new(*issuer.UsageError)) {
		t.Errorf("Get from a missing file = %v, want a usage error naming the flag", err)
	}

	delete(env, "ACMEMAIL_P12_PASSWORD")
	for _, tt := range []struct {
		spec Spec
		want string
	}{
		{spec, "the PKCS#12 password is needed: set ACMEMAIL_P12_PASSWORD or use --p12-password-file (no terminal to ask on)"},
		{Spec{What: "mail password for bob", Flag: "also-password-file bob@example.test=FILE"}, "the mail password for bob is needed: use --also-password-file bob@example.test=FILE (no terminal to ask on)"},
	} {
		_, err := s.Get(tt.spec)
		if err == nil || err.Error() != tt.want || !errors.Is(err, ErrNoTTY) || !errors.As(err, new(*issuer.UsageError)) {
			t.Errorf("Get without a terminal = %v, want a usage error %q", err, tt.want)
		}
	}
}

func TestReadFile(t *testing.T) {
	for _, tt := range []struct {
		name, content, want, err string
	}{
		{"first line", "pw\nsecond\n", "pw", ""},
		{"CRLF", "pw\r\n", "pw", ""},
		{"no newline", "pw", "pw", ""},
		{"empty", "", "", "the file's first line is empty"},
		{"empty first line", "\nsecond\n", "", "the file's first line is empty"},
		{"NUL", "pw\x00\n", "", "the file's first line holds a NUL byte"},
		{"64 KiB line", strings.Repeat("x", 64<<10), "", "the file's first line is longer than 64 KiB"},
		{"long line", strings.Repeat("x", 64<<10-1) + "\n", strings.Repeat("x", 64<<10-1), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ReadFile(writeFile(t, tt.content))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("ReadFile = %q, %v; want error %q", v, err, tt.err)
				}
				return
			}
			if err != nil || v != tt.want {
				t.Errorf("ReadFile = %q, %v; want %q", v, err, tt.want)
			}
		})
	}
}

// TestReadFileDirectory: a directory is not a secret file.
func TestReadFileDirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadFile(dir); err == nil || err.Error() != dir+" is not a regular file (a directory)" {
		t.Errorf("ReadFile(dir) = %v, want that it is not a regular file", err)
	}
}

// hints are the hints err carries, one a line.
func hints(err error) string {
	var b strings.Builder
	var he *issuer.HintError
	for e := err; errors.As(e, &he); e = he.Err {
		for _, h := range he.Hints {
			b.WriteString(h + "\n")
		}
	}
	return b.String()
}
