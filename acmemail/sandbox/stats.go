package sandbox

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"maps"
	"slices"
	"sync"
)

// Stats counts what happened in a [World]. Tests use it to check that the
// sandbox saw what they expect; [World.Stats] returns a copy.
type Stats struct {
	Requests       int // ACME HTTP requests served
	BadNonces      int // requests refused with badNonce
	Accounts       int // accounts created
	Orders         int // orders created
	Authorizations int // authorizations created
	// AuthorizationsReused counts valid authorizations put into a later
	// order (Options.ReuseValidAuthz) instead of new ones.
	AuthorizationsReused int

	ChallengesSent    int // challenge emails delivered to a user's INBOX
	ChallengesValid   int // challenges that became valid
	ChallengesInvalid int // challenges that became invalid (wrong digest, no reply in time, ...)

	RepliesReceived int      // messages that reached the CA's mailbox
	RepliesAccepted int      // replies that validated a challenge
	RepliesRejected int      // replies the CA refused (len(RejectedReasons))
	RejectedReasons []string // why each refused reply was refused, in order
	// RepliesPerChallenge counts the replies received for each challenge
	// (by its URL), accepted or not: a client must never answer one twice.
	RepliesPerChallenge map[string]int

	CertificatesIssued  int
	CertificatesRevoked int

	RenewalInfoRequests int // renewalInfo (ARI) GETs answered with a window
	OrdersReplacing     int // orders created with "replaces"

	DNSUpdates        int // RFC 2136 updates applied
	DNSUpdatesRefused int // updates refused (unsigned, wrong key, outside the zones, ...)
	DNSValidations    int // dns-01 and dns-service-01 lookups the CA made
	// DNSQueries counts the queries the DNS server answered, over UDP and
	// TCP: a client's DKIM key lookups, and the CA's dns-01 lookups.
	DNSQueries int

	MessagesSubmitted int // messages accepted by the submission server
	MessagesDelivered int // messages appended to user INBOXes (any path, Deliver included)

	// Logins counts successful logins by protocol and mechanism: "imap
	// LOGIN", "imap PLAIN", "imap OAUTHBEARER", "smtp XOAUTH2", ...
	Logins map[string]int

	// IMAPConnections counts the connections the IMAP server accepted
	// (both listeners); IMAPOpenMax is the most that were open at one
	// time; IMAPLoggingInMax the most that were, at one time, accepted
	// but not yet logged in (nor closed): the logins in progress. The
	// SMTP fields count the submission server's likewise.
	IMAPConnections, IMAPOpenMax, IMAPLoggingInMax int
	SMTPConnections, SMTPOpenMax, SMTPLoggingInMax int

	// TLSHandshakes counts the TLS handshakes the servers completed, by
	// protocol ("https", "imap", "smtp"; implicit TLS and STARTTLS alike);
	// TLSResumed those of them that resumed an earlier session (no
	// certificate sent, no signature made). The handshakes a client
	// does in full are the difference.
	TLSHandshakes, TLSResumed map[string]int
}

type statsBox struct {
	mu sync.Mutex
	s  Stats
	// The connections open now, and those of them not logged in, by
	// protocol ("imap", "smtp").
	open, loggingIn map[string]int
}

// connOpened counts a connection the server of proto accepted.
func (b *statsBox) connOpened(proto string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open == nil {
		b.open, b.loggingIn = map[string]int{}, map[string]int{}
	}
	b.open[proto]++
	b.loggingIn[proto]++
	total, openMax, loggingMax := b.connFields(proto)
	*total++
	*openMax = max(*openMax, b.open[proto])
	*loggingMax = max(*loggingMax, b.loggingIn[proto])
}

// connState is where one connection is in the counts of statsBox; it is
// changed under statsBox.mu only.
type connState struct{ loggedIn, closed bool }

// connLoggedIn counts the login of connection c (once).
func (b *statsBox) connLoggedIn(proto string, c *connState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !c.loggedIn && !c.closed {
		c.loggedIn = true
		b.loggingIn[proto]--
	}
}

// connClosed counts the end of connection c (once).
func (b *statsBox) connClosed(proto string, c *connState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	b.open[proto]--
	if !c.loggedIn {
		b.loggingIn[proto]--
	}
}

func (b *statsBox) connFields(proto string) (total, openMax, loggingMax *int) {
	if proto == "imap" {
		return &b.s.IMAPConnections, &b.s.IMAPOpenMax, &b.s.IMAPLoggingInMax
	}
	return &b.s.SMTPConnections, &b.s.SMTPOpenMax, &b.s.SMTPLoggingInMax
}

// countTLS returns conf, whose handshakes are counted for proto in
// TLSHandshakes and TLSResumed. It checks nothing: the server asks no
// client certificate.
func (b *statsBox) countTLS(proto string, conf *tls.Config) *tls.Config {
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		b.update(func(s *Stats) {
			if s.TLSHandshakes == nil {
				s.TLSHandshakes, s.TLSResumed = map[string]int{}, map[string]int{}
			}
			s.TLSHandshakes[proto]++
			if cs.DidResume {
				s.TLSResumed[proto]++
			}
		})
		return nil
	}
	return conf
}

func (b *statsBox) update(f func(*Stats)) {
	b.mu.Lock()
	f(&b.s)
	b.mu.Unlock()
}

func (b *statsBox) snapshot() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.s
	s.RejectedReasons = slices.Clone(b.s.RejectedReasons)
	s.Logins = maps.Clone(b.s.Logins)
	s.RepliesPerChallenge = maps.Clone(b.s.RepliesPerChallenge)
	s.TLSHandshakes, s.TLSResumed = maps.Clone(b.s.TLSHandshakes), maps.Clone(b.s.TLSResumed)
	return s
}

// nonceStore issues single-use anti-replay nonces (RFC 8555 §6.5). It keeps
// the newest capacity nonces; older ones expire.
type nonceStore struct {
	mu   sync.Mutex
	live map[string]struct{}
	ring []string
	next int
}

func newNonceStore(capacity int) *nonceStore {
	return &nonceStore{live: make(map[string]struct{}, capacity), ring: make([]string, capacity)}
}

func (n *nonceStore) make() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	s := base64.RawURLEncoding.EncodeToString(b)
	n.mu.Lock()
	defer n.mu.Unlock()
	if old := n.ring[n.next]; old != "" {
		delete(n.live, old)
	}
	n.ring[n.next] = s
	n.next = (n.next + 1) % len(n.ring)
	n.live[s] = struct{}{}
	return s
}

// use consumes s and reports whether it was a live nonce.
func (n *nonceStore) use(s string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.live[s]; !ok {
		return false
	}
	delete(n.live, s)
	return true
}
