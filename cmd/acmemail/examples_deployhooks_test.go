package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Stand-ins for Postfix's and Dovecot's programs, for the deploy hooks of
// examples/deploy-hooks: postconf reads and edits DIR/main.cf, doveconf
// reads dovecot.conf and conf.d/*.conf (last setting wins); what changes
// something is logged to $FAKE_LOG. The real programs are exercised by
// .ci/realmail.sh.
var fakeMailPrograms = map[string]string{
	"postconf": `dir=$2; shift 2
case $1 in
-d) echo "${FAKE_POSTFIX_VERSION:-3.7.11}" ;;
-h) sed -n "s/^$2 *= *//p" "$dir/main.cf" | tail -n 1 ;;
-n) sed -n "s/^$3 *= *//p" "$dir/main.cf" | tail -n 1 ;;
-#) sed -i "s/^$2 *=/#&/" "$dir/main.cf"; echo "postconf -# $2" >>"$FAKE_LOG" ;;
-e) n=${2%% =*}; grep -v "^$n *=" "$dir/main.cf" >"$dir/main.cf.new" || true
    printf '%s\n' "$2" >>"$dir/main.cf.new"; mv "$dir/main.cf.new" "$dir/main.cf"; echo "postconf -e $2" >>"$FAKE_LOG" ;;
*) exit 2 ;;
esac`,
	"postfix": `case $3 in
status) [ -e "$2/running" ] ;;
reload) [ -z "${FAKE_POSTFIX_RELOAD_FAIL:-}" ] || { echo "postfix/postfix-script: fatal: reload failed" >&2; exit 1; }
    echo "postfix reload" >>"$FAKE_LOG" ;;
*) exit 2 ;;
esac`,
	"dovecot": `echo "${FAKE_DOVECOT_VERSION:-2.3.19.1 (9b53102964)}"`,
	"doveconf": `[ "$1" != -P ] || shift
conf=$2
cat "$conf" "$(dirname "$conf")"/conf.d/*.conf 2>/dev/null | sed -n "s/^$4 *= *//p" | tail -n 1`,
	"doveadm": `[ "$3" = reload ] && echo "doveadm reload" >>"$FAKE_LOG"`,
}

// hookWorld is a root with a Postfix and a Dovecot configuration, fake
// programs, and a running Postfix and Dovecot.
type hookWorld struct {
	root, bin, log, state string
}

func newHookWorld(t *testing.T) *hookWorld {
	t.Helper()
	d := t.TempDir()
	w := &hookWorld{root: filepath.Join(d, "root"), bin: filepath.Join(d, "bin"), log: filepath.Join(d, "log"), state: filepath.Join(d, "state")}
	for _, dir := range []string{w.bin, w.state, w.root + "/etc/postfix", w.root + "/etc/dovecot/conf.d", w.root + "/run/dovecot"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(d, 0o755)
	files := map[string]string{
		w.root + "/etc/postfix/main.cf":            "smtpd_tls_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem\nsmtpd_tls_key_file = /etc/ssl/private/ssl-cert-snakeoil.key\n",
		w.root + "/etc/postfix/running":            "",
		w.root + "/etc/dovecot/dovecot.conf":       "base_dir = " + w.root + "/run/dovecot\n!include conf.d/*.conf\n",
		w.root + "/etc/dovecot/conf.d/10-ssl.conf": "ssl_cert = </etc/dovecot/private/dovecot.pem\nssl_key = </etc/dovecot/private/dovecot.key\n",
		w.root + "/run/dovecot/master.pid":         strconv.Itoa(os.Getpid()) + "\n",
		w.log:                                      "",
	}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range fakeMailPrograms {
		if err := os.WriteFile(filepath.Join(w.bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// serverCert writes a key and chain for host into the state directory, as
// acmemail keeps them, and returns their paths.
func (w *hookWorld) serverCert(t *testing.T, name, host string, ekus []x509.ExtKeyUsage, usage x509.KeyUsage) (keyPath, chainPath string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hook test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), DNSNames: []string{host}, NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: ekus, KeyUsage: usage}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPath, chainPath = filepath.Join(w.state, name+".key.pem"), filepath.Join(w.state, name+".chain.pem")
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chainPath, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	return keyPath, chainPath
}

// runHook runs examples/deploy-hooks/NAME under env -i with the variables
// a deploy hook of acmemail gets.
func (w *hookWorld) runHook(t *testing.T, name, host, keyPath, chainPath string, extra ...string) (string, error) {
	t.Helper()
	hook, err := filepath.Abs(filepath.Join("..", "..", "examples", "deploy-hooks", name))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-i", "PATH=" + w.bin + ":/usr/bin:/bin", "HOME=" + w.state,
		"ACMEMAIL_EMAIL=" + host, "ACMEMAIL_KEY_PATH=" + keyPath, "ACMEMAIL_CHAIN_PATH=" + chainPath,
		"ACMEMAIL_CERT_PATH=" + chainPath, "ACMEMAIL_NOT_AFTER=2030-01-01T00:00:00Z", "ACMEMAIL_SERIAL=02",
		"ACMEMAIL_INSTALL_ROOT=" + w.root, "FAKE_LOG=" + w.log}, extra...)
	cmd := exec.Command("env", append(args, hook)...)
	cmd.Dir = w.state
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (w *hookWorld) logLines(t *testing.T) []string {
	data, err := os.ReadFile(w.log)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(w.log, nil, 0o644)
	return strings.Fields(strings.ReplaceAll(string(data), " ", "_"))
}

func fileModeIs(t *testing.T, path string, mode os.FileMode, sameAs string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
	got, _ := os.ReadFile(path)
	want, _ := os.ReadFile(sameAs)
	if string(got) != string(want) {
		t.Errorf("%s is not a copy of %s", path, sameAs)
	}
}

// TestExamplesDeployHooks runs examples/deploy-hooks/postfix and dovecot as
// acmemail runs a deploy hook (under env -i, with the ACMEMAIL_* variables
// of the certificate): they install key and chain with the right modes,
// configure the server once (a second run changes nothing), reload it,
// and refuse a certificate without serverAuth, leaving the installed one.
func TestExamplesDeployHooks(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("the deploy hooks install root-owned keys: run as root")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("the deploy hooks check certificates with openssl")
	}
	const host = "mail.example.test"
	for _, target := range []string{"postfix", "dovecot"} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			w := newHookWorld(t)
			key, chain := w.serverCert(t, "good", host, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, x509.KeyUsageDigitalSignature)
			if out, err := w.runHook(t, target, host, key, chain); err != nil {
				t.Fatalf("hook: %v\n%s", err, out)
			}
			dir := filepath.Join(w.root, "etc/acmemail", target, host)
			cur, err := os.Readlink(filepath.Join(dir, "current"))
			if err != nil {
				t.Fatal(err)
			}
			fileModeIs(t, filepath.Join(dir, cur, "key.pem"), 0o600, key)
			fileModeIs(t, filepath.Join(dir, cur, "chain.pem"), 0o644, chain)
			wantKey, wantChain := filepath.Join(dir, "current", "key.pem"), filepath.Join(dir, "current", "chain.pem")
			switch target {
			case "postfix":
				mainCF, _ := os.ReadFile(filepath.Join(w.root, "etc/postfix/main.cf"))
				if !strings.Contains(string(mainCF), "\nsmtpd_tls_chain_files = "+wantKey+", "+wantChain+"\n") ||
					!strings.HasPrefix(string(mainCF), "#smtpd_tls_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem\n#smtpd_tls_key_file = ") {
					t.Errorf("main.cf:\n%s", mainCF)
				}
			case "dovecot":
				snippet, _ := os.ReadFile(filepath.Join(w.root, "etc/dovecot/conf.d/99-acmemail.conf"))
				if !strings.Contains(string(snippet), "\nssl_cert = <"+wantChain+"\nssl_key = <"+wantKey+"\n") {
					t.Errorf("99-acmemail.conf:\n%s", snippet)
				}
			}
			log := w.logLines(t)
			reload := map[string]string{"postfix": "postfix_reload", "dovecot": "doveadm_reload"}[target]
			if len(log) == 0 || log[len(log)-1] != reload {
				t.Errorf("log %q: want a reload last", log)
			}

			// Again: nothing written, nothing configured, reloaded.
			if out, err := w.runHook(t, target, host, key, chain); err != nil {
				t.Fatalf("second run: %v\n%s", err, out)
			}
			if again, _ := os.Readlink(filepath.Join(dir, "current")); again != cur {
				t.Errorf("second run switched current from %s to %s", cur, again)
			}
			if log := w.logLines(t); len(log) != 1 || log[0] != reload {
				t.Errorf("second run: log %q, want only the reload", log)
			}

			// A certificate for email, not for servers: refused, nothing moves.
			badKey, badChain := w.serverCert(t, "bad", host, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, x509.KeyUsageDigitalSignature)
			if out, err := w.runHook(t, target, host, badKey, badChain); err == nil {
				t.Fatalf("a certificate without serverAuth was installed:\n%s", out)
			}
			if again, _ := os.Readlink(filepath.Join(dir, "current")); again != cur {
				t.Errorf("a refused certificate switched current from %s to %s", cur, again)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 2 {
				t.Errorf("%d entries in %s after a refusal, want current and one version", len(ents), dir)
			}
			if log := w.logLines(t); len(log) != 0 {
				t.Errorf("a refused certificate: log %q", log)
			}
			// And one for another host.
			otherKey, otherChain := w.serverCert(t, "other", "other.example.test", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, x509.KeyUsageDigitalSignature)
			if out, err := w.runHook(t, target, host, otherKey, otherChain); err == nil {
				t.Fatalf("a certificate for another host was installed:\n%s", out)
			}
		})
	}
}
