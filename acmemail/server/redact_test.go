package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// leakyProvider fails the way lego's DuckDNS client does when the request
// cannot be made (the URL with the token in its query) and the way an API
// that echoes what it was sent does.
type leakyProvider struct{ err error }

func (p leakyProvider) Present(ctx context.Context, domain, token, keyAuth string) error {
	return p.err
}
func (p leakyProvider) CleanUp(ctx context.Context, domain, token, keyAuth string) error {
	return p.err
}

func TestProviderErrorsRedacted(t *testing.T) {
	const token = "sekr1tT0ken/Value+x"
	t.Setenv("DUCKDNS_TOKEN", token)
	t.Setenv("EXAMPLE_API_PASSWORD", "hunter2-but-longer")
	t.Setenv("DUCKDNS_PROPAGATION_TIMEOUT", "120") // not a credential: kept
	t.Setenv("RFC2136_TSIG_KEY", "acme-update.")   // a key's name: kept
	keyFile := filepath.Join(t.TempDir(), "tsig.key")
	const tsig = "c2VjcmV0LWZyb20tYS1iaW5kLWtleS1maWxl"
	if err := os.WriteFile(keyFile, []byte("key \"acme\" {\n\talgorithm hmac-sha256;\n\tsecret \""+tsig+"\";\n};\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RFC2136_TSIG_FILE", keyFile)

	leak := fmt.Errorf("unable to communicate with the API server: error: Get %q: dial tcp: lookup www.duckdns.org: no such host; "+
		"the API said: bad token %s, password hunter2-but-longer, key %s; see https://admin:pa55w0rd@dns.example/zones?api_key=zz9&zone=example.com (timeout 120, key acme-update.)",
		"https://www.duckdns.org/update?clear=false&domains=mail.duckdns.org&token=sekr1tT0ken%2FValue%2Bx&txt=abc", token, tsig)
	for name, f := range map[string]func() error{
		"Present": func() error {
			return Present(context.Background(), leakyProvider{leak}, "", "mail.duckdns.org", "", "ka")
		},
		"CleanUp": func() error {
			return CleanUp(context.Background(), leakyProvider{leak}, "", "mail.duckdns.org", "", "ka")
		},
	} {
		err := f()
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		msg := err.Error()
		for _, secret := range []string{token, "sekr1tT0ken%2FValue%2Bx", "hunter2-but-longer", tsig, "pa55w0rd", "zz9"} {
			if strings.Contains(msg, secret) {
				t.Errorf("%s: the error holds %q:\n%s", name, secret, msg)
			}
		}
		for _, kept := range []string{"no such host", "mail.duckdns.org", "timeout 120", "zone=example.com", "admin:" + redacted + "@dns.example", "token=" + redacted, "acme-update."} {
			if !strings.Contains(msg, kept) {
				t.Errorf("%s: the error lost %q:\n%s", name, kept, msg)
			}
		}
	}

	// An interrupted run still reads as one; nothing else is reachable.
	err := Present(context.Background(), leakyProvider{fmt.Errorf("request %s: %w", token, context.Canceled)}, "", "h", "", "ka")
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), token) {
		t.Errorf("canceled: %v (errors.Is canceled: %v)", err, errors.Is(err, context.Canceled))
	}
	if Present(context.Background(), leakyProvider{nil}, "", "h", "", "ka") != nil {
		t.Error("a provider that succeeded got an error")
	}
}

// FuzzRedactError: whatever the error says, no credential of the
// environment is left in it. (A secret with capitals could be spelled by
// the replacement and its neighbours, as "REDACTEDxy" holds "DACTEDxy";
// one without cannot, so for those the property is exact.)
func FuzzRedactError(f *testing.F) {
	f.Add("Get \"https://x/update?token=secretvalue1&a=b\"", "secretvalue1")
	f.Add("password s3cr3t/+v4lue echoed as s3cr3t%2F%2Bv4lue", "s3cr3t/+v4lue")
	f.Add("https://u:secretvalue1@h/ and secretvaluesecretvalue", "secretvalue")
	f.Fuzz(func(t *testing.T, text, secret string) {
		if len(secret) < minSecret || strings.ContainsAny(secret, "\x00=ABCDEFGHIJKLMNOPQRSTUVWXYZ") || strings.TrimSpace(secret) != secret {
			t.Skip()
		}
		err := redactError(errors.New(text), []string{"X_API_TOKEN=" + secret})
		if msg := err.Error(); strings.Contains(msg, secret) {
			t.Errorf("redactError(%q) = %q still holds %q", text, msg, secret)
		}
		if errors.Unwrap(err) != nil {
			t.Errorf("redactError(%q) unwraps to %v, want nothing", text, errors.Unwrap(err))
		}
	})
}

// TestRFC2136ErrorsRedacted: lego quotes a TSIG key file's line it cannot
// parse; the secret in it never reaches the error, also when the
// provider's variables come from the caller's getenv, not the process's.
func TestRFC2136ErrorsRedacted(t *testing.T) {
	const secret = "c2VjcmV0LWluLWEtb25lLWxpbmUta2V5LWZpbGU="
	keyFile := filepath.Join(t.TempDir(), "tsig.key")
	if err := os.WriteFile(keyFile, []byte(`key "acme" { algorithm hmac-sha256; secret "`+secret+`"; };`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"RFC2136_NAMESERVER": "127.0.0.1:53", "RFC2136_TSIG_FILE": keyFile}
	_, err := NewProvider("rfc2136", func(k string) string { return env[k] })
	if err == nil {
		t.Skip("this lego reads the one-line key file; nothing to redact")
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), secret[:20]) {
		t.Errorf("the error holds the TSIG secret: %v", err)
	}
}
