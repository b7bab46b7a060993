package server

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ports are the mail services a certificate can be bound to, with their
// IANA ports (RFC 8314, RFC 6409, RFC 9051, RFC 1939, RFC 5321). A TLS
// port and its plaintext (STARTTLS) port are different services.
var ports = map[string]int{
	"submissions": 465,
	"submission":  587,
	"imaps":       993,
	"imap":        143,
	"pop3s":       995,
	"pop3":        110,
	"smtp":        25,
}

// Services are the service names [Port] knows, sorted.
func Services() []string {
	out := make([]string, 0, len(ports))
	for s := range ports {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Port is the IANA port of service, or false for a service this package
// does not know.
func Port(service string) (int, bool) {
	p, ok := ports[service]
	return p, ok
}

// ParseServices checks a list of service names (case-insensitive, a
// leading underscore allowed) and returns them lowercased, without
// underscore, sorted and without duplicates.
func ParseServices(list []string) ([]string, error) {
	var out []string
	for _, s := range list {
		n := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "_"))
		if _, ok := ports[n]; !ok {
			return nil, fmt.Errorf("unknown service %q: want one of %s", s, strings.Join(Services(), ", "))
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// SRVName is the RFC 4985 SRVName of service on host: "_imaps.mail.example.com".
func SRVName(service, host string) string { return "_" + service + "." + host }

// ParseSRVName splits an SRVName into its service (without underscore)
// and host. It does not check that the service is known.
func ParseSRVName(name string) (service, host string, ok bool) {
	if !strings.HasPrefix(name, "_") {
		return "", "", false
	}
	service, host, ok = strings.Cut(name[1:], ".")
	if !ok || service == "" || host == "" {
		return "", "", false
	}
	return service, host, true
}

// BoundKeyAuthorization is the key authorization of a dns-service-01
// challenge: keyAuth "." service "." port, e.g. "TOKEN.THUMBPRINT.imaps.993".
// Putting the service and port in the hash binds the proof to them (the
// draft's open question).
func BoundKeyAuthorization(keyAuth, service string, port int) string {
	return keyAuth + "." + service + "." + strconv.Itoa(port)
}

// ChallengeDomain is the domain whose "_acme-challenge" record answers a
// dns-service-01 challenge for service on host at port:
// "_993._imaps.mail.example.com", so the record is
// "_acme-challenge._993._imaps.mail.example.com". lego's DNS providers
// write "_acme-challenge.<domain>" for the domain they are given, and
// keeping "_acme-challenge" the leftmost label (as RFC 8555 §8.4 does) lets
// every one of them write it, and a CNAME delegation of
// "_acme-challenge.*" work as for dns-01.
func ChallengeDomain(host, service string, port int) string {
	return "_" + strconv.Itoa(port) + "._" + service + "." + host
}
