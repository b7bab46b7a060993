package install

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServers stands in for Postfix's and Dovecot's programs over a temp
// root: postconf reads and edits ROOT/etc/postfix/main.cf, doveconf reads
// dovecot.conf and the conf.d files it includes, last setting wins.
type fakeServers struct {
	t    *testing.T
	root string

	mu              sync.Mutex
	calls           []string
	postfixVersion  string
	dovecotVersion  string
	postfixRunning  bool
	postfixReloadFn func() error
	missing         []string
}

func newFakeServers(t *testing.T) *fakeServers {
	t.Helper()
	root := t.TempDir()
	f := &fakeServers{t: t, root: root, postfixVersion: "3.7.11", dovecotVersion: "2.3.19.1 (9b53102964)", postfixRunning: true}
	must(t, os.MkdirAll(filepath.Join(root, "etc/postfix"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "etc/dovecot/conf.d"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "run/dovecot"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc/postfix/main.cf"), []byte("smtpd_tls_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem\nsmtpd_tls_key_file = /etc/ssl/private/ssl-cert-snakeoil.key\nsmtpd_tls_security_level = may\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "etc/dovecot/dovecot.conf"), []byte("base_dir = "+filepath.Join(root, "run/dovecot")+"\n!include conf.d/*.conf\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "etc/dovecot/conf.d/10-ssl.conf"), []byte("ssl = yes\nssl_cert = </etc/dovecot/private/dovecot.pem\nssl_key = </etc/dovecot/private/dovecot.key\n"), 0o644))
	// Dovecot "runs": its master.pid is this process.
	must(t, os.WriteFile(filepath.Join(root, "run/dovecot/master.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644))
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fakeServers) options(reload bool) Options {
	return Options{
		Root:   f.root,
		Reload: reload,
		run:    f.run,
		euid:   func() int { return 0 },
		look: func(name string) (string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if slices.Contains(f.missing, name) {
				return "", exec.ErrNotFound
			}
			return "/usr/sbin/" + name, nil
		},
	}
}

func (f *fakeServers) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// exitErr is an *exec.ExitError with status 1, as a failing program gives.
func exitErr(t *testing.T) error {
	err := exec.Command("false").Run()
	if err == nil {
		t.Fatal("false succeeded")
	}
	return err
}

func (f *fakeServers) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	missing := slices.Contains(f.missing, name)
	f.mu.Unlock()
	if missing {
		return nil, fmt.Errorf("%s is not installed (not found on PATH)", name)
	}
	switch name {
	case "postconf":
		return f.postconf(args)
	case "postfix":
		if len(args) != 3 || args[0] != "-c" || args[1] != filepath.Join(f.root, "etc/postfix") {
			f.t.Errorf("postfix %q: want -c ROOT/etc/postfix CMD", args)
		}
		switch args[2] {
		case "status":
			if !f.postfixRunning {
				return nil, exitErr(f.t)
			}
			return nil, nil
		case "reload":
			if f.postfixReloadFn != nil {
				return nil, f.postfixReloadFn()
			}
			return nil, nil
		}
	case "dovecot":
		if slices.Equal(args, []string{"--version"}) {
			return []byte(f.dovecotVersion + "\n"), nil
		}
	case "doveconf":
		return f.doveconf(args)
	case "doveadm":
		if slices.Equal(args, []string{"-c", filepath.Join(f.root, "etc/dovecot/dovecot.conf"), "reload"}) {
			return nil, nil
		}
	}
	f.t.Errorf("unexpected command %s %q", name, args)
	return nil, errors.New("unexpected command")
}

func (f *fakeServers) mainCF() map[string]string {
	return readSettings(f.t, filepath.Join(f.root, "etc/postfix/main.cf"), nil)
}

// readSettings reads "name = value" lines of path into m, following
// "!include conf.d/*.conf" (relative to path's directory) in name order.
func readSettings(t *testing.T, path string, m map[string]string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "!include ") {
			matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), strings.TrimPrefix(line, "!include ")))
			slices.Sort(matches)
			for _, inc := range matches {
				readSettings(t, inc, m)
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func (f *fakeServers) postconf(args []string) ([]byte, error) {
	if len(args) < 3 || args[0] != "-c" || args[1] != filepath.Join(f.root, "etc/postfix") {
		f.t.Errorf("postconf %q: want -c ROOT/etc/postfix first", args)
		return nil, errors.New("bad postconf")
	}
	args = args[2:]
	switch {
	case slices.Equal(args, []string{"-d", "-h", "mail_version"}):
		return []byte(f.postfixVersion + "\n"), nil
	case len(args) == 2 && args[0] == "-h", len(args) == 3 && args[0] == "-n" && args[1] == "-h":
		// No defaults here: -h and -n -h are the same.
		return []byte(f.mainCF()[args[len(args)-1]] + "\n"), nil
	case len(args) == 2 && args[0] == "-#":
		path := filepath.Join(f.root, "etc/postfix/main.cf")
		data, _ := os.ReadFile(path)
		var out []string
		for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
			if name, _, ok := strings.Cut(line, "="); ok && strings.TrimSpace(name) == args[1] {
				line = "#" + line
			}
			out = append(out, line)
		}
		return nil, os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o644)
	case len(args) == 2 && args[0] == "-e":
		k, v, _ := strings.Cut(args[1], "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		path := filepath.Join(f.root, "etc/postfix/main.cf")
		data, _ := os.ReadFile(path)
		var out []string
		done := false
		for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
			if name, _, ok := strings.Cut(line, "="); ok && strings.TrimSpace(name) == k {
				line, done = k+" = "+v, true
			}
			out = append(out, line)
		}
		if !done {
			out = append(out, k+" = "+v)
		}
		return nil, os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o644)
	}
	f.t.Errorf("unexpected postconf %q", args)
	return nil, errors.New("unexpected postconf")
}

func (f *fakeServers) doveconf(args []string) ([]byte, error) {
	if len(args) > 0 && args[0] == "-P" {
		args = args[1:]
	}
	conf := filepath.Join(f.root, "etc/dovecot/dovecot.conf")
	if len(args) != 4 || args[0] != "-c" || args[1] != conf || args[2] != "-h" {
		f.t.Errorf("doveconf %q: want [-P] -c ROOT/etc/dovecot/dovecot.conf -h NAME", args)
		return nil, errors.New("bad doveconf")
	}
	return []byte(readSettings(f.t, conf, nil)[args[3]] + "\n"), nil
}

// ---- certificates ------------------------------------------------------

type certSpec struct {
	host      string
	dnsNames  []string
	ekus      []x509.ExtKeyUsage
	keyUsage  x509.KeyUsage
	rsa       bool
	notBefore time.Time
	notAfter  time.Time
	otherKey  bool // the key given is not the certificate's
}

var (
	caOnce sync.Once
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
)

func testCA(t *testing.T) (*ecdsa.PrivateKey, *x509.Certificate) {
	caOnce.Do(func() {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "install test CA"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign,
		}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		c, _ := x509.ParseCertificate(der)
		caKey, caCert = k, c
	})
	return caKey, caCert
}

var rsaKeyOnce = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// makeCert issues a certificate as spec says (defaults: an EC key, the
// DNS name mail.example.test, serverAuth, digitalSignature, valid now).
func makeCert(t *testing.T, spec certSpec) Cert {
	t.Helper()
	ca, caC := testCA(t)
	if spec.host == "" {
		spec.host = "mail.example.test"
	}
	if spec.dnsNames == nil {
		spec.dnsNames = []string{spec.host}
	}
	if spec.ekus == nil {
		spec.ekus = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if spec.keyUsage == 0 {
		spec.keyUsage = x509.KeyUsageDigitalSignature
	}
	if spec.notBefore.IsZero() {
		spec.notBefore = time.Now().Add(-time.Minute)
	}
	if spec.notAfter.IsZero() {
		spec.notAfter = time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	}
	var key crypto.Signer
	if spec.rsa {
		key = rsaKeyOnce()
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(t, err)
		key = k
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		DNSNames:     spec.dnsNames,
		NotBefore:    spec.notBefore,
		NotAfter:     spec.notAfter,
		ExtKeyUsage:  spec.ekus,
		KeyUsage:     spec.keyUsage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caC, key.Public(), ca)
	must(t, err)
	if spec.otherKey {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		key = k
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caC.Raw})...)
	return Cert{Host: spec.host, KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), ChainPEM: chain, NotAfter: spec.notAfter}
}

// ---- tests -----------------------------------------------------------------

func checkFile(t *testing.T, path string, mode os.FileMode, want []byte) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
	if uid, gid, ok := owner(fi); ok && os.Geteuid() == 0 && (uid != 0 || gid != 0) {
		t.Errorf("%s: owner %d:%d, want root:root", path, uid, gid)
	}
	if want != nil {
		got, err := os.ReadFile(path)
		must(t, err)
		if string(got) != string(want) {
			t.Errorf("%s: content differs from what was installed", path)
		}
	}
}

func TestInstallPostfixAndDovecot(t *testing.T) {
	t.Parallel()
	f := newFakeServers(t)
	c := makeCert(t, certSpec{})
	res, err := Install(context.Background(), []string{"dovecot", "postfix"}, c, f.options(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Target != "postfix" || res[1].Target != "dovecot" {
		t.Fatalf("results %+v: want postfix then dovecot", res)
	}
	for _, r := range res {
		dir := filepath.Join(f.root, "etc/acmemail", r.Target, "mail.example.test")
		if r.KeyPath != filepath.Join(dir, "current/key.pem") || r.ChainPath != filepath.Join(dir, "current/chain.pem") {
			t.Errorf("%s: paths %s %s", r.Target, r.KeyPath, r.ChainPath)
		}
		if !r.Reloaded || r.Previous != "" || filepath.Dir(r.Version) != dir {
			t.Errorf("%s: %+v: want reloaded, a version under %s, no previous", r.Target, r, dir)
		}
		checkFile(t, r.KeyPath, 0o600, c.KeyPEM)
		checkFile(t, r.ChainPath, 0o644, c.ChainPEM)
		checkFile(t, r.Version, 0o755, nil)
		checkFile(t, dir, 0o755, nil)
		if link, err := os.Readlink(filepath.Join(dir, "current")); err != nil || link != filepath.Base(r.Version) {
			t.Errorf("%s: current -> %q (%v), want %s", r.Target, link, err, filepath.Base(r.Version))
		}
	}
	pf, dc := res[0], res[1]
	if got, want := f.mainCF()["smtpd_tls_chain_files"], pf.KeyPath+", "+pf.ChainPath; got != want {
		t.Errorf("main.cf smtpd_tls_chain_files = %q, want %q", got, want)
	}
	// The snakeoil pair is commented out (Postfix would warn at each smtpd
	// start), not lost.
	mainCF, _ := os.ReadFile(filepath.Join(f.root, "etc/postfix/main.cf"))
	for _, name := range []string{"smtpd_tls_cert_file", "smtpd_tls_key_file"} {
		if v, ok := f.mainCF()[name]; ok {
			t.Errorf("main.cf still sets %s = %s", name, v)
		}
		if !strings.Contains("\n"+string(mainCF), "\n#"+name+" = /etc/ssl/") {
			t.Errorf("main.cf lost %s:\n%s", name, mainCF)
		}
	}
	set := readSettings(t, filepath.Join(f.root, "etc/dovecot/dovecot.conf"), nil)
	if set["ssl_cert"] != "<"+dc.ChainPath || set["ssl_key"] != "<"+dc.KeyPath {
		t.Errorf("dovecot ssl_cert %q ssl_key %q", set["ssl_cert"], set["ssl_key"])
	}
	checkFile(t, filepath.Join(f.root, "etc/dovecot/conf.d/99-acmemail.conf"), 0o644, nil)
	calls := f.callList()
	if !slices.Contains(calls, "postfix -c "+filepath.Join(f.root, "etc/postfix")+" reload") ||
		!slices.Contains(calls, "doveadm -c "+filepath.Join(f.root, "etc/dovecot/dovecot.conf")+" reload") {
		t.Errorf("no reloads in %q", calls)
	}
}

func TestInstallAgainChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFakeServers(t)
	c := makeCert(t, certSpec{})
	first, err := Install(context.Background(), Targets, c, f.options(false))
	must(t, err)
	mainCF, _ := os.ReadFile(filepath.Join(f.root, "etc/postfix/main.cf"))
	f.mu.Lock()
	f.calls = nil
	f.mu.Unlock()
	second, err := Install(context.Background(), Targets, c, f.options(false))
	must(t, err)
	for i := range first {
		if second[i].Version != first[i].Version {
			t.Errorf("%s: installed again into %s, want the existing %s", first[i].Target, second[i].Version, first[i].Version)
		}
		if vs := versions(filepath.Dir(first[i].Version)); len(vs) != 1 {
			t.Errorf("%s: versions %q, want one", first[i].Target, vs)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(f.root, "etc/postfix/main.cf")); string(after) != string(mainCF) {
		t.Errorf("main.cf rewritten by a second install of the same certificate")
	}
	for _, call := range f.callList() {
		if strings.Contains(call, " -e ") {
			t.Errorf("second install ran %s", call)
		}
	}
}

func TestInstallRenewalKeepsPreviousVersions(t *testing.T) {
	t.Parallel()
	f := newFakeServers(t)
	var last []Result
	var lastCert Cert
	for i := range KeepVersions + 2 {
		c := makeCert(t, certSpec{})
		opts := f.options(true)
		opts.now = func() time.Time { return time.Now().Add(time.Duration(i) * time.Hour) }
		res, err := Install(context.Background(), []string{"postfix"}, c, opts)
		must(t, err)
		if i > 0 && res[0].Previous != last[0].Version {
			t.Errorf("install %d: previous %q, want %q", i, res[0].Previous, last[0].Version)
		}
		last, lastCert = res, c
	}
	dir := filepath.Dir(last[0].Version)
	if vs := versions(dir); len(vs) != KeepVersions || vs[len(vs)-1] != filepath.Base(last[0].Version) {
		t.Errorf("versions %q: want the newest %d", vs, KeepVersions)
	}
	checkFile(t, last[0].KeyPath, 0o600, lastCert.KeyPEM)
	if _, err := os.Stat(last[0].Previous); err != nil {
		t.Errorf("previous version gone: %v", err)
	}
}

func TestInstallUnknownTargetWritesNothing(t *testing.T) {
	t.Parallel()
	f := newFakeServers(t)
	_, err := Install(context.Background(), []string{"postfix", "nginx"}, makeCert(t, certSpec{}), f.options(true))
	if !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("err = %v, want ErrUnknownTarget", err)
	}
	assertNothingWritten(t, f)
}

func assertNothingWritten(t *testing.T, f *fakeServers) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(f.root, "etc/acmemail")); err == nil {
		t.Errorf("etc/acmemail was created")
	}
	if _, err := os.Lstat(filepath.Join(f.root, "etc/dovecot/conf.d", snippetName)); err == nil {
		t.Errorf("the Dovecot snippet was written")
	}
	for _, call := range f.callList() {
		if strings.Contains(call, " -e ") || strings.HasSuffix(call, " reload") {
			t.Errorf("ran %s", call)
		}
	}
}

func TestInstallRefusesUnfitCertificates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec certSpec
		edit func(*Cert)
	}{
		{"wrong name", certSpec{dnsNames: []string{"other.example.test"}}, nil},
		{"wildcard only", certSpec{dnsNames: []string{"*.example.test"}}, nil},
		{"no serverAuth", certSpec{ekus: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, nil},
		{"no digitalSignature", certSpec{keyUsage: x509.KeyUsageKeyEncipherment, rsa: true}, nil},
		{"keyEncipherment on EC", certSpec{keyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}, nil},
		{"not the key", certSpec{otherKey: true}, nil},
		{"expired", certSpec{notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)}, nil},
		{"host with a path", certSpec{host: "mail.example.test"}, func(c *Cert) { c.Host = "../../etc" }},
		{"host with a slash", certSpec{host: "mail.example.test"}, func(c *Cert) { c.Host = "mail.example.test/x" }},
		{"upper-case host", certSpec{host: "mail.example.test"}, func(c *Cert) { c.Host = "Mail.example.test" }},
		{"encrypted key", certSpec{}, func(c *Cert) {
			b, _ := pem.Decode(c.KeyPEM)
			b.Headers = map[string]string{"Proc-Type": "4,ENCRYPTED"}
			c.KeyPEM = pem.EncodeToMemory(b)
		}},
		{"two keys", certSpec{}, func(c *Cert) { c.KeyPEM = append(c.KeyPEM, c.KeyPEM...) }},
		{"no chain", certSpec{}, func(c *Cert) { c.ChainPEM = nil }},
		{"chain out of order", certSpec{}, func(c *Cert) {
			b1, rest := pem.Decode(c.ChainPEM)
			b2, _ := pem.Decode(rest)
			c.ChainPEM = append(pem.EncodeToMemory(b2), pem.EncodeToMemory(b1)...)
		}},
		{"other NotAfter", certSpec{}, func(c *Cert) { c.NotAfter = c.NotAfter.Add(time.Hour) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeServers(t)
			c := makeCert(t, tc.spec)
			if tc.edit != nil {
				tc.edit(&c)
			}
			res, err := Install(context.Background(), Targets, c, f.options(true))
			if err == nil || res != nil {
				t.Fatalf("Install = %v, %v: want it refused", res, err)
			}
			var te *TargetError
			if errors.As(err, &te) {
				t.Errorf("refused as a target's failure: %v", err)
			}
			assertNothingWritten(t, f)
		})
	}
}

func TestInstallRSAKeyWithKeyEncipherment(t *testing.T) {
	t.Parallel()
	f := newFakeServers(t)
	c := makeCert(t, certSpec{rsa: true, keyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment})
	if _, err := Install(context.Background(), []string{"postfix"}, c, f.options(false)); err != nil {
		t.Fatal(err)
	}
}

func TestInstallPreflightFailureWritesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(*fakeServers, *Options)
	}{
		{"no dovecot.conf", func(f *fakeServers, _ *Options) { os.Remove(filepath.Join(f.root, "etc/dovecot/dovecot.conf")) }},
		{"no main.cf", func(f *fakeServers, _ *Options) { os.Remove(filepath.Join(f.root, "etc/postfix/main.cf")) }},
		{"no doveadm", func(f *fakeServers, _ *Options) { f.missing = []string{"doveadm"} }},
		{"no postconf", func(f *fakeServers, _ *Options) { f.missing = []string{"postconf"} }},
		{"not root", func(_ *fakeServers, o *Options) { o.euid = func() int { return 1000 } }},
		{"root is a file", func(f *fakeServers, o *Options) {
			o.Root = filepath.Join(f.root, "etc/postfix/main.cf")
		}},
		{"group-writable etc", func(f *fakeServers, _ *Options) { os.Chmod(filepath.Join(f.root, "etc"), 0o775) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeServers(t)
			opts := f.options(true)
			tc.setup(f, &opts)
			res, err := Install(context.Background(), Targets, makeCert(t, certSpec{}), opts)
			if tc.name == "group-writable etc" {
				// Caught when the first directory is made: each target
				// fails on its own, and nothing is written.
				if err == nil || len(res) != 0 {
					t.Fatalf("Install = %v, %v: want both targets to fail", res, err)
				}
				assertNothingWritten(t, f)
				return
			}
			if err == nil || res != nil {
				t.Fatalf("Install = %v, %v: want a refusal", res, err)
			}
			assertNothingWritten(t, f)
		})
	}
}

func TestInstallReloadFailureKeepsFilesAndGoesOn(t *testing.T) {
	t.Parallel()
	f := newFakeServers(t)
	f.postfixReloadFn = func() error { return errors.New("postfix reload: fatal: something") }
	c := makeCert(t, certSpec{})
	res, err := Install(context.Background(), Targets, c, f.options(true))
	var te *TargetError
	if !errors.As(err, &te) || te.Target != "postfix" || te.Stage != "reload" {
		t.Fatalf("err = %v, want a postfix reload TargetError", err)
	}
	if len(res) != 2 || res[0].Reloaded || !res[1].Reloaded {
		t.Fatalf("results %+v: want postfix not reloaded, dovecot reloaded", res)
	}
	checkFile(t, res[0].KeyPath, 0o600, c.KeyPEM)
	if f.mainCF()["smtpd_tls_chain_files"] == "" {
		t.Errorf("main.cf not configured")
	}
}

func TestInstallServerNotRunning(t *testing.T) {
	t.Parallel()
	f := newFakeServers(t)
	f.postfixRunning = false
	must(t, os.Remove(filepath.Join(f.root, "run/dovecot/master.pid")))
	res, err := Install(context.Background(), Targets, makeCert(t, certSpec{}), f.options(true))
	must(t, err)
	for _, r := range res {
		if r.Reloaded {
			t.Errorf("%s reloaded though not running", r.Target)
		}
	}
	for _, call := range f.callList() {
		if strings.HasSuffix(call, " reload") {
			t.Errorf("ran %s", call)
		}
	}
}

func TestInstallDovecotSnippetNotIncluded(t *testing.T) {
	t.Parallel()
	f := newFakeServers(t)
	// A dovecot.conf that does not include conf.d: the snippet cannot
	// take effect, so it must not stay, and Dovecot is not reloaded.
	must(t, os.WriteFile(filepath.Join(f.root, "etc/dovecot/dovecot.conf"), []byte("ssl_cert = </etc/x.pem\nssl_key = </etc/x.key\n"), 0o644))
	res, err := Install(context.Background(), []string{"dovecot"}, makeCert(t, certSpec{}), f.options(true))
	var te *TargetError
	if !errors.As(err, &te) || te.Target != "dovecot" || te.Stage != "configure" {
		t.Fatalf("err = %v, want a dovecot configure TargetError", err)
	}
	if len(res) != 1 || res[0].Reloaded {
		t.Fatalf("results %+v", res)
	}
	if _, err := os.Stat(filepath.Join(f.root, "etc/dovecot/conf.d", snippetName)); err == nil {
		t.Errorf("the snippet that does not take effect stayed")
	}
}

func TestInstallOlderPostfixAndDovecot24(t *testing.T) {
	t.Parallel()
	f := newFakeServers(t)
	f.postfixVersion = "3.3.0"
	f.dovecotVersion = "2.4.1 (7e1fb2e0b1)"
	res, err := Install(context.Background(), Targets, makeCert(t, certSpec{}), f.options(false))
	must(t, err)
	m := f.mainCF()
	if m["smtpd_tls_cert_file"] != res[0].ChainPath || m["smtpd_tls_key_file"] != res[0].KeyPath || m["smtpd_tls_chain_files"] != "" {
		t.Errorf("Postfix 3.3 main.cf: %v", m)
	}
	set := readSettings(t, filepath.Join(f.root, "etc/dovecot/dovecot.conf"), nil)
	if set["ssl_server_cert_file"] != res[1].ChainPath || set["ssl_server_key_file"] != res[1].KeyPath {
		t.Errorf("Dovecot 2.4 settings: %v", set)
	}
}

func TestParseTargets(t *testing.T) {
	got, err := ParseTargets("dovecot, Postfix,dovecot")
	if err != nil || !slices.Equal(got, []string{"dovecot", "postfix"}) {
		t.Errorf("ParseTargets = %q, %v", got, err)
	}
	for _, bad := range []string{"", ",", "exim", "postfix,nginx"} {
		if _, err := ParseTargets(bad); err == nil {
			t.Errorf("ParseTargets(%q) accepted", bad)
		}
	}
}

// FuzzCheckHost: a host name that passes becomes a directory name, so it
// must be a plain DNS name: no path separators, no dot segments, nothing
// outside [a-z0-9.-].
func FuzzCheckHost(f *testing.F) {
	for _, s := range []string{"mail.example.test", "../x", "a..b", "-a.b", "a.b-", "xn--bcher-kva.example", "a/b.c", "A.B", ".", "a.b."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := checkHost(s)
		if err != nil {
			return
		}
		if h != s || filepath.Base(h) != h || h == "." || h == ".." || strings.Contains(h, "..") || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") {
			t.Fatalf("checkHost accepted %q", s)
		}
		for _, r := range h {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
				t.Fatalf("checkHost accepted %q", s)
			}
		}
	})
}

// TestInstallOneHostPerServer: --install points each server at one host's
// certificate; installing another host's would make the servers switch
// between the two at each renewal, so it is refused and nothing is
// written, while the first host's renewals still install.
func TestInstallOneHostPerServer(t *testing.T) {
	t.Parallel()
	f := newFakeServers(t)
	if _, err := Install(context.Background(), Targets, makeCert(t, certSpec{}), f.options(true)); err != nil {
		t.Fatal(err)
	}
	before := f.mainCF()["smtpd_tls_chain_files"]
	for _, target := range Targets {
		_, err := Install(context.Background(), []string{target}, makeCert(t, certSpec{host: "mx.example.test"}), f.options(true))
		if err == nil || !strings.Contains(err.Error(), "mail.example.test") {
			t.Errorf("%s: installing a second host: %v, want a refusal naming mail.example.test", target, err)
		}
		if _, err := os.Stat(filepath.Join(f.root, "etc/acmemail", target, "mx.example.test")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the second host's files were written: %v", target, err)
		}
	}
	if got := f.mainCF()["smtpd_tls_chain_files"]; got != before {
		t.Errorf("main.cf changed to %q", got)
	}
	if _, err := Install(context.Background(), Targets, makeCert(t, certSpec{}), f.options(true)); err != nil {
		t.Errorf("the first host's renewal: %v", err)
	}
}
