package mailbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"
)

const dialTimeout = 30 * time.Second

// dialAddrs returns the addresses to dial for ep. For a plaintext endpoint
// it checks that plaintext was allowed and that the host resolves to
// loopback addresses only, and returns the resolved loopback IPs so that a
// later DNS answer cannot redirect the connection. It never sends anything.
func dialAddrs(ctx context.Context, p protocol, ep Endpoint, allowInsecure bool) ([]string, error) {
	if ep.Host == "" {
		return nil, fmt.Errorf("%s connect: no host configured", p.lower())
	}
	if ep.Port < 1 || ep.Port > 65535 {
		return nil, fmt.Errorf("%s connect %s: invalid port %d", p.lower(), ep.Host, ep.Port)
	}
	switch ep.Security {
	case TLS, StartTLS:
		return []string{ep.Address()}, nil
	case Insecure:
	default:
		return nil, fmt.Errorf("%s connect %s: unknown security mode %v", p.lower(), ep.Address(), ep.Security)
	}

	secure := fmt.Sprintf("%s://%s (implicit TLS) or %s://%s (STARTTLS)",
		p.tlsScheme, net.JoinHostPort(ep.Host, strconv.Itoa(p.tlsPort)),
		p.startTLSScheme, net.JoinHostPort(ep.Host, strconv.Itoa(p.startTLSPort)))
	if !allowInsecure {
		return nil, fmt.Errorf("%s connect %s: %w: the password would travel unencrypted; use %s (plaintext only to a test server on a loopback address, where the caller allows it)",
			p.lower(), ep.Address(), ErrPlaintext, secure)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(ep.Host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", ep.Host)
		if err != nil {
			return nil, fmt.Errorf("%s connect %s: resolve host to check that it is a loopback address: %w", p.lower(), ep.Address(), err)
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("%s connect %s: host has no addresses", p.lower(), ep.Address())
	}
	addrs := make([]string, 0, len(ips))
	for _, ip := range ips {
		if !ip.Unmap().IsLoopback() {
			return nil, fmt.Errorf("%s connect %s: %w: %s is not a loopback address, so the password would travel unencrypted over the network; use %s",
				p.lower(), ep.Address(), ErrPlaintext, ip, secure)
		}
		addrs = append(addrs, net.JoinHostPort(ip.Unmap().String(), strconv.Itoa(ep.Port)))
	}
	return addrs, nil
}

// dial opens a TCP connection to the first address that answers.
func dial(ctx context.Context, addrs []string) (net.Conn, error) {
	d := &net.Dialer{Timeout: dialTimeout}
	var err error
	for _, addr := range addrs {
		var conn net.Conn
		if conn, err = d.DialContext(ctx, "tcp", addr); err == nil {
			return conn, nil
		}
	}
	return nil, ctxErr(ctx, err)
}

// dialTLS opens a TCP connection and does the TLS handshake.
func dialTLS(ctx context.Context, addrs []string, conf *tls.Config) (net.Conn, error) {
	conn, err := dial(ctx, addrs)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(conn, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, ctxErr(ctx, err)
	}
	return tc, nil
}

func (p protocol) lower() string {
	if p.name == "IMAP" {
		return "imap"
	}
	return "smtp"
}

// clientTLSConfig returns a copy of base ready for connecting to host.
// A nil base means the system roots. InsecureSkipVerify is refused.
func clientTLSConfig(base *tls.Config, host string) (*tls.Config, error) {
	var c *tls.Config
	if base == nil {
		c = &tls.Config{}
	} else {
		if base.InsecureSkipVerify {
			return nil, errors.New("TLSConfig.InsecureSkipVerify is not supported; add the server's CA certificate to TLSConfig.RootCAs instead")
		}
		c = base.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	return c, nil
}

// tlsHint adds advice to well-known TLS handshake failures.
func tlsHint(err error, p protocol, ep Endpoint) error {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) && ep.Security == TLS {
		port := ep.Port
		if port == p.tlsPort {
			port = p.startTLSPort
		}
		return fmt.Errorf("%w (the server does not seem to speak implicit TLS on port %d; for STARTTLS use %s://%s)",
			err, ep.Port, p.startTLSScheme, net.JoinHostPort(ep.Host, strconv.Itoa(port)))
	}
	return err
}

func discardLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// ctxErr prefers the context's error over err when the context has ended,
// because closing the connection on cancellation produces confusing
// "use of closed network connection" errors.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	// A connection deadline derived from ctx can fire just before ctx's
	// own timer does.
	var ne net.Error
	if dl, ok := ctx.Deadline(); ok && errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(dl) {
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}
