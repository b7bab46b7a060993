package mailbox

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Security selects how a connection to a mail server is protected.
type Security int

const (
	// TLS is implicit TLS: the TLS handshake starts as soon as the TCP
	// connection is open (IMAP port 993, SMTP submission port 465).
	TLS Security = iota
	// StartTLS opens a plaintext connection and upgrades it with the
	// STARTTLS command before any credentials are sent (IMAP port 143, SMTP
	// submission port 587). A server that does not offer STARTTLS is
	// refused.
	StartTLS
	// Insecure is a plaintext connection. It is only used when the
	// configuration sets AllowInsecure and the host resolves to loopback
	// addresses only; it exists for local test servers.
	Insecure
)

// String returns "tls", "starttls" or "insecure".
func (s Security) String() string {
	switch s {
	case TLS:
		return "tls"
	case StartTLS:
		return "starttls"
	case Insecure:
		return "insecure"
	default:
		return "Security(" + strconv.Itoa(int(s)) + ")"
	}
}

// Endpoint is the address of a mail server and how to protect the
// connection to it.
type Endpoint struct {
	Host     string // host name or IP address, without brackets
	Port     int
	Security Security
}

// Address returns "host:port", with brackets around an IPv6 address.
func (e Endpoint) Address() string {
	return net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

// String returns a human-readable form such as "mail.example.org:993 (tls)".
func (e Endpoint) String() string {
	return e.Address() + " (" + e.Security.String() + ")"
}

// protocol holds the per-protocol URL schemes and well-known ports.
type protocol struct {
	name           string // "IMAP", "SMTP"
	tlsScheme      string // implicit TLS
	startTLSScheme string
	insecureScheme string
	tlsPort        int
	startTLSPort   int
	plainPorts     []int // well-known ports that never speak implicit TLS
}

var (
	imapProto = protocol{
		name:           "IMAP",
		tlsScheme:      "imaps",
		startTLSScheme: "imap",
		insecureScheme: "imap+insecure",
		tlsPort:        993,
		startTLSPort:   143,
		plainPorts:     []int{143},
	}
	smtpProto = protocol{
		name:           "SMTP",
		tlsScheme:      "smtps",
		startTLSScheme: "smtp",
		insecureScheme: "smtp+insecure",
		tlsPort:        465,
		startTLSPort:   587,
		plainPorts:     []int{25, 587},
	}
)

// ParseIMAPURL parses the address of an IMAP server.
//
// Accepted forms:
//
//	imaps://host[:port]          implicit TLS, default port 993
//	imap://host[:port]           STARTTLS, default port 143
//	imap+insecure://host[:port]  plaintext, default port 143 (loopback only, see IMAPConfig.AllowInsecure)
//	host:port                    implicit TLS if port is 993, otherwise STARTTLS
//	host                         implicit TLS on port 993
//
// An IPv6 address is written in brackets, as in imaps://[::1]:993 or
// [::1]:143; a bare IPv6 address without a port is also accepted. User
// names, passwords, mailbox paths and query parameters are not accepted in
// the URL.
func ParseIMAPURL(s string) (Endpoint, error) {
	return parseEndpoint(s, imapProto)
}

// ParseSMTPURL parses the address of an SMTP submission server.
//
// Accepted forms:
//
//	smtps://host[:port]          implicit TLS, default port 465
//	smtp://host[:port]           STARTTLS, default port 587
//	smtp+insecure://host[:port]  plaintext, default port 587 (loopback only, see SMTPConfig.AllowInsecure)
//	host:port                    implicit TLS if port is 465, otherwise STARTTLS
//	host                         implicit TLS on port 465
//
// IPv6 addresses follow the rules of [ParseIMAPURL].
func ParseSMTPURL(s string) (Endpoint, error) {
	return parseEndpoint(s, smtpProto)
}

func parseEndpoint(s string, p protocol) (Endpoint, error) {
	ep, err := parseEndpoint1(strings.TrimSpace(s), p)
	if err != nil {
		return Endpoint{}, fmt.Errorf("parse %s address %s: %w", p.name, quoteInput(s), err)
	}
	return ep, nil
}

func parseEndpoint1(s string, p protocol) (Endpoint, error) {
	if s == "" {
		return Endpoint{}, errors.New("empty address")
	}
	scheme, rest, isURL := strings.Cut(s, "://")
	if !isURL {
		if strings.ContainsAny(s, "/?#@") {
			return Endpoint{}, fmt.Errorf("not a host, host:port or %s:// URL", p.tlsScheme)
		}
		host, port, err := parseHostPort(s)
		if err != nil {
			return Endpoint{}, err
		}
		ep := Endpoint{Host: host, Port: port, Security: StartTLS}
		switch port {
		case 0:
			ep.Port, ep.Security = p.tlsPort, TLS
		case p.tlsPort:
			ep.Security = TLS
		}
		return ep, nil
	}

	var ep Endpoint
	switch strings.ToLower(scheme) {
	case p.tlsScheme:
		ep.Security = TLS
	case p.startTLSScheme:
		ep.Security = StartTLS
	case p.insecureScheme:
		ep.Security = Insecure
	default:
		shown := "in " + quoteInput(s)
		if validScheme(scheme) {
			shown = strconv.Quote(scheme)
		}
		return Endpoint{}, fmt.Errorf("unknown scheme %s (want %s:// for implicit TLS, %s:// for STARTTLS or %s:// for a plaintext loopback test server)",
			shown, p.tlsScheme, p.startTLSScheme, p.insecureScheme)
	}

	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if strings.Contains(authority, "@") {
		return Endpoint{}, errors.New("user names and passwords are not accepted in the URL; pass them separately")
	}
	switch {
	case tail == "" || tail == "/":
	case tail[0] == '/':
		return Endpoint{}, errors.New("a path (such as a mailbox name) is not accepted in the URL; set the mailbox separately")
	case tail[0] == '?':
		return Endpoint{}, fmt.Errorf("query parameters are not accepted; for a plaintext loopback server use %s://", p.insecureScheme)
	default:
		return Endpoint{}, errors.New("a fragment is not accepted in the URL")
	}

	host, port, err := parseHostPort(authority)
	if err != nil {
		return Endpoint{}, err
	}
	ep.Host, ep.Port = host, port
	if ep.Port == 0 {
		ep.Port = p.startTLSPort
		if ep.Security == TLS {
			ep.Port = p.tlsPort
		}
	}

	// Catch the two classic mix-ups early: they would otherwise show up as a
	// 30-second hang (STARTTLS to an implicit-TLS port) or a cryptic
	// handshake error.
	hostPort := net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))
	if ep.Security == StartTLS && ep.Port == p.tlsPort {
		return Endpoint{}, fmt.Errorf("port %d expects implicit TLS, but %s:// asks for STARTTLS; use %s://%s",
			ep.Port, p.startTLSScheme, p.tlsScheme, hostPort)
	}
	if ep.Security == TLS {
		for _, pp := range p.plainPorts {
			if ep.Port == pp {
				return Endpoint{}, fmt.Errorf("port %d expects STARTTLS, but %s:// asks for implicit TLS; use %s://%s",
					ep.Port, p.tlsScheme, p.startTLSScheme, hostPort)
			}
		}
	}
	return ep, nil
}

// parseHostPort splits "host", "host:port", "[v6]", "[v6]:port" or a bare
// IPv6 address. A missing port is returned as 0.
func parseHostPort(s string) (host string, port int, err error) {
	if s == "" {
		return "", 0, errors.New("missing host")
	}
	var portStr string
	hasPort := false
	switch {
	case s[0] == '[':
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, errors.New("missing ']' after IPv6 address")
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return "", 0, errors.New("unexpected text after ']'")
			}
			portStr, hasPort = rest[1:], true
		}
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is6() {
			return "", 0, fmt.Errorf("%s in brackets is not an IPv6 address", quoteShort(host, 50))
		}
		if addr.Zone() != "" {
			return "", 0, errors.New("IPv6 zones are not supported")
		}
	case strings.Count(s, ":") > 1:
		addr, err := netip.ParseAddr(s)
		if err != nil || !addr.Is6() {
			return "", 0, errors.New("an IPv6 address with a port must be written in brackets, as in [::1]:993")
		}
		if addr.Zone() != "" {
			return "", 0, errors.New("IPv6 zones are not supported")
		}
		host = s
	default:
		host, portStr, hasPort = strings.Cut(s, ":")
		if err := checkHostName(host); err != nil {
			return "", 0, err
		}
	}
	if hasPort {
		port, err = parsePort(portStr)
		if err != nil {
			return "", 0, err
		}
	}
	return host, port, nil
}

func parsePort(s string) (int, error) {
	if s == "" {
		return 0, errors.New("empty port")
	}
	if len(s) > 5 {
		return 0, fmt.Errorf("invalid port %s", quoteShort(s, 20))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("invalid port %q", s)
		}
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", n)
	}
	return n, nil
}

// checkHostName accepts an IPv4 address or an ASCII DNS name.
func checkHostName(h string) error {
	if h == "" {
		return errors.New("missing host")
	}
	if len(h) > 253 {
		return errors.New("host name too long")
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	name := strings.TrimSuffix(h, ".")
	if name == "" {
		return fmt.Errorf("invalid host name %q", h)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("invalid host name %s", quoteShort(h, 64))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 0x80:
				return fmt.Errorf("host name %s is not ASCII; use its xn-- (punycode) form", quoteShort(h, 64))
			default:
				return fmt.Errorf("invalid character %q in host name", rune(c))
			}
		}
	}
	return nil
}

// quoteInput quotes user input for an error message, hiding anything that
// could be a password (the userinfo part of a URL) and cutting long input.
func quoteInput(s string) string {
	// A password may itself contain '/', '?', '#' or ':', so hide
	// everything up to the last '@' (keeping a well-formed scheme).
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		prefix := ""
		if scheme, _, ok := strings.Cut(s, "://"); ok && len(scheme) < at && validScheme(scheme) {
			prefix = scheme + "://"
		}
		s = prefix + "***@" + s[at+1:]
	}
	return quoteShort(s, 200)
}

func validScheme(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
