package sandbox

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

const (
	dnsTTL        = 60
	dnsUDPSize    = 1232 // the EDNS0 payload size this server offers (DNS flag day 2020)
	dnsMinUDPSize = 512
	dnsTCPTimeout = 10 * time.Second

	// Bounds of what dynamic updates may store: names, and records per name.
	maxDynamicNames   = 1024
	maxDynamicPerName = 32
	// tsigFudge is the clock skew a signed request may have (RFC 8945 §5.2.3).
	tsigFudge = 300
)

// dnsHostLabels are the names of a zone (besides its apex) that have an
// address: the server's own (a zone's NS points at ns.ZONE) and the mail
// host names servers get certificates for.
var dnsHostLabels = []string{"ns", "mail", "imap", "smtp", "mx"}

// dnsServer is the world's authoritative DNS server, over UDP and TCP on
// the same port. It publishes the DKIM keys (TXT) and, for every user's
// domain, the RFC 6186 SRV records of the mail services; for each zone
// (zones()) it answers SOA and NS at the apex and A or AAAA for the apex and
// its host names (dnsHostLabels) with addr. It accepts RFC 2136 dynamic
// updates of TXT records inside its zones, signed with the TSIG key tsig.
// Names outside every zone are NXDOMAIN, as are unknown names inside one
// (with the zone's SOA).
type dnsServer struct {
	udp    net.PacketConn
	tcp    net.Listener
	lookup func(name string) ([]string, bool)   // static TXT records (the DKIM keys)
	srv    func(name string) ([]*dns.SRV, bool) // nil: no SRV records
	zones  func() []string                      // nil: no zones
	addr   net.IP                               // the address of the host names; nil: none
	tsig   *TSIGKey                             // nil: every update is refused
	stats  *statsBox                            // nil: not counted
	log    *slog.Logger

	dynMu  sync.Mutex
	dyn    map[string][][]string // name -> TXT records added by updates
	serial uint32                // the zones' SOA serial, bumped by every update

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// listenDNS binds UDP and TCP to the same free port of host.
func listenDNS(host string) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, nil, err
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return pc, ln, nil
		}
		ln.Close()
		lastErr = err
	}
	return nil, nil, lastErr
}

func (s *dnsServer) start() {
	s.conns = map[net.Conn]struct{}{}
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
}

func (s *dnsServer) close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := errors.Join(s.udp.Close(), s.tcp.Close())
	s.wg.Wait()
	return err
}

func (s *dnsServer) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, addr, err := s.udp.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("dns udp read", "error", err)
			continue
		}
		if resp := s.handle(buf[:n], true); resp != nil {
			if _, err := s.udp.WriteTo(resp, addr); err != nil {
				s.log.Debug("dns udp write", "error", err)
			}
		}
	}
}

func (s *dnsServer) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("dns tcp accept", "error", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

func (s *dnsServer) serveConn(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	var lenBuf [2]byte
	for {
		c.SetDeadline(time.Now().Add(dnsTCPTimeout))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp := s.handle(msg, false)
		if resp == nil {
			return
		}
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(resp)), uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// handle answers one message: a query (opcode QUERY) or a dynamic update
// (opcode UPDATE). It returns nil for messages that get no answer
// (responses, or garbage without a readable header).
func (s *dnsServer) handle(req []byte, udp bool) []byte {
	if len(req) < 12 {
		return nil
	}
	flags := binary.BigEndian.Uint16(req[2:])
	if flags&(1<<15) != 0 {
		return nil // a response
	}
	id, opcode := binary.BigEndian.Uint16(req), int(flags>>11&0xf)
	m := new(dns.Msg)
	if err := m.Unpack(req); err != nil {
		return s.pack(&dns.Msg{MsgHdr: dns.MsgHdr{Id: id, Response: true, Opcode: opcode, Rcode: dns.RcodeFormatError}}, udp, dnsMinUDPSize, nil)
	}
	resp := &dns.Msg{MsgHdr: dns.MsgHdr{
		Id:               m.Id,
		Response:         true,
		Opcode:           m.Opcode,
		Authoritative:    true,
		RecursionDesired: m.RecursionDesired,
	}}
	if len(m.Question) == 1 {
		resp.Question = m.Question
	}
	limit := dnsMinUDPSize
	opt := m.IsEdns0()
	if opt != nil {
		limit = min(max(int(opt.UDPSize()), dnsMinUDPSize), dnsUDPSize)
		resp.SetEdns0(dnsUDPSize, false)
		if opt.Version() != 0 {
			resp.Rcode = dns.RcodeBadVers
			return s.pack(resp, udp, limit, nil)
		}
	}

	// A TSIG record (RFC 8945) must be the world's key with a valid MAC;
	// the response is then signed too.
	var signed *dns.TSIG
	if t := m.IsTsig(); t != nil {
		if prob := s.verifyTSIG(req, t); prob != "" {
			s.log.Info("dns message refused", "reason", prob)
			s.count(func(st *Stats) { st.DNSUpdatesRefused++ }, m.Opcode == dns.OpcodeUpdate)
			resp.Rcode = dns.RcodeNotAuth
			return s.pack(resp, udp, limit, nil)
		}
		signed = t
	}

	switch m.Opcode {
	case dns.OpcodeQuery:
		s.count(func(st *Stats) { st.DNSQueries++ }, true)
		if len(m.Question) != 1 {
			resp.Rcode = dns.RcodeFormatError
			break
		}
		s.answer(m.Question[0], resp)
	case dns.OpcodeUpdate:
		s.update(m, resp, signed != nil)
	default:
		resp.Question = nil
		resp.Rcode = dns.RcodeNotImplemented
	}
	return s.pack(resp, udp, limit, signed)
}

// verifyTSIG checks the TSIG record t of the raw message req and says what
// is wrong with it, or "".
func (s *dnsServer) verifyTSIG(req []byte, t *dns.TSIG) string {
	if s.tsig == nil {
		return "a TSIG-signed message, but this server has no key"
	}
	if !strings.EqualFold(dns.Fqdn(t.Hdr.Name), dns.Fqdn(s.tsig.Name)) {
		return "unknown TSIG key " + dns.Fqdn(t.Hdr.Name)
	}
	if !strings.EqualFold(dns.Fqdn(t.Algorithm), dns.Fqdn(s.tsig.Algorithm)) {
		return "TSIG algorithm " + t.Algorithm + " is not the key's"
	}
	if err := dns.TsigVerify(req, s.tsig.Secret, "", false); err != nil {
		return "TSIG: " + err.Error()
	}
	return ""
}

// pack encodes resp, cut to limit octets over UDP and, for a signed
// request, signed with the world's key.
func (s *dnsServer) pack(resp *dns.Msg, udp bool, limit int, signed *dns.TSIG) []byte {
	if resp.Rcode == dns.RcodeNotAuth {
		// miekg/dns clients (lego among them) take a signed NOTAUTH for
		// a TSIG failure and report "bad authentication" instead of the
		// rcode.
		signed = nil
	}
	if udp {
		reserve := 0
		if signed != nil {
			// The TSIG record: owner, algorithm, MAC, fixed fields.
			reserve = len(signed.Hdr.Name) + len(signed.Algorithm) + 128
		}
		resp.Truncate(limit - reserve)
	}
	if signed != nil {
		resp.SetTsig(signed.Hdr.Name, signed.Algorithm, tsigFudge, time.Now().Unix())
		out, _, err := dns.TsigGenerate(resp, s.tsig.Secret, signed.MAC, false)
		if err == nil {
			return out
		}
		s.log.Debug("dns sign", "error", err)
		return nil
	}
	out, err := resp.Pack()
	if err != nil {
		s.log.Debug("dns pack", "error", err)
		return nil
	}
	return out
}

func (s *dnsServer) count(f func(*Stats), yes bool) {
	if s.stats != nil && yes {
		s.stats.update(f)
	}
}

func canonicalDNSName(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

// zoneOf returns the zone name is in (the longest match), or "".
func (s *dnsServer) zoneOf(name string) string {
	if s.zones == nil {
		return ""
	}
	best := ""
	for _, z := range s.zones() {
		if (name == z || strings.HasSuffix(name, "."+z)) && len(z) > len(best) {
			best = z
		}
	}
	return best
}

func (s *dnsServer) isHost(name, zone string) bool {
	if s.addr == nil || zone == "" {
		return false
	}
	if name == zone {
		return true
	}
	label, ok := strings.CutSuffix(name, "."+zone)
	return ok && slices.Contains(dnsHostLabels, label)
}

// txt returns the TXT records at name: the static ones, then those added
// by updates.
func (s *dnsServer) txt(name string) ([][]string, bool) {
	var out [][]string
	found := false
	if s.lookup != nil {
		if recs, ok := s.lookup(name); ok {
			found = true
			for _, r := range recs {
				out = append(out, splitTXT(r))
			}
		}
	}
	s.dynMu.Lock()
	defer s.dynMu.Unlock()
	if recs, ok := s.dyn[name]; ok {
		found = true
		for _, r := range recs {
			out = append(out, slices.Clone(r))
		}
	}
	return out, found
}

// dynamicTXT returns the records updates added at name, each joined.
func (s *dnsServer) dynamicTXT(name string) []string {
	s.dynMu.Lock()
	defer s.dynMu.Unlock()
	var out []string
	for _, r := range s.dyn[name] {
		out = append(out, strings.Join(r, ""))
	}
	return out
}

// hasBelow reports whether some name updates added lies below name (an
// empty non-terminal exists, RFC 8020).
func (s *dnsServer) hasBelow(name string) bool {
	s.dynMu.Lock()
	defer s.dynMu.Unlock()
	for n := range s.dyn {
		if strings.HasSuffix(n, "."+name) {
			return true
		}
	}
	return false
}

func (s *dnsServer) soa(zone string) *dns.SOA {
	s.dynMu.Lock()
	serial := s.serial + 1
	s.dynMu.Unlock()
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: dns.Fqdn(zone), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: dnsTTL},
		Ns:      dns.Fqdn("ns." + zone),
		Mbox:    dns.Fqdn("hostmaster." + zone),
		Serial:  serial,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  dnsTTL,
	}
}

// answer fills resp with the answer to q.
func (s *dnsServer) answer(q dns.Question, resp *dns.Msg) {
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		resp.Rcode = dns.RcodeRefused
		return
	}
	name := canonicalDNSName(q.Name)
	zone := s.zoneOf(name)
	txts, txtOK := s.txt(name)
	var srvs []*dns.SRV
	srvOK := false
	if s.srv != nil {
		srvs, srvOK = s.srv(name)
	}
	apex, host := zone != "" && name == zone, s.isHost(name, zone)
	if !txtOK && !srvOK && !apex && !host && !(zone != "" && s.hasBelow(name)) {
		resp.Rcode = dns.RcodeNameError
		if zone != "" {
			resp.Ns = []dns.RR{s.soa(zone)}
		}
		return
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: dnsTTL}
	}
	want := func(t uint16) bool { return q.Qtype == t || q.Qtype == dns.TypeANY }
	if want(dns.TypeSOA) && apex {
		soa := s.soa(zone)
		soa.Hdr.Name = q.Name
		resp.Answer = append(resp.Answer, soa)
	}
	if want(dns.TypeNS) && apex {
		resp.Answer = append(resp.Answer, &dns.NS{Hdr: hdr(dns.TypeNS), Ns: dns.Fqdn("ns." + zone)})
	}
	if host {
		if ip4 := s.addr.To4(); ip4 != nil && want(dns.TypeA) {
			resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: ip4})
		} else if ip4 == nil && want(dns.TypeAAAA) {
			resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: s.addr})
		}
	}
	if want(dns.TypeTXT) {
		for _, t := range txts {
			resp.Answer = append(resp.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: t})
		}
	}
	if want(dns.TypeSRV) {
		for _, r := range srvs {
			r := *r
			r.Hdr = hdr(dns.TypeSRV)
			resp.Answer = append(resp.Answer, &r)
		}
	}
	if len(resp.Answer) == 0 && zone != "" {
		resp.Ns = []dns.RR{s.soa(zone)} // NODATA (RFC 2308 §2.2)
	}
}

// update applies an RFC 2136 dynamic update: only TXT records, only inside
// one of the zones, only signed with the world's TSIG key. Either every
// change applies or none.
func (s *dnsServer) update(m, resp *dns.Msg, signed bool) {
	refuse := func(rcode int, reason string) {
		resp.Rcode = rcode
		s.log.Info("dns update refused", "rcode", dns.RcodeToString[rcode], "reason", reason)
		s.count(func(st *Stats) { st.DNSUpdatesRefused++ }, true)
	}
	// RFC 2136 §3.1: one zone, type SOA.
	if len(m.Question) != 1 || m.Question[0].Qtype != dns.TypeSOA || m.Question[0].Qclass != dns.ClassINET {
		refuse(dns.RcodeFormatError, "the zone section must hold one SOA question")
		return
	}
	zone := canonicalDNSName(m.Question[0].Name)
	if !signed {
		refuse(dns.RcodeRefused, "not signed with the world's TSIG key")
		return
	}
	if s.zoneOf(zone) != zone {
		refuse(dns.RcodeNotAuth, "not a zone of this server: "+zone)
		return
	}
	if len(m.Answer) > 0 {
		refuse(dns.RcodeNotImplemented, "prerequisites are not supported")
		return
	}
	type change struct {
		name  string
		class uint16
		typ   uint16
		txt   []string
	}
	var changes []change
	for _, rr := range m.Ns {
		h := rr.Header()
		name := canonicalDNSName(h.Name)
		if name != zone && !strings.HasSuffix(name, "."+zone) {
			refuse(dns.RcodeNotZone, name+" is outside the zone "+zone)
			return
		}
		c := change{name: name, class: h.Class, typ: h.Rrtype}
		switch h.Class {
		case dns.ClassINET:
			t, ok := rr.(*dns.TXT)
			if !ok {
				refuse(dns.RcodeRefused, "only TXT records can be added, not "+dns.TypeToString[h.Rrtype])
				return
			}
			c.txt = t.Txt
		case dns.ClassANY: // delete an RRset (or every set of the name)
			if h.Ttl != 0 || h.Rdlength != 0 || (h.Rrtype != dns.TypeTXT && h.Rrtype != dns.TypeANY) {
				refuse(dns.RcodeFormatError, "a deletion of "+dns.TypeToString[h.Rrtype]+" with data or a TTL")
				return
			}
		case dns.ClassNONE: // delete one record
			t, ok := rr.(*dns.TXT)
			if !ok || h.Ttl != 0 {
				refuse(dns.RcodeRefused, "only TXT records can be deleted, not "+dns.TypeToString[h.Rrtype])
				return
			}
			c.txt = t.Txt
		default:
			refuse(dns.RcodeFormatError, "update class "+dns.ClassToString[h.Class])
			return
		}
		changes = append(changes, c)
	}

	s.dynMu.Lock()
	defer s.dynMu.Unlock()
	next := make(map[string][][]string, len(s.dyn))
	for k, v := range s.dyn {
		next[k] = v
	}
	for _, c := range changes {
		recs := next[c.name]
		switch c.class {
		case dns.ClassINET:
			if !slices.ContainsFunc(recs, func(r []string) bool { return slices.Equal(r, c.txt) }) {
				recs = append(slices.Clip(recs), slices.Clone(c.txt))
			}
		case dns.ClassANY:
			recs = nil
		case dns.ClassNONE:
			recs = slices.DeleteFunc(slices.Clone(recs), func(r []string) bool { return slices.Equal(r, c.txt) })
		}
		if len(recs) == 0 {
			delete(next, c.name)
			continue
		}
		next[c.name] = recs
		if len(recs) > maxDynamicPerName || len(next) > maxDynamicNames {
			resp.Rcode = dns.RcodeRefused
			s.log.Info("dns update refused", "reason", "too many records")
			s.count(func(st *Stats) { st.DNSUpdatesRefused++ }, true)
			return
		}
	}
	s.dyn = next
	s.serial++
	s.count(func(st *Stats) { st.DNSUpdates++ }, true)
	s.log.Info("dns update applied", "zone", zone, "changes", len(changes))
}

// splitTXT splits a record into character-strings of at most 255 octets
// (RFC 1035 §3.3.14); resolvers join them back (RFC 6376 §3.6.2.2).
func splitTXT(s string) []string {
	var parts []string
	for len(s) > 255 {
		parts = append(parts, s[:255])
		s = s[255:]
	}
	return append(parts, s)
}
