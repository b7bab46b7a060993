package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// serverWorld is a sandbox world whose CLI environment holds the DNS
// provider's RFC2136_* variables, and a server certificate obtained in it
// for mail.example.test (imaps, submission); it returns the --json result.
func serverWorld(t *testing.T) (*sandbox.World, map[string]string, map[string]any) {
	t.Helper()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	for _, kv := range w.DNSUpdateEnv() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	r := runCLI(t, env, "server", "obtain", "--server", w.DirectoryURL, "--dns", "rfc2136", "--dns-resolver", w.DNSAddr,
		"--service", "imaps", "--service", "submission", "--json", "mail.example.test")
	var res map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil {
		t.Fatalf("server obtain: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return w, env, res
}

// TestServerRevoke: server revoke revokes the certificate at the CA,
// records it (show --json says revoked, list says so, renew skips the
// host), and a second revoke is the CA's alreadyRevoked (exit 5); renew
// --force gets a new certificate.
func TestServerRevoke(t *testing.T) {
	t.Parallel()
	w, env, obtained := serverWorld(t)
	serial := obtained["serial"].(string)
	r := runCLI(t, env, "server", "revoke", "--json", "--reason", "keyCompromise", "mail.example.test")
	var rev struct {
		Host    string `json:"host"`
		Serial  string `json:"serial"`
		Reason  string `json:"reason"`
		Revoked bool   `json:"revoked"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rev) != nil || !rev.Revoked || rev.Serial != serial || rev.Host != "mail.example.test" || rev.Reason != "keyCompromise" {
		t.Fatalf("server revoke: exit %d %+v\n%s%s", r.code, rev, r.stdout, r.stderr)
	}
	if st, ok := w.Certificate(serial); !ok || !st.Revoked || st.RevocationReason != 1 {
		t.Errorf("sandbox: %+v %v, want revoked with keyCompromise", st, ok)
	}
	var show map[string]any
	if r := runCLI(t, env, "server", "show", "--json", "mail.example.test"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &show) != nil || show["revoked"] != true {
		t.Errorf("server show after revoke: exit %d %s", r.code, r.stdout)
	}
	if r := runCLI(t, env, "list"); r.code != 0 || !strings.Contains(r.stdout, "revoked") || !strings.HasPrefix(r.stdout, "EMAIL/HOST ") {
		t.Errorf("list after revoke: exit %d, want a revoked row under an EMAIL/HOST header\n%s", r.code, r.stdout)
	}
	var outs []map[string]any
	if r := runCLI(t, env, "renew", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &outs) != nil {
		t.Fatalf("renew: exit %d %s", r.code, r.stdout)
	}
	for _, o := range outs {
		if o["host"] == "mail.example.test" && o["status"] != "skipped" {
			t.Errorf("renew of a revoked host: %v, want skipped", o)
		}
	}
	if st := w.Stats(); st.Orders != 1 {
		t.Errorf("orders = %d: renew ordered for a revoked host", st.Orders)
	}
	if r := runCLI(t, env, "server", "revoke", "--json", "mail.example.test"); r.code != exitCA {
		t.Errorf("second revoke: exit %d, want %d\n%s", r.code, exitCA, r.stderr)
	}
	if r := runCLI(t, env, "server", "renew", "--force", "--json", "mail.example.test"); r.code != 0 || !strings.Contains(r.stdout, `"renewed"`) {
		t.Errorf("renew --force of a revoked host: exit %d %s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, env, "server", "revoke", "no-such.example.test"); r.code != exitError {
		t.Errorf("revoke of a host not managed: exit %d, want %d", r.code, exitError)
	}
}

// serveTLS serves cert on a local port: with implicit TLS, or after an
// SMTP STARTTLS exchange. It returns the address.
func serveTLS(t *testing.T, cert tls.Certificate, smtp bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if smtp {
					r := bufio.NewReader(c)
					c.Write([]byte("220 fake ESMTP\r\n"))
					if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "EHLO ") {
						return
					}
					c.Write([]byte("250-fake\r\n250-PIPELINING\r\n250 STARTTLS\r\n"))
					if l, _ := r.ReadString('\n'); l != "STARTTLS\r\n" {
						return
					}
					c.Write([]byte("220 go ahead\r\n"))
				}
				tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake()
			}()
		}
	}()
	return ln.Addr().String()
}

// selfSigned is a certificate for host that is not acmemail's.
func selfSigned(t *testing.T, host string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), DNSNames: []string{host}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestServerDoctor: server doctor writes a TXT record through the
// recorded provider (seen at the resolver, then removed), finds the
// managed certificate served on imaps (PASS) and another one after SMTP
// STARTTLS on submission (WARN), and reports the certificate; a service
// that does not answer fails the run (exit 1), within --timeout.
func TestServerDoctor(t *testing.T) {
	t.Parallel()
	w, env, obtained := serverWorld(t)
	ours, err := tls.LoadX509KeyPair(obtained["chain_path"].(string), obtained["key_path"].(string))
	if err != nil {
		t.Fatal(err)
	}
	imaps, submission := serveTLS(t, ours, false), serveTLS(t, selfSigned(t, "mail.example.test"), true)
	r := runCLI(t, env, "server", "doctor", "--json", "--connect", "imaps="+imaps, "--connect", "submission="+submission, "mail.example.test")
	checks := serverDoctorChecks(t, r)
	if r.code != 0 {
		t.Errorf("server doctor: exit %d, want 0 (a warning is not a failure)\n%s", r.code, r.stderr)
	}
	for name, want := range map[string]string{"certificate": "pass", "dns-provider": "pass", "service-imaps": "pass", "service-submission": "warn"} {
		if c, ok := checks[name]; !ok || c.Status != want {
			t.Errorf("check %s: %+v, want %s", name, c, want)
		}
	}
	// The test record is gone.
	m := new(dns.Msg)
	m.SetQuestion("_acme-challenge.mail.example.test.", dns.TypeTXT)
	if in, err := dns.Exchange(m, w.DNSAddr); err != nil || len(in.Answer) != 0 {
		t.Errorf("after doctor, _acme-challenge.mail.example.test: %v %v", in, err)
	}

	// Nothing answers on submission: FAIL, exit 1, well within the timeout.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	start := time.Now()
	r = runCLI(t, env, "server", "doctor", "--json", "--timeout", "10s", "--connect", "imaps="+imaps, "--connect", "submission="+dead, "mail.example.test")
	if c := serverDoctorChecks(t, r)["service-submission"]; r.code != exitError || c.Status != "fail" {
		t.Errorf("a dead service: exit %d, check %+v", r.code, c)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("doctor took %s", d)
	}

	// Without the provider's credentials the DNS check fails and says so.
	noCreds := map[string]string{}
	for k, v := range env {
		if !strings.HasPrefix(k, "RFC2136_") {
			noCreds[k] = v
		}
	}
	r = runCLI(t, noCreds, "server", "doctor", "--json", "--timeout", "10s", "--connect", "imaps="+imaps, "--connect", "submission="+submission, "mail.example.test")
	if c := serverDoctorChecks(t, r)["dns-provider"]; r.code != exitError || c.Status != "fail" {
		t.Errorf("no credentials: exit %d, check %+v", r.code, c)
	}
}

// serverDoctorChecks are server doctor --json's checks by name; each one
// that failed or warned has a fix.
func serverDoctorChecks(t *testing.T, r cliResult) map[string]doctorCheck {
	t.Helper()
	var checks []doctorCheck
	if err := json.Unmarshal([]byte(r.stdout), &checks); err != nil {
		t.Fatalf("server doctor --json: %v\n%s%s", err, r.stdout, r.stderr)
	}
	by := map[string]doctorCheck{}
	for _, c := range checks {
		by[c.Name] = c
		if (c.Status == "fail" || c.Status == "warn") && c.Fix == "" {
			t.Errorf("check %s: %s without a fix", c.Name, c.Status)
		}
	}
	return by
}
