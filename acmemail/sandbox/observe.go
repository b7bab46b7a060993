package sandbox

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ObservationKind says what an [Observation] reports.
type ObservationKind int

const (
	// ObserveACME is one ACME HTTP request. Detail is the method and the
	// resource, e.g. "GET directory", "HEAD newNonce", "POST newAccount",
	// "POST authz", "POST finalize"; Status is the HTTP status.
	ObserveACME ObservationKind = iota
	// ObserveIMAP is one command a client sent to the implicit-TLS IMAP
	// listener. Detail is the command name ("LOGIN", "UID FETCH", ...).
	ObserveIMAP
	// ObserveSMTP is one command a client sent to the implicit-TLS
	// submission listener. Detail is the verb ("EHLO", "AUTH", "MAIL", ...).
	ObserveSMTP
	// ObserveChallengeMail is the CA's challenge mail being handed to local
	// delivery. At is taken before delivery into the INBOX starts; Email is
	// the identifier.
	ObserveChallengeMail
	// ObserveSubmitted is the submission server accepting a message: At is
	// taken just before it answers 250 to the end of DATA. Email is the
	// authenticated user.
	ObserveSubmitted
	// ObserveChallengeValid is a challenge becoming valid. Email is the
	// identifier.
	ObserveChallengeValid
)

func (k ObservationKind) String() string {
	switch k {
	case ObserveACME:
		return "acme"
	case ObserveIMAP:
		return "imap"
	case ObserveSMTP:
		return "smtp"
	case ObserveChallengeMail:
		return "challenge-mail"
	case ObserveSubmitted:
		return "submitted"
	case ObserveChallengeValid:
		return "challenge-valid"
	}
	return "ObservationKind(" + strconv.Itoa(int(k)) + ")"
}

// An Observation is one thing a [World] saw happen, reported to
// Options.Observe as it happens. Observations let a benchmark time a client
// from the outside and count what it asked for.
type Observation struct {
	Kind   ObservationKind
	At     time.Time     // when it happened (for ACME: when the request arrived)
	Took   time.Duration // ACME only: how long the CA took to answer
	Detail string
	Email  string
	Status int // ACME only: the HTTP status code
}

func (w *World) observe(o Observation) {
	if w.opt.Observe != nil {
		w.opt.Observe(o)
	}
}

// acmeResource names the ACME resource of a request path, for observations.
func acmeResource(path string) string {
	switch path {
	case pathDirectory:
		return "directory"
	case pathNewNonce:
		return "newNonce"
	case pathNewAccount:
		return "newAccount"
	case pathNewOrder:
		return "newOrder"
	case pathRevoke:
		return "revokeCert"
	case pathKeyChange:
		return "keyChange"
	case pathTerms:
		return "terms"
	}
	if strings.HasPrefix(path, pathRenewalInfo) {
		return "renewalInfo"
	}
	for _, p := range []struct{ prefix, name string }{
		{pathAccount, "account"}, {pathOrder, "order"}, {pathAuthz, "authz"}, {pathChallenge, "challenge"}, {pathCert, "cert"},
	} {
		if rest, ok := strings.CutPrefix(path, p.prefix); ok {
			if _, sub, _ := strings.Cut(rest, "/"); sub != "" {
				return sub // "finalize", "orders"
			}
			return p.name
		}
	}
	return "unknown"
}

// statusWriter remembers the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// commandListener reports the commands clients send on its connections
// (which must carry plaintext: wrap the TLS listener, not the TCP one).
type commandListener struct {
	net.Listener
	smtp bool
	kind ObservationKind
	w    *World
}

func (l *commandListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || l.w.opt.Observe == nil {
		return c, err
	}
	return &commandConn{Conn: c, l: l}, nil
}

// commandConn splits what the client sends into protocol lines and reports
// each command: for IMAP a tagged line (literals skipped, IDLE's DONE and
// SASL continuation lines are not commands); for SMTP a line starting with
// a command verb, outside the message content of DATA.
type commandConn struct {
	net.Conn
	l *commandListener

	mu      sync.Mutex
	line    []byte
	literal int64 // IMAP: literal bytes still to skip
	cont    bool  // IMAP: the next line continues a command (after a literal)
	inData  bool  // SMTP: message content until "."
}

const maxObservedLine = 8 << 10

func (c *commandConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.scan(p[:n])
	}
	return n, err
}

func (c *commandConn) scan(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(b) > 0 {
		if c.literal > 0 {
			k := min(int64(len(b)), c.literal)
			c.literal -= k
			b = b[k:]
			continue
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(c.line)+len(b) <= maxObservedLine {
				c.line = append(c.line, b...)
			}
			return
		}
		if len(c.line)+i <= maxObservedLine {
			c.line = append(c.line, b[:i]...)
		}
		b = b[i+1:]
		c.lineDone(string(bytes.TrimRight(c.line, "\r")))
		c.line = c.line[:0]
	}
}

var smtpVerbs = map[string]bool{
	"HELO": true, "EHLO": true, "LHLO": true, "STARTTLS": true, "AUTH": true, "MAIL": true, "RCPT": true,
	"DATA": true, "BDAT": true, "RSET": true, "NOOP": true, "QUIT": true, "VRFY": true, "EXPN": true, "HELP": true,
}

func (c *commandConn) lineDone(line string) {
	if c.l.smtp {
		if c.inData {
			if line == "." {
				c.inData = false
			}
			return
		}
		verb, _, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		if !smtpVerbs[verb] {
			return // an AUTH continuation or garbage
		}
		if verb == "DATA" {
			c.inData = true
		}
		c.l.w.observe(Observation{Kind: c.l.kind, At: time.Now(), Detail: verb})
		return
	}
	cont := c.cont
	c.cont = false
	if n, ok := imapLiteral(line); ok {
		c.literal, c.cont = n, true
	}
	if cont {
		return
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return // DONE, or a SASL continuation line
	}
	cmd := strings.ToUpper(f[1])
	if cmd == "UID" && len(f) > 2 {
		cmd += " " + strings.ToUpper(f[2])
	}
	c.l.w.observe(Observation{Kind: c.l.kind, At: time.Now(), Detail: cmd})
}

// imapLiteral reports the size of a literal announced at the end of line:
// "{n}" or "{n+}".
func imapLiteral(line string) (int64, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(line[i+1:len(line)-1], "+"), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
