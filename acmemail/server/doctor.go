package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
)

// DoctorOptions are the settings of a doctor run.
type DoctorOptions struct {
	// Connect maps a service to the address (HOST:PORT) to connect to
	// instead of the host at the service's port.
	Connect map[string]string
	// Timeout bounds each check (default 60 s for the DNS provider's, 15 s
	// for a service's).
	Timeout time.Duration
	// Provider overrides the profile's DNS provider (nil: from Getenv).
	Provider Provider
}

// Doctor checks what host's renewal and service need: the recorded DNS
// provider writes a TXT record (a random value at _acme-challenge.HOST,
// where the challenges go), the resolver sees it, and it is removed again;
// each recorded service answers TLS on its port (STARTTLS for submission,
// smtp, imap and pop3) and serves the managed certificate; and the
// certificate's names, expiry and renewal time. Every check's time is
// bounded. The error is only for a host that is not managed.
func (m *Manager) Doctor(ctx context.Context, host string, o DoctorOptions) ([]issuer.Check, error) {
	cur, err := m.Load(host)
	if err != nil {
		return nil, err
	}
	checks := []issuer.Check{certificateCheck(cur, time.Now())}
	checks = append(checks, m.dnsCheck(ctx, cur, o))
	for _, s := range cur.Profile.Services {
		checks = append(checks, serviceCheck(ctx, cur, s, o))
	}
	return checks, nil
}

func check(name string, st issuer.CheckStatus, format string, args ...any) issuer.Check {
	return issuer.Check{Name: name, Status: st, Detail: fmt.Sprintf(format, args...)}
}

// certificateCheck: the managed certificate's names, expiry and renewal.
func certificateCheck(cur *Result, now time.Time) issuer.Check {
	leaf := cur.Chain[0]
	n, _ := ParseNames(leaf)
	names := strings.Join(append(slices.Clone(n.DNS), n.SRV...), " ")
	until := leaf.NotAfter.UTC().Format(time.RFC3339)
	switch {
	case cur.Revoked != nil:
		return check("certificate", issuer.CheckFail, "serial %s (%s) is revoked: renew --force gets a new one", cur.Serial(), names)
	case !now.Before(leaf.NotAfter):
		return check("certificate", issuer.CheckFail, "serial %s (%s) expired at %s", cur.Serial(), names, until)
	case !now.Before(cur.RenewAt):
		return check("certificate", issuer.CheckWarn, "serial %s (%s), valid until %s, was due for renewal at %s: is acmemail renew run from cron?", cur.Serial(), names, until, cur.RenewAt.UTC().Format(time.RFC3339))
	}
	return check("certificate", issuer.CheckPass, "serial %s (%s), valid until %s, renewal at %s", cur.Serial(), names, until, cur.RenewAt.UTC().Format(time.RFC3339))
}

// dnsCheck writes a TXT record through the DNS provider, waits for the
// resolver to serve it, and removes it.
func (m *Manager) dnsCheck(ctx context.Context, cur *Result, o DoctorOptions) issuer.Check {
	const name = "dns-provider"
	p := o.Provider
	if p == nil {
		getenv := m.Getenv
		if getenv == nil {
			getenv = func(string) string { return "" }
		}
		var err error
		if p, err = NewProvider(cur.Profile.DNS, getenv); err != nil {
			return check(name, issuer.CheckFail, "the DNS provider %s cannot be set up from the environment: %v", cur.Profile.DNS, err)
		}
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(WithLegoLogger(ctx, m.logger()), timeout)
	defer cancel()
	var rnd [16]byte
	rand.Read(rnd[:])
	host, resolver := cur.Meta.Email, cur.Profile.DNSResolver
	keyAuth := "acmemail-doctor." + hex.EncodeToString(rnd[:])
	value := TXTValue(keyAuth)
	rec := strings.TrimSuffix(RecordName(ctx, resolver, host, keyAuth), ".")
	if err := Present(ctx, p, resolver, host, "", keyAuth); err != nil {
		return check(name, issuer.CheckFail, "%s could not write a TXT record at %s: %v", cur.Profile.DNS, rec, err)
	}
	werr := WaitPropagation(ctx, resolver, rec, value, timeout/2, time.Second)
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer ccancel()
	cerr := CleanUp(cctx, p, resolver, host, "", keyAuth)
	switch {
	case werr != nil:
		return check(name, issuer.CheckFail, "%s wrote a TXT record at %s, but it was not served: %v", cur.Profile.DNS, rec, werr)
	case cerr != nil:
		return check(name, issuer.CheckWarn, "%s wrote a test TXT record at %s and it was served, but removing it failed: %v", cur.Profile.DNS, rec, cerr)
	}
	return check(name, issuer.CheckPass, "%s wrote a test TXT record at %s, it was served, and it was removed", cur.Profile.DNS, rec)
}

// startTLS is how each plaintext service is asked for TLS.
var startTLS = map[string]string{"submission": "smtp", "smtp": "smtp", "imap": "imap", "pop3": "pop3"}

// serviceCheck connects to service and reports the certificate it serves.
func serviceCheck(ctx context.Context, cur *Result, service string, o DoctorOptions) issuer.Check {
	name := "service-" + service
	host := cur.Meta.Email
	port, _ := Port(service)
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if a := o.Connect[service]; a != "" {
		addr = a
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	served, err := servedCertificate(ctx, addr, host, startTLS[service])
	if err != nil {
		return check(name, issuer.CheckFail, "%s (%s): %v", service, addr, err)
	}
	n, _ := ParseNames(served)
	what := fmt.Sprintf("serial %s, names %s, valid until %s", acmemail.FormatSerial(served.SerialNumber),
		strings.Join(append(slices.Clone(n.DNS), n.SRV...), " "), served.NotAfter.UTC().Format(time.RFC3339))
	switch {
	case served.Equal(cur.Chain[0]):
		return check(name, issuer.CheckPass, "%s (%s) serves the managed certificate (%s)", service, addr, what)
	case time.Now().After(served.NotAfter) || served.VerifyHostname(host) != nil:
		return check(name, issuer.CheckFail, "%s (%s) serves a certificate that is expired or not for %s (%s), not the managed one", service, addr, host, what)
	}
	return check(name, issuer.CheckWarn, "%s (%s) serves another certificate (%s), not the managed one %s: install it (--install) or reload the server", service, addr, what, cur.Serial())
}

// maxLine and maxLines bound what a server may send before TLS.
const maxLine, maxLines = 4096, 64

// servedCertificate connects to addr, says STARTTLS in protocol (smtp,
// imap, pop3; "" for implicit TLS), and returns the leaf certificate the
// server presents for host. It does not judge the certificate.
func servedCertificate(ctx context.Context, addr, host, protocol string) (*x509.Certificate, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if protocol != "" {
		if err := sayStartTLS(conn, protocol); err != nil {
			return nil, fmt.Errorf("STARTTLS: %w", err)
		}
	}
	tc := tls.Client(conn, &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) // the certificate is judged by the caller
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("the server presented no certificate")
	}
	return certs[0], nil
}

// sayStartTLS asks for TLS on a plaintext connection. It reads at most
// maxLines lines of maxLine bytes, and nothing past the server's answer
// to STARTTLS (the TLS handshake follows on conn).
func sayStartTLS(conn net.Conn, protocol string) error {
	r := bufio.NewReaderSize(&oneByte{conn}, maxLine)
	lines := 0
	line := func() (string, error) {
		if lines++; lines > maxLines {
			return "", errors.New("the server sends too many lines")
		}
		l, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", fmt.Errorf("a line longer than %d bytes", maxLine)
		}
		return strings.TrimRight(string(l), "\r\n"), err
	}
	// smtpReply reads a reply, returns its last line, and whether a line
	// of it says want.
	smtpReply := func(code, want string) (bool, error) {
		has := false
		for {
			l, err := line()
			if err != nil {
				return false, err
			}
			if !strings.HasPrefix(l, code) {
				return false, fmt.Errorf("the server answered %q", l)
			}
			has = has || strings.EqualFold(strings.TrimSpace(l[min(4, len(l)):]), want)
			if len(l) < 4 || l[3] != '-' {
				return has, nil
			}
		}
	}
	send := func(s string) error { _, err := io.WriteString(conn, s+"\r\n"); return err }
	switch protocol {
	case "smtp":
		if _, err := smtpReply("220", ""); err != nil {
			return err
		}
		if err := send("EHLO acmemail-doctor.invalid"); err != nil {
			return err
		}
		has, err := smtpReply("250", "STARTTLS")
		if err != nil {
			return err
		}
		if !has {
			return errors.New("the server does not offer STARTTLS")
		}
		if err := send("STARTTLS"); err != nil {
			return err
		}
		_, err = smtpReply("220", "")
		return err
	case "imap":
		if l, err := line(); err != nil || !strings.HasPrefix(l, "* OK") {
			return fmt.Errorf("greeting %q: %v", l, err)
		}
		if err := send("a1 STARTTLS"); err != nil {
			return err
		}
		for {
			l, err := line()
			if err != nil {
				return err
			}
			if strings.HasPrefix(l, "a1 ") {
				if !strings.HasPrefix(strings.ToUpper(l), "A1 OK") {
					return fmt.Errorf("the server answered %q", l)
				}
				return nil
			}
		}
	case "pop3":
		if l, err := line(); err != nil || !strings.HasPrefix(l, "+OK") {
			return fmt.Errorf("greeting %q: %v", l, err)
		}
		if err := send("STLS"); err != nil {
			return err
		}
		if l, err := line(); err != nil || !strings.HasPrefix(l, "+OK") {
			return fmt.Errorf("the server answered %q: %v", l, err)
		}
		return nil
	}
	return fmt.Errorf("no STARTTLS for %q", protocol)
}

// oneByte reads one byte at a time, so that the bufio.Reader on it never
// consumes the server's first TLS bytes.
type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}
