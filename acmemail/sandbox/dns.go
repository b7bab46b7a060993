package sandbox

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

const (
	dnsTTL        = 60
	dnsUDPSize    = 1232 // the EDNS0 payload size this server offers (DNS flag day 2020)
	dnsMinUDPSize = 512
	dnsTCPTimeout = 10 * time.Second
	rcodeBadVers  = dnsmessage.RCode(16)
)

// dnsServer answers TXT queries for the DKIM keys of the sandbox and SRV
// queries for its mail services, over UDP and TCP on the same port. Every
// other name is NXDOMAIN.
type dnsServer struct {
	udp    net.PacketConn
	tcp    net.Listener
	lookup func(name string) ([]string, bool)
	srv    func(name string) ([]dnsmessage.SRVResource, bool) // nil: no SRV records
	log    *slog.Logger

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

// handle answers one query. It returns nil for messages that get no answer
// (responses, or garbage without a readable header).
func (s *dnsServer) handle(req []byte, udp bool) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil || h.Response {
		return nil
	}
	resp := dnsmessage.Header{
		ID:               h.ID,
		Response:         true,
		OpCode:           h.OpCode,
		Authoritative:    true,
		RecursionDesired: h.RecursionDesired,
	}
	if h.OpCode != 0 {
		resp.RCode = dnsmessage.RCodeNotImplemented
		return s.build(resp, nil, nil, false, 0)
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		resp.RCode = dnsmessage.RCodeFormatError
		return s.build(resp, nil, nil, false, 0)
	}
	q := qs[0]

	// Look for an OPT record (RFC 6891) among the additionals.
	edns, udpSize, version := false, dnsMinUDPSize, 0
	if err := p.SkipAllAnswers(); err == nil {
		if err := p.SkipAllAuthorities(); err == nil {
			for {
				rh, err := p.AdditionalHeader()
				if err != nil {
					break
				}
				if rh.Type == dnsmessage.TypeOPT {
					edns = true
					udpSize = max(int(rh.Class), dnsMinUDPSize)
					version = int(rh.TTL >> 16 & 0xff)
				}
				if err := p.SkipAdditional(); err != nil {
					break
				}
			}
		}
	}
	if edns && version != 0 {
		return s.build(resp, &q, nil, true, rcodeBadVers)
	}
	if q.Class != dnsmessage.ClassINET && q.Class != dnsmessage.ClassANY {
		resp.RCode = dnsmessage.RCodeRefused
		return s.build(resp, &q, nil, edns, 0)
	}

	name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
	records, ok := s.lookup(name)
	var srvs []dnsmessage.SRVResource
	if s.srv != nil {
		var srvOK bool
		srvs, srvOK = s.srv(name)
		ok = ok || srvOK
	}
	switch {
	case !ok:
		resp.RCode = dnsmessage.RCodeNameError
		records, srvs = nil, nil
	case q.Type == dnsmessage.TypeALL:
	case q.Type == dnsmessage.TypeTXT:
		srvs = nil
	case q.Type == dnsmessage.TypeSRV:
		records = nil
	default:
		records, srvs = nil, nil // the name exists, but has no data of this type
	}
	out := s.build(resp, &q, records, edns, 0, srvs...)
	limit := dnsMinUDPSize
	if edns {
		limit = min(udpSize, dnsUDPSize)
	}
	if udp && len(out) > limit {
		resp.Truncated = true
		out = s.build(resp, &q, nil, edns, 0)
	}
	return out
}

func (s *dnsServer) build(h dnsmessage.Header, q *dnsmessage.Question, records []string, edns bool, extRCode dnsmessage.RCode, srvs ...dnsmessage.SRVResource) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	err := b.StartQuestions()
	if err == nil && q != nil {
		err = b.Question(*q)
	}
	if err == nil {
		err = b.StartAnswers()
	}
	for _, rec := range records {
		if err != nil {
			break
		}
		err = b.TXTResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}, dnsmessage.TXTResource{TXT: splitTXT(rec)})
	}
	for _, srv := range srvs {
		if err != nil {
			break
		}
		err = b.SRVResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}, srv)
	}
	if err == nil && edns {
		err = b.StartAdditionals()
		if err == nil {
			var rh dnsmessage.ResourceHeader
			if err = rh.SetEDNS0(dnsUDPSize, extRCode, false); err == nil {
				err = b.OPTResource(rh, dnsmessage.OPTResource{})
			}
		}
	}
	if err != nil {
		s.log.Debug("dns build", "error", err)
		return nil
	}
	out, err := b.Finish()
	if err != nil {
		s.log.Debug("dns build", "error", err)
		return nil
	}
	return out
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
