package standalone

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/mailbox"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Options.Logger == nil {
		cfg.Options.Logger = testLogger(t)
	}
	s, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start() = %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// checkFile checks that path holds want (if not nil) and, where modes are
// Unix modes, has mode perm.
func checkFile(t *testing.T, path string, perm os.FileMode, want []byte) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want != nil && string(data) != string(want) {
		t.Errorf("%s holds %q, want %q", path, data, want)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != perm {
			t.Errorf("%s has mode %04o, want %04o", path, fi.Mode().Perm(), perm)
		}
	}
	return data
}

// TestStartFiles: the directory is made, the roots, the EAB key, the TSIG
// key and each user's password and token are written where the Server says, secrets
// readable by the owner alone.
func TestStartFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "sb")
	s := start(t, Config{Dir: dir, Options: sandbox.Options{OAuth: sandbox.OAuthAlso, ExternalAccountRequired: true}})
	if s.Dir != dir || s.RootsFile != filepath.Join(dir, "roots.pem") || s.IssuerRootFile != filepath.Join(dir, "issuer-root.pem") {
		t.Errorf("Dir %q RootsFile %q IssuerRootFile %q", s.Dir, s.RootsFile, s.IssuerRootFile)
	}
	checkFile(t, s.RootsFile, 0o644, s.World.TLSRootsPEM)
	checkFile(t, s.IssuerRootFile, 0o644, s.World.IssuerRootPEM)
	if s.World.EABKeyID == "" || s.EABHMACFile != filepath.Join(dir, "eab.hmac") {
		t.Fatalf("EABKeyID %q EABHMACFile %q", s.World.EABKeyID, s.EABHMACFile)
	}
	checkFile(t, s.EABHMACFile, 0o600, []byte(s.World.EABHMACKey+"\n"))
	if s.TSIGKeyFile != filepath.Join(dir, "tsig.key") {
		t.Errorf("TSIGKeyFile %q", s.TSIGKeyFile)
	}
	key := string(checkFile(t, s.TSIGKeyFile, 0o600, s.World.TSIG.File()))
	if !strings.Contains(key, s.World.TSIG.Secret) || !strings.Contains(key, "algorithm hmac-sha256;") {
		t.Errorf("tsig.key = %q, want the world's key", key)
	}

	const alice = "alice@example.test"
	if err := s.AddUser(alice); err != nil {
		t.Fatal(err)
	}
	if s.PasswordFile(alice) != filepath.Join(dir, alice+".password") || s.TokenFile(alice) != filepath.Join(dir, alice+".token") {
		t.Errorf("PasswordFile %q TokenFile %q", s.PasswordFile(alice), s.TokenFile(alice))
	}
	pw := strings.TrimSuffix(string(checkFile(t, s.PasswordFile(alice), 0o600, nil)), "\n")
	tok := strings.TrimSuffix(string(checkFile(t, s.TokenFile(alice), 0o600, nil)), "\n")
	if len(pw) < 32 || len(tok) < 32 || pw == tok {
		t.Errorf("password %q, token %q: want two random strings", pw, tok)
	}
	// The password written is the mailbox's.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.World.TLSRootsPEM)
	ep, err := mailbox.ParseSMTPURL(s.World.SMTPURL)
	if err != nil {
		t.Fatal(err)
	}
	sender := mailbox.NewSender(mailbox.SMTPConfig{Endpoint: ep, TLSConfig: issuer.TLSConfig(pool),
		Credentials: mailbox.Credentials{Username: alice, Password: pw}, Logger: testLogger(t)})
	defer sender.Close()
	if err := sender.Prepare(t.Context()); err != nil {
		t.Errorf("log in with the password file's password: %v", err)
	}
	if err := s.AddUser("not an address"); err == nil {
		t.Error("AddUser of a malformed address succeeded")
	}
}

// TestStartTempDir: without Dir, a new temporary directory.
func TestStartTempDir(t *testing.T) {
	s := start(t, Config{})
	t.Cleanup(func() { os.RemoveAll(s.Dir) })
	if !strings.Contains(filepath.Base(s.Dir), "acmemail-sandbox-") {
		t.Errorf("Dir = %q, want a new acmemail-sandbox-* directory", s.Dir)
	}
	if _, err := os.Stat(s.RootsFile); err != nil {
		t.Error(err)
	}
	if s.EABHMACFile != "" {
		t.Errorf("EABHMACFile = %q without ExternalAccountRequired", s.EABHMACFile)
	}
	if err := s.AddUser("bob@example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.TokenFile("bob@example.test")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a token file without OAuth: %v", err)
	}
}

func TestObtainCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "it's here")
	s := start(t, Config{Dir: dir})
	w := s.World
	got := s.ObtainCommand("alice@example.test")
	want := "ACMEMAIL_CA_ROOTS=" + shellWord(s.RootsFile) + " acmemail obtain --server " + w.DirectoryURL +
		" --imap " + w.IMAPURL + " --smtp " + w.SMTPURL + " --dns-resolver " + w.DNSAddr +
		" --issuer-roots " + shellWord(s.IssuerRootFile) + " --password-file " + shellWord(s.PasswordFile("alice@example.test")) +
		" --agree-tos alice@example.test"
	if got != want {
		t.Errorf("ObtainCommand =\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(got, `'\''s here`) {
		t.Errorf("ObtainCommand does not quote the directory: %s", got)
	}

	s = start(t, Config{Dir: t.TempDir(), Options: sandbox.Options{OAuth: sandbox.OAuthOnly}})
	got = s.ObtainCommand("alice@example.test")
	if want := "--oauth-token-command " + shellWord("cat "+shellWord(s.TokenFile("alice@example.test"))) + " --agree-tos"; !strings.Contains(got, want) {
		t.Errorf("ObtainCommand with OAuth only = %s, want %s in it", got, want)
	}
	if strings.Contains(got, "--password-file") {
		t.Errorf("ObtainCommand with OAuth only names a password file: %s", got)
	}
}

func TestShellWord(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/sb/alice@example.test.password": "/tmp/sb/alice@example.test.password",
		"":                                    "''",
		"a b":                                 "'a b'",
		"it's":                                `'it'\''s'`,
		"$HOME":                               "'$HOME'",
	} {
		if got := shellWord(in); got != want {
			t.Errorf("shellWord(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestServeOwnMail: with the world's own mail, Serve waits for ctx.
func TestServeOwnMail(t *testing.T) {
	s := start(t, Config{Dir: t.TempDir()})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := s.Serve(ctx); err != nil {
		t.Errorf("Serve() = %v", err)
	}
}

const caAddress = "acme@ca.example.net"

// provider is another world standing in for a real mail system, with a
// mailbox for the CA.
func provider(t *testing.T) (w *sandbox.World, login func(string) (string, *x509.CertPool, error)) {
	t.Helper()
	w, err := sandbox.Start(t.Context(), sandbox.Options{Logger: testLogger(t).With("world", "provider")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := w.AddUser(caAddress, "ca-secret"); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(w.TLSRootsPEM)
	return w, func(user string) (string, *x509.CertPool, error) {
		if user != caAddress {
			t.Errorf("Login(%q), want the CA's address", user)
		}
		return "ca-secret", pool, nil
	}
}

// TestExternalMail: the CA logs in to the mail system, and Serve hands
// what arrives in its mailbox there to the CA.
func TestExternalMail(t *testing.T) {
	p, login := provider(t)
	s := start(t, Config{Dir: t.TempDir(), Mail: &Mail{
		Address: caAddress, IMAP: p.IMAPURL, SMTP: p.SMTPURL, DNSResolver: p.DNSAddr,
		Login: login, Logger: testLogger(t),
	}})
	if s.World.CAFrom != caAddress {
		t.Errorf("CAFrom = %q, want %q", s.World.CAFrom, caAddress)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	raw := "From: alice@example.com\r\nTo: " + caAddress + "\r\nSubject: hello\r\n\r\nnot a reply\r\n"
	if err := p.Deliver(caAddress, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.World.Stats().RepliesReceived == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the mail in the CA's mailbox did not reach the CA")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := s.World.Stats(); st.RepliesRejected != 1 {
		t.Errorf("the CA rejected %d replies (%q), want 1", st.RepliesRejected, st.RejectedReasons)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve() = %v after ctx ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
}

// TestExternalMailErrors: malformed settings name the setting and reach no
// server; a refused login stops Start before the CA starts.
func TestExternalMailErrors(t *testing.T) {
	p, login := provider(t)
	good := Mail{Address: caAddress, IMAP: p.IMAPURL, SMTP: p.SMTPURL, Logger: testLogger(t)}
	for _, tc := range []struct {
		name    string
		edit    func(*Mail)
		setting string
	}{
		{"imap", func(m *Mail) { m.IMAP = "imap://x/INBOX" }, "mail_imap"},
		{"smtp", func(m *Mail) { m.SMTP = "" }, "mail_smtp"},
		{"resolver", func(m *Mail) { m.DNSResolver = "nonsense" }, "dns_resolver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good
			m.Login = func(string) (string, *x509.CertPool, error) {
				t.Error("Login called for malformed settings")
				return "", nil, errors.New("no")
			}
			tc.edit(&m)
			_, err := Start(t.Context(), Config{Dir: t.TempDir(), Mail: &m})
			var se *issuer.SettingError
			if !errors.As(err, &se) || se.Setting != tc.setting {
				t.Errorf("Start() = %v, want a SettingError for %s", err, tc.setting)
			}
		})
	}

	m := good
	m.Login = func(string) (string, *x509.CertPool, error) { return "", nil, errors.New("no password today") }
	if _, err := Start(t.Context(), Config{Dir: t.TempDir(), Mail: &m}); err == nil || err.Error() != "no password today" {
		t.Errorf("Start() = %v, want Login's error", err)
	}

	m.Login = func(user string) (string, *x509.CertPool, error) {
		_, pool, err := login(user)
		return "wrong", pool, err
	}
	dir := t.TempDir()
	_, err := Start(t.Context(), Config{Dir: dir, Mail: &m})
	var me *issuer.MailError
	if !errors.As(err, &me) || !me.SMTP || me.URL != p.SMTPURL || !errors.Is(err, mailbox.ErrAuthFailed) {
		t.Errorf("Start() with a wrong password = %v, want a MailError for the submission server and ErrAuthFailed", err)
	}
	if !strings.HasPrefix(err.Error(), "log in to the submission server for the CA: ") {
		t.Errorf("Start() = %q", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "roots.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("roots.pem after a failed login: %v", err)
	}
}
