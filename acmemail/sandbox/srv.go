package sandbox

import (
	"net"
	"strings"

	"github.com/miekg/dns"
)

// srvTarget is the host name the sandbox's SRV records point at: loopback,
// and a name (RFC 2782 wants a name, not an address) that the TLS
// certificate of the listeners carries.
const srvTarget = "localhost."

// mailSRVServices are the RFC 6186 / RFC 8314 service names, with the
// listener each one points at.
var mailSRVServices = []string{"_imaps._tcp.", "_imap._tcp.", "_submissions._tcp.", "_submission._tcp."}

// srvLookup returns the SRV records of name: for every domain with a
// user, the four mail services point at the world's IMAP and submission
// listeners, so a client can find them as it would a real provider's
// (RFC 6186). Other names have none.
func (w *World) srvLookup(name string) ([]*dns.SRV, bool) {
	for i, svc := range mailSRVServices {
		domain, ok := strings.CutPrefix(name, svc)
		if !ok || !w.mail.hasDomain(domain) {
			continue
		}
		port := w.srvPorts[i]
		if port == 0 {
			return nil, false
		}
		return []*dns.SRV{{Priority: 0, Weight: 1, Port: uint16(port), Target: srvTarget}}, true
	}
	return nil, false
}

// hasDomain reports whether a user's address is in domain.
func (m *mailSystem) hasDomain(domain string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.users {
		if _, d := splitAddress(u.addr); strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}

func listenerPort(a net.Addr) int {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.Port
	}
	return 0
}
