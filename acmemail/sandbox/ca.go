package sandbox

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Resource states (RFC 8555 §7.1.6).
const (
	statusPending     = "pending"
	statusProcessing  = "processing"
	statusReady       = "ready"
	statusValid       = "valid"
	statusInvalid     = "invalid"
	statusDeactivated = "deactivated"
	statusExpired     = "expired"
	statusRevoked     = "revoked"
)

const (
	challengeType = "email-reply-00"
	// authzLifetime bounds how long a token is good for (CA/B S/MIME BR
	// 3.2.2.4: at most 24 hours).
	authzLifetime = 24 * time.Hour
	retryAfter    = "1"
)

type identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type account struct {
	id, url string
	key     *jwk
	status  string
	contact []string
	orders  []*order
	eabKid  string // the external account key it was bound with, if any
}

type order struct {
	id, url     string
	acct        *account
	status      string
	expires     time.Time
	identifiers []identifier
	authzs      []*authz
	cert        *certificate
	err         *problem
	replaces    *certificate // RFC 9773 "replaces", or nil
	server      bool         // dns and srvname identifiers (server.go)
}

type authz struct {
	id, url string
	acct    *account
	order   *order
	ident   identifier
	status  string
	expires time.Time
	chall   *challenge
}

// mailState tracks the challenge email of a challenge.
type mailState int

const (
	mailNone mailState = iota
	mailSending
	mailSent
	mailFailed
)

type challenge struct {
	id, url   string
	authz     *authz
	typ       string // challengeType, or for servers dns-01 or dns-service-01
	service   string // dns-service-01: the service (without underscore)
	port      int    // dns-service-01: the port it is bound to
	status    string
	tp2       string // token-part2, the challenge's token
	from      string // the per-challenge plus address
	tp1       string // token-part1, set when the email is sent
	messageID string
	mail      mailState
	posted    time.Time
	validated time.Time
	err       *problem
	timer     *time.Timer
	queued    []string // digests of authentic replies that arrived before the POST
	rejected  []string // reasons replies to this challenge were refused
}

type certificate struct {
	id, url string
	acct    *account
	chain   [][]byte
	leaf    *x509.Certificate
	revoked bool
	reason  int // CRLReason, when revoked

	replaces   *certificate // the certificate this one replaced (ARI)
	replacing  *order       // the order that replaces this one, if any
	replacedBy *certificate // the certificate that replaced this one
}

// authority is the ACME CA: its state, its challenge emails and its
// mailbox.
type authority struct {
	opt      Options
	join     joinMode
	log      *slog.Logger
	stats    *statsBox
	pki      *pki
	mail     *mailSystem
	keys     *dkimRegistry
	lookup   func(string) ([]string, error)
	zones    func() []string                                                // the DNS zones "dns" identifiers must be in
	queryTXT func(ctx context.Context, name string) ([]string, bool, error) // the world's DNS server, over the network
	baseURL  string
	nonces   *nonceStore
	observe  func(Observation) // nil: nobody watches
	caLocal  string
	caDomain string

	mu       sync.Mutex
	closed   bool
	accounts map[string]*account // by URL
	byThumb  map[string]*account
	orders   map[string]*order
	authzs   map[string]*authz
	challs   map[string]*challenge
	byFrom   map[string]*challenge // lowercased plus address
	byMsgID  map[string]*challenge
	byTP1    map[string]*challenge
	certs    map[string]*certificate
	bySerial map[string]*certificate

	fixedWindow [2]time.Time // World.SetRenewalWindow; zero: per Options
}

func (ca *authority) init() {
	ca.accounts = map[string]*account{}
	ca.byThumb = map[string]*account{}
	ca.orders = map[string]*order{}
	ca.authzs = map[string]*authz{}
	ca.challs = map[string]*challenge{}
	ca.byFrom = map[string]*challenge{}
	ca.byMsgID = map[string]*challenge{}
	ca.byTP1 = map[string]*challenge{}
	ca.certs = map[string]*certificate{}
	ca.bySerial = map[string]*certificate{}
}

func (ca *authority) close() {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.closed = true
	for _, ch := range ca.challs {
		if ch.timer != nil {
			ch.timer.Stop()
		}
	}
}

// newID returns a random URL-safe resource id.
func newID() string {
	s, err := randomHex(10)
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return s
}

// sendChallengeMail generates token-part1 and mails the challenge to the
// identifier. The caller must not hold ca.mu. Only the first call for a
// challenge does anything.
func (ca *authority) sendChallengeMail(ch *challenge) {
	ca.mu.Lock()
	if ch.mail != mailNone || ca.closed {
		ca.mu.Unlock()
		return
	}
	tp1, err := newToken(ca.opt.TokenLength)
	if err != nil {
		ch.mail = mailFailed
		ca.failLocked(ch, newProblem(probServerInternal, "cannot create token-part1: %v", err))
		ca.mu.Unlock()
		return
	}
	ch.mail = mailSending
	ch.tp1 = tp1
	ch.messageID = "<" + newID() + "@" + ca.caDomain + ">"
	ca.byTP1[tp1] = ch
	ca.byMsgID[ch.messageID] = ch
	to, from, msgID := ch.authz.ident.Value, ch.from, ch.messageID
	ca.mu.Unlock()

	if ca.opt.Hostile {
		ca.deliverForgeries(from, to)
	}
	raw := composeChallenge(from, to, tp1, msgID, time.Now(), !ca.opt.OmitAutoSubmitted)
	var signed []byte
	if ca.opt.External != nil {
		// The external mail system signs it, as a provider does.
		handed := time.Now()
		err = ca.sendExternal(from, to, raw)
		if err == nil && ca.observe != nil {
			ca.observe(Observation{Kind: ObserveChallengeMail, At: handed, Email: to, Detail: ch.url})
		}
	} else if signed, err = ca.keys.sign(ca.caDomain, raw); err == nil {
		env := envelope{from: from, id: strings.ToUpper(newID()[:12])}
		handed := time.Now()
		err = ca.mail.deliver(env, []string{to}, signed)
		if err == nil && ca.observe != nil {
			ca.observe(Observation{Kind: ObserveChallengeMail, At: handed, Email: to, Detail: ch.url})
		}
	}
	if err == nil && ca.opt.Hostile {
		// A replay of the genuine challenge, delivered again.
		ca.forge("replay of the genuine challenge", to, signed)
	}

	ca.mu.Lock()
	defer ca.mu.Unlock()
	if err != nil {
		ch.mail = mailFailed
		ca.log.Error("challenge email not delivered", "to", to, "error", err)
		ca.failLocked(ch, newProblem(probConnection, "the challenge email to %s could not be delivered: %v", to, err))
		return
	}
	ch.mail = mailSent
	ca.stats.update(func(s *Stats) { s.ChallengesSent++ })
	ca.log.Info("challenge email sent", "to", to, "from", from, "challenge", ch.url)
}

// composeChallenge builds the challenge email of RFC 8823 §3.1 (unsigned).
func composeChallenge(from, to, tp1, msgID string, date time.Time, autoSubmitted bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", to)
	fmt.Fprintf(&b, "Subject: ACME: %s\r\n", tp1)
	fmt.Fprintf(&b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: %s\r\n", msgID)
	if autoSubmitted {
		b.WriteString("Auto-Submitted: auto-generated; type=acme\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=us-ascii\r\n")
	b.WriteString("Content-Transfer-Encoding: 7bit\r\n")
	b.WriteString("\r\n")
	for _, line := range []string{
		"This message was sent by the acmemail sandbox certificate authority",
		"to confirm that you control the address " + to + ".",
		"",
		"If you asked for an S/MIME certificate, your ACME client answers this",
		"message for you (RFC 8823). If you did not, ignore it: without a valid",
		"response no certificate is issued.",
	} {
		b.WriteString(line + "\r\n")
	}
	return b.Bytes()
}

// trigger handles the client's POST to the challenge: the CA starts looking
// for the reply. The caller must not hold ca.mu.
func (ca *authority) trigger(ch *challenge) {
	ca.mu.Lock()
	if ch.status != statusPending || ch.authz.status != statusPending || ca.closed {
		ca.mu.Unlock()
		return
	}
	ch.status = statusProcessing
	ch.posted = time.Now()
	ca.log.Info("challenge triggered", "challenge", ch.url, "window", ca.opt.ValidationWindow)
	ch.timer = time.AfterFunc(ca.opt.ValidationWindow, func() { ca.windowClosed(ch) })
	send := ch.mail == mailNone
	if ch.mail == mailSent && len(ch.queued) > 0 {
		// The first authentic reply that arrived before the POST decides.
		ca.decideLocked(ch, ch.queued[0])
		ch.queued = nil
	}
	ca.mu.Unlock()
	if send {
		ca.sendChallengeMail(ch)
	}
}

// windowClosed fails a challenge that got no valid reply in time.
func (ca *authority) windowClosed(ch *challenge) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ch.status != statusProcessing || ca.closed {
		return
	}
	detail := fmt.Sprintf("no valid response email to the challenge arrived within %s after the challenge was triggered", ca.opt.ValidationWindow)
	if ca.opt.MailTiming == MailAtAuthorization {
		detail += "; this CA mails the challenge when the authorization is fetched and checks its mailbox only briefly after the challenge POST, so send the response before POSTing the challenge"
	}
	if len(ch.rejected) > 0 {
		detail += fmt.Sprintf("; %d response(s) were refused: %s", len(ch.rejected), strings.Join(ch.rejected, "; "))
	}
	ca.failLocked(ch, newProblem(probIncorrectResponse, "%s", detail))
	ca.log.Info("challenge failed", "challenge", ch.url, "reason", "no reply in time")
}

// decideLocked validates an authentic reply's digest for a processing
// challenge.
func (ca *authority) decideLocked(ch *challenge, digest string) {
	want, err := responseDigest(ch.tp1, ch.tp2, ch.authz.acct.key.thumbprint, ca.join)
	if err != nil {
		ca.failLocked(ch, newProblem(probServerInternal, "cannot compute the expected digest: %v", err))
		return
	}
	got := strings.TrimRight(digest, "=")
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1 {
		ca.stats.update(func(s *Stats) { s.RepliesAccepted++ })
		ca.validLocked(ch)
		return
	}
	reason := "the digest in the response does not match base64url(SHA-256(token \".\" thumbprint))"
	ca.recordRejectLocked(ch, reason)
	join := "as strings (token-part1 as sent, then token-part2)"
	if ca.join == joinOctet {
		join = "as octets (both parts base64url-decoded, concatenated, re-encoded without padding)"
	}
	ca.failLocked(ch, newProblem(probIncorrectResponse,
		"the response digest does not match the key authorization; this CA joins the token parts %s, then computes base64url(SHA-256(token \".\" account key thumbprint))", join))
	ca.log.Info("challenge failed", "challenge", ch.url, "reason", "wrong digest")
}

// validLocked makes a challenge and its authorization valid, and the
// order ready once all its authorizations are.
func (ca *authority) validLocked(ch *challenge) {
	ch.status = statusValid
	ch.validated = time.Now()
	if ch.timer != nil {
		ch.timer.Stop()
	}
	az := ch.authz
	az.status = statusValid
	ca.stats.update(func(s *Stats) { s.ChallengesValid++ })
	if ca.observe != nil {
		ca.observe(Observation{Kind: ObserveChallengeValid, At: ch.validated, Email: az.ident.Value, Detail: ch.url})
	}
	ca.log.Info("challenge valid", "challenge", ch.url, "type", ch.typ, "identifier", az.ident.Value)
	o := az.order
	if o.status == statusPending {
		ready := true
		for _, a := range o.authzs {
			ready = ready && a.status == statusValid
		}
		if ready {
			o.status = statusReady
		}
	}
}

// failLocked makes a challenge, its authorization and its order invalid.
func (ca *authority) failLocked(ch *challenge, p *problem) {
	if ch.status == statusValid || ch.status == statusInvalid {
		return
	}
	ch.status = statusInvalid
	ch.err = p
	if ch.timer != nil {
		ch.timer.Stop()
	}
	az := ch.authz
	az.status = statusInvalid
	o := az.order
	if o.status != statusValid && o.status != statusInvalid {
		o.status = statusInvalid
		op := *p
		op.Identifier = &az.ident
		o.err = &op
	}
	ca.stats.update(func(s *Stats) { s.ChallengesInvalid++ })
}

func (ca *authority) recordRejectLocked(ch *challenge, reason string) {
	if ch != nil {
		ch.rejected = append(ch.rejected, reason)
	}
	ca.stats.update(func(s *Stats) {
		s.RepliesRejected++
		s.RejectedReasons = append(s.RejectedReasons, reason)
	})
	ca.log.Info("response email refused", "reason", reason)
}

// receive is the CA's mailbox: every message delivered to a CA address
// ends up here.
func (ca *authority) receive(rcpt string, raw []byte) {
	ca.stats.update(func(s *Stats) { s.RepliesReceived++ })
	r := parseReply(raw, ca.lookup)

	ca.mu.Lock()
	defer ca.mu.Unlock()
	ch := ca.matchLocked(rcpt, r)
	if ch == nil {
		ca.recordRejectLocked(nil, "the message to "+rcpt+" does not answer any challenge of this CA")
		return
	}
	ca.stats.update(func(s *Stats) {
		if s.RepliesPerChallenge == nil {
			s.RepliesPerChallenge = map[string]int{}
		}
		s.RepliesPerChallenge[ch.url]++
	})
	if r.fatal != "" {
		ca.recordRejectLocked(ch, r.fatal)
		return
	}
	switch {
	// mailSending: an external mail system may deliver the challenge, and
	// the client answer it, before the submission has returned here.
	case ch.mail != mailSent && ch.mail != mailSending:
		ca.recordRejectLocked(ch, "no challenge email has been sent for this challenge yet")
		return
	case ch.status == statusValid || ch.status == statusInvalid:
		ca.recordRejectLocked(ch, "the challenge is already "+ch.status)
		return
	case time.Now().After(ch.authz.expires):
		ca.recordRejectLocked(ch, "the authorization has expired")
		return
	}
	ident := ch.authz.ident.Value
	if !sameAddress(r.from, ident) {
		ca.recordRejectLocked(ch, fmt.Sprintf("the response is from %s, not from the identifier %s", r.from, ident))
		return
	}
	tok := subjectToken(r.subject)
	if tok == "" {
		ca.recordRejectLocked(ch, `the Subject does not contain "ACME:" and token-part1`)
		return
	}
	// Like acme2certifier, accept text after the token ("... (resent)").
	if len(tok) < len(ch.tp1) || subtle.ConstantTimeCompare([]byte(tok[:len(ch.tp1)]), []byte(ch.tp1)) != 1 {
		ca.recordRejectLocked(ch, "the Subject does not carry the token-part1 of the challenge email")
		return
	}
	if !r.dkim.pass {
		ca.recordRejectLocked(ch, r.dkim.reason)
		return
	}
	if r.digest == "" {
		ca.recordRejectLocked(ch, r.noBlock)
		return
	}
	if ch.status == statusPending {
		ch.queued = append(ch.queued, r.digest)
		ca.log.Info("response email kept until the challenge is triggered", "challenge", ch.url)
		return
	}
	ca.decideLocked(ch, r.digest)
}

// matchLocked finds the challenge a message answers: by the plus address it
// was sent to, else by In-Reply-To/References, else by token-part1 in the
// Subject.
func (ca *authority) matchLocked(rcpt string, r *reply) *challenge {
	local, _ := splitAddress(rcpt)
	if local != ca.caLocal {
		return ca.byFrom[strings.ToLower(rcpt)]
	}
	for _, id := range r.msgIDs {
		if ch := ca.byMsgID[id]; ch != nil {
			return ch
		}
	}
	if tok := subjectToken(r.subject); tok != "" {
		return ca.byTP1[tok]
	}
	return nil
}
