package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestObtainAgainstSandbox runs the example end to end, so the code people
// copy from it is known to work, not only to compile.
func TestObtainAgainstSandbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := sandbox.Start(ctx, sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const email = "dana@example.test"
	if err := w.AddUser(email, "mail-secret"); err != nil {
		t.Fatal(err)
	}
	roots := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(roots, w.TLSRootsPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cfg := config{
		Directory: w.DirectoryURL, IMAP: w.IMAPURL, SMTP: w.SMTPURL, Email: email,
		MailPassword: "mail-secret", P12Password: "p12-secret", StateDir: t.TempDir(),
		CARoots: roots, DNSResolver: w.DNSAddr,
		Stdout: func(format string, args ...any) (int, error) { return fmt.Fprintf(&out, format, args...) },
	}
	if err := obtain(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	path := strings.TrimSpace(out.String())
	if filepath.Base(path) != "cert.p12" {
		t.Fatalf("printed %q, want the path of cert.p12", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, leaf, _, err := pkcs12.DecodeChain(data, "p12-secret")
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.EmailAddresses) != 1 || leaf.EmailAddresses[0] != email {
		t.Fatalf("certificate is for %v, want %s", leaf.EmailAddresses, email)
	}
	if st := w.Stats(); st.RepliesReceived != 1 || st.RepliesAccepted != 1 {
		t.Fatalf("the sandbox received %d replies (%d accepted), want 1", st.RepliesReceived, st.RepliesAccepted)
	}
}
