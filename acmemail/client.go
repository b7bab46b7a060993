package acmemail

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

// ChallengeType is the RFC 8823 challenge type.
const ChallengeType = "email-reply-00"

// IdentifierType is the RFC 8823 identifier type.
const IdentifierType = "email"

// Defaults for the optional durations of [Client].
const (
	DefaultMailWait     = 20 * time.Second
	DefaultPollInterval = time.Second
	DefaultMaxPollDelay = 30 * time.Second
	DefaultPollTimeout  = 10 * time.Minute
)

// ErrMailTimeout is returned (wrapped) when no acceptable challenge mail
// arrived before the context ended. The error also wraps why the mails
// that claimed to be challenges were ignored (the most recent ones), so
// that a caller can find, for example, [ErrNoSMIMERoots] or an
// [*UntrustedSignerError] in it with [errors.Is] and [errors.As]; its text
// is only the timeout's (each ignored mail was reported as an
// [EventIgnoredMail] when it came).
var ErrMailTimeout = errors.New("no acceptable challenge mail arrived")

// mailTimeoutMaxIgnored bounds how many reasons for ignored mails a
// mail timeout error keeps: hostile mail can be sent without end.
const mailTimeoutMaxIgnored = 8

// mailTimeoutError is ErrMailTimeout with the reasons mails were ignored.
type mailTimeoutError struct {
	missing []string // the addresses still waiting for their challenge mail
	ignored []error  // why mails were ignored, the most recent last
}

func (e *mailTimeoutError) Error() string {
	return fmt.Sprintf("%s for %s in time", ErrMailTimeout, strings.Join(e.missing, ", "))
}

func (e *mailTimeoutError) Unwrap() []error {
	return append([]error{ErrMailTimeout}, e.ignored...)
}

// Client obtains S/MIME certificates from an RFC 8823 ACME CA.
//
// The zero value is not usable: DirectoryURL, AccountKey and Mail are
// required. All other fields have sane defaults.
type Client struct {
	// DirectoryURL is the ACME directory of the CA.
	DirectoryURL string
	// HTTPClient talks to the CA. nil: a client with the system roots.
	HTTPClient *http.Client
	// UserAgent is added to the User-Agent header.
	UserAgent string

	// AccountKey signs every ACME request (ES256 recommended).
	AccountKey crypto.Signer
	// AccountURL is the account's URL (kid) when it is already known.
	// When empty, Obtain registers the key (or finds its account) first and
	// reports the URL through OnAccount before anything else happens.
	AccountURL string
	// Contact holds the account's contact URLs ("mailto:...") for new accounts.
	Contact []string
	// EAB, if set, binds a new account to the CA's customer account
	// (RFC 8555 §7.3.4). CAs whose directory says externalAccountRequired
	// refuse new accounts without it ([ErrEABRequired]).
	EAB *EAB
	// OnAccount, if set, is called once with the account URL as soon as it is
	// known, so the caller can persist it before the order is placed.
	OnAccount func(url string) error

	// Join selects how token-part1 and token-part2 are joined (RFC 8823 is
	// ambiguous); JoinString is the default and what most CAs expect.
	Join JoinMode

	// Mail watches the user's mailbox and submits the reply. It must already
	// be watching when Obtain is called: mail that arrived before the watch
	// began is never considered.
	Mail Mail
	// Verifier decides whether a challenge mail is authentic (DKIM or
	// S/MIME). Required unless InsecureSkipMailAuth is set.
	Verifier Verifier
	// InsecureSkipMailAuth answers challenge mail without checking its
	// authenticity. Only for test CAs; every use is reported as a warning.
	InsecureSkipMailAuth bool
	// Guard records answered challenges so that none is answered twice.
	// nil: a process-local record (no protection across runs).
	Guard ReplyGuard

	// MailWait is how long to wait for the challenge mail after fetching
	// the authorization before POSTing the challenge anyway (for CAs that
	// mail only after the POST). Default DefaultMailWait.
	MailWait time.Duration
	// ReplySettle is a pause between sending the reply and POSTing the
	// challenge, for CAs that look for the reply only briefly after the
	// POST and need it delivered already. Default 0.
	ReplySettle time.Duration
	// PostAtOnce POSTs each challenge as soon as its authorization is
	// fetched, without waiting MailWait for the mail first: for a CA known
	// to mail only after the POST. A mail that comes anyway is answered.
	PostAtOnce bool
	// PollInterval is the first delay when polling a pending resource; it
	// doubles up to MaxPollDelay unless the server sends Retry-After.
	PollInterval time.Duration
	// MaxPollDelay caps the delay between polls (and the server's Retry-After).
	MaxPollDelay time.Duration
	// PollTimeout bounds the whole wait for validation and issuance.
	PollTimeout time.Duration

	// Logger receives debug and info logs. nil: no logs.
	Logger *slog.Logger
	// Progress, if set, receives one event per step, for a progress display.
	Progress func(Event)
	// Now returns the current time. nil: time.Now.
	Now func() time.Time

	once     sync.Once
	acme     *acme.Client
	tracker  *headerTracker
	account  acme.Account
	thumb    string
	initErr  error
	guardMem memoryGuard

	// The mailbox is read by one goroutine per Obtain. A reader whose
	// Obtain ended may still be inside Mail.Next (Next may return a
	// message that is ready although its ctx ended, and a pasted mail is
	// read whatever the ctx): what it gets is kept in unread for the
	// next Obtain of the Client, and mailTurn lets one reader at a time
	// read, so that no message is taken by a reader nobody listens to.
	mailTurn chan struct{}
	unreadMu sync.Mutex
	unread   [][]byte
}

// EventKind says what an [Event] is about.
type EventKind int

// Event kinds, in the order they usually happen.
const (
	EventAccount         EventKind = iota // account registered or found
	EventOrder                            // order created
	EventWaitingForMail                   // waiting for the challenge mail
	EventIgnoredMail                      // a mail claiming to be a challenge was ignored (Message says why)
	EventWarning                          // something the user should know, the flow goes on
	EventChallengeMail                    // the genuine challenge mail arrived
	EventReplySent                        // the reply was submitted
	EventChallengePosted                  // the CA was told to validate
	EventValidated                        // the authorization is valid
	EventFinalized                        // the CSR was accepted
	EventIssued                           // the certificate was downloaded
)

// Event is a progress report from [Client.Obtain].
type Event struct {
	Kind    EventKind
	Email   string // the identifier concerned, if any
	Message string // one human-readable line
}

// Certificate is what [Client.Obtain] returns.
type Certificate struct {
	ChainPEM []byte              // leaf first, as the CA sent it
	Chain    []*x509.Certificate // parsed ChainPEM
	OrderURL string
	CertURL  string
	// RenewalInfo is the CA's renewal window (RFC 9773) fetched right
	// after the download, or nil when the CA offers none.
	RenewalInfo *RenewalInfo
	// Profile is the certificate profile the CA names in the order
	// ("profile", draft-ietf-acme-profiles), or "".
	Profile string
	// Timings say when the CA mailed each challenge this run answered
	// (not those answered by an earlier run, nor already valid ones).
	Timings []ChallengeTiming
}

// ChallengeTiming is when the CA's challenge mail for one address came,
// as this run saw it: what lets a caller learn how the CA times its mail.
type ChallengeTiming struct {
	Email string
	// BeforePost: the mail arrived before the challenge was POSTed.
	BeforePost bool
	// Arrival is how long the mail took: from the authorization fetch
	// when BeforePost, else from the challenge POST.
	Arrival time.Duration
	// Settle is the pause between the reply and the POST (BeforePost).
	Settle time.Duration
}

// ObtainRequest describes one certificate order.
type ObtainRequest struct {
	// Emails are the addresses to certify; the first is the primary one.
	Emails []string
	// CSR is the DER certificate request; its SANs must equal Emails.
	CSR []byte
	// Replaces is the ARI certificate ID of the certificate this order
	// renews (RFC 9773), or "".
	Replaces string
	// OnOrder, if set, is called with the order URL right after the order
	// was created, so the caller can persist it.
	OnOrder func(orderURL string) error
	// OnState, if set, is called with the order's state each time it
	// changes (created, authorizations fetched, a reply sent, a challenge
	// POSTed, finalized), so the caller can persist it and a run killed at
	// any point can be resumed (see Resume). An error stops the flow.
	OnState func(OrderState) error
	// Resume is the state an earlier, interrupted run persisted through
	// OnState, or nil. Obtain continues that order when it can: same CA
	// and identifiers, not invalid, and every challenge still pending was
	// answered before (answered challenges are never answered again; the
	// CA is only asked to validate them). Otherwise it reports why and
	// creates a new order.
	Resume *OrderState
}

// OrderState is what a run has done on an order, as far as the CA's own
// resources do not tell: which challenges were answered. It holds no
// secret.
type OrderState struct {
	Directory      string       `json:"directory"`
	OrderURL       string       `json:"order_url"`
	Emails         []string     `json:"emails"`
	Replaces       string       `json:"replaces,omitempty"`
	Created        time.Time    `json:"created"`
	Finalized      bool         `json:"finalized,omitempty"`
	Authorizations []AuthzState `json:"authorizations,omitempty"`
}

// AuthzState is one authorization of an [OrderState].
type AuthzState struct {
	URL          string `json:"url"`
	Email        string `json:"email"`
	ChallengeURL string `json:"challenge_url,omitempty"`
	ReplySent    bool   `json:"reply_sent,omitempty"`
	Posted       bool   `json:"posted,omitempty"`
	Valid        bool   `json:"valid,omitempty"`
}

func (c *Client) init(ctx context.Context) error {
	c.once.Do(func() {
		if c.DirectoryURL == "" || c.AccountKey == nil {
			c.initErr = errors.New("acmemail: Client needs DirectoryURL and AccountKey")
			return
		}
		hc := c.HTTPClient
		if hc == nil {
			hc = &http.Client{Timeout: 60 * time.Second}
		}
		tracked := *hc
		c.tracker = &headerTracker{next: hc.Transport}
		tracked.Transport = c.tracker
		ua := "acmemail"
		if c.UserAgent != "" {
			ua = c.UserAgent
		}
		c.acme = &acme.Client{
			Directory:    c.DirectoryURL,
			HTTPClient:   &tracked,
			UserAgent:    ua,
			PollInterval: c.pollInterval(),
			PollTimeout:  c.pollTimeout(),
			Logger:       c.Logger,
		}
		c.account = acme.Account{PrivateKey: c.AccountKey, Location: c.AccountURL}
		c.mailTurn = make(chan struct{}, 1)
		c.thumb, c.initErr = c.account.Thumbprint()
	})
	return c.initErr
}

func (c *Client) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) emit(kind EventKind, email, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.logger().Debug(msg, slog.Int("event", int(kind)), slog.String("email", email))
	if c.Progress != nil {
		c.Progress(Event{Kind: kind, Email: email, Message: msg})
	}
}

func (c *Client) pollInterval() time.Duration {
	if c.PollInterval > 0 {
		return c.PollInterval
	}
	return DefaultPollInterval
}

func (c *Client) maxPollDelay() time.Duration {
	if c.MaxPollDelay > 0 {
		return c.MaxPollDelay
	}
	return DefaultMaxPollDelay
}

func (c *Client) pollTimeout() time.Duration {
	if c.PollTimeout > 0 {
		return c.PollTimeout
	}
	return DefaultPollTimeout
}

func (c *Client) mailWait() time.Duration {
	if c.MailWait > 0 {
		return c.MailWait
	}
	return DefaultMailWait
}

func (c *Client) guard() ReplyGuard {
	if c.Guard != nil {
		return c.Guard
	}
	return &c.guardMem
}

// Directory fetches the CA's directory.
func (c *Client) Directory(ctx context.Context) (acme.Directory, error) {
	if err := c.init(ctx); err != nil {
		return acme.Directory{}, err
	}
	d, err := c.acme.GetDirectory(ctx)
	return d, fromACME("fetch the ACME directory "+c.DirectoryURL, err)
}

// Thumbprint is the RFC 7638 thumbprint of the account key.
func (c *Client) Thumbprint(ctx context.Context) (string, error) {
	if err := c.init(ctx); err != nil {
		return "", err
	}
	return c.thumb, nil
}

// EnsureAccount registers the account key with the CA (agreeing to its
// terms of service), or finds the existing account, and returns its URL.
func (c *Client) EnsureAccount(ctx context.Context) (string, error) {
	if err := c.init(ctx); err != nil {
		return "", err
	}
	if c.account.Location != "" {
		return c.account.Location, nil
	}
	got, err := c.newAccount(ctx)
	if err != nil {
		return "", err
	}
	if got.Location == "" {
		return "", errors.New("register the ACME account: the CA sent no account URL (Location header)")
	}
	c.account.Location = got.Location
	c.emit(EventAccount, "", "using ACME account %s", got.Location)
	if c.OnAccount != nil {
		if err := c.OnAccount(got.Location); err != nil {
			return "", fmt.Errorf("save the account: %w", err)
		}
	}
	return got.Location, nil
}

// expectMail tells a Mail that can look for new mail at once (a
// [MailExpecter]) that a challenge mail is due.
func (c *Client) expectMail() {
	if e, ok := c.Mail.(MailExpecter); ok {
		e.Expect()
	}
}

// pending is one authorization being worked on.
type pending struct {
	email     string
	authzURL  string
	challenge acme.Challenge
	replied   bool // the reply was sent (by this run)
	posted    bool // the challenge was POSTed
	done      bool // the authorization is valid

	fetched  time.Time // when its authorization was fetched (this run)
	postedAt time.Time // when the challenge POST was sent
	mailAt   time.Time // when its challenge mail was read from the mailbox
	settled  time.Duration
}

// timing is what p's challenge mail says about the CA, if this run
// fetched its authorization and answered its mail.
func (p *pending) timing() (ChallengeTiming, bool) {
	if p.fetched.IsZero() || p.mailAt.IsZero() {
		return ChallengeTiming{}, false
	}
	t := ChallengeTiming{Email: p.email, Settle: p.settled}
	if p.postedAt.IsZero() || p.mailAt.Before(p.postedAt) {
		t.BeforePost, t.Arrival = true, p.mailAt.Sub(p.fetched)
	} else {
		t.Arrival, t.Settle = p.mailAt.Sub(p.postedAt), 0
	}
	return t, true
}

// Obtain runs one order to the end: it creates the order, answers each
// email-reply-00 challenge from the watched mailbox, finalizes with the CSR
// and downloads the certificate chain. It returns when the certificate is
// issued, the order fails, or ctx ends.
func (c *Client) Obtain(ctx context.Context, req ObtainRequest) (*Certificate, error) {
	if err := c.init(ctx); err != nil {
		return nil, err
	}
	if c.Mail == nil {
		return nil, errors.New("acmemail: Client needs Mail to obtain a certificate")
	}
	if c.Verifier == nil && !c.InsecureSkipMailAuth {
		return nil, errors.New("acmemail: Client needs a Verifier (or InsecureSkipMailAuth for test CAs)")
	}
	if len(req.Emails) == 0 {
		return nil, errors.New("obtain: no email address given")
	}
	if len(req.CSR) == 0 {
		return nil, errors.New("obtain: no CSR given")
	}
	if _, err := c.EnsureAccount(ctx); err != nil {
		return nil, err
	}
	if c.InsecureSkipMailAuth {
		c.emit(EventWarning, req.Emails[0], "warning: InsecureSkipMailAuth is set: challenge mail will be answered WITHOUT checking DKIM or S/MIME; use this only with a test CA")
	}

	// Start reading mail now, before the order exists: the CA may mail as
	// soon as the authorization is fetched.
	mailCtx, stopMail := context.WithCancel(ctx)
	defer stopMail()
	inbox := make(chan inMail)
	mailErr := make(chan error, 1)
	go c.readMail(mailCtx, inbox, mailErr)
	started := c.now()

	st := &orderRun{req: req}
	var order acme.Order
	var work []*pending
	resumed := false
	if req.Resume != nil {
		o, w, err := c.resume(ctx, req)
		switch {
		case err == nil:
			order, work, resumed = o, w, true
			st.state = *req.Resume
			c.emit(EventOrder, req.Emails[0], "continuing the interrupted order %s", order.Location)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			c.emit(EventWarning, req.Emails[0], "the interrupted order %s cannot be continued (%s); starting a new one", req.Resume.OrderURL, err)
		}
	}
	if !resumed {
		var err error
		if order, work, err = c.newOrder(ctx, req, st); err != nil {
			return nil, err
		}
	}
	st.work = work
	if err := st.save(c, order); err != nil {
		return nil, err
	}

	if order.Status == acme.StatusPending {
		// A CA mails the challenge when its authorization is fetched (or
		// after the POST, see answer): a polling watcher should look now.
		c.expectMail()
		if err := c.answer(ctx, work, started, inbox, mailErr, st, order); err != nil {
			return nil, err
		}
		stopMail()
		for _, p := range work {
			if p.done || !p.replied || p.posted {
				continue
			}
			// Answered by an earlier run that did not live to ask the CA.
			c.emit(EventChallengePosted, p.email, "asking the CA to validate %s", p.email)
			if err := c.post(ctx, p); err != nil {
				return nil, err
			}
			if err := st.save(c, order); err != nil {
				return nil, err
			}
		}
		instant := true // every challenge POST came back valid
		for _, p := range work {
			if p.done {
				continue
			}
			instant = false
			if err := c.waitValid(ctx, p); err != nil {
				return nil, err
			}
			if err := st.save(c, order); err != nil {
				return nil, err
			}
		}
		if instant && len(work) == len(order.Authorizations) {
			// All authorizations became valid in the CA's answers to our
			// challenge POSTs, so the order is ready (RFC 8555 §7.1.6): a
			// CA that validates while answering has updated the order too,
			// and fetching it again would only cost a round trip.
			order.Status = acme.StatusReady
		} else {
			var err error
			order, err = c.acme.GetOrder(ctx, c.account, order)
			if err != nil {
				return nil, fromACME("fetch the order", err)
			}
		}
	}
	stopMail()
	cert, err := c.finish(ctx, req, order, st)
	if err != nil {
		return nil, err
	}
	for _, p := range work {
		if t, ok := p.timing(); ok {
			cert.Timings = append(cert.Timings, t)
		}
	}
	cert.Profile = order.Profile
	return cert, nil
}

// inMail is a message of the watched mailbox and when it was read.
type inMail struct {
	raw []byte
	at  time.Time
}

// readMail hands each message of the watched mailbox to inbox until ctx
// ends, then sends why it stopped to mailErr. It takes the mailbox's
// turn for each message (see Client.mailTurn): first the messages an
// earlier reader kept, then Mail.Next's. A message it got once ctx had
// ended is kept for the next reader, not dropped: a renewal that orders
// again (the CA said alreadyReplaced) and the second order of a pair
// read the same mailbox right after the first order's reader stopped,
// and losing the challenge mail there meant waiting for it forever.
func (c *Client) readMail(ctx context.Context, inbox chan<- inMail, mailErr chan<- error) {
	for {
		select {
		case c.mailTurn <- struct{}{}:
		case <-ctx.Done():
			mailErr <- ctx.Err()
			return
		}
		raw, err := c.takeUnread(), error(nil)
		if raw == nil {
			raw, err = c.Mail.Next(ctx)
		}
		if err == nil {
			select {
			case inbox <- inMail{raw, c.now()}:
			case <-ctx.Done():
				c.keepUnread(raw)
				err = ctx.Err()
			}
		}
		<-c.mailTurn
		if err != nil {
			mailErr <- err
			return
		}
	}
}

// takeUnread returns the oldest message an earlier reader kept, or nil.
func (c *Client) takeUnread() []byte {
	c.unreadMu.Lock()
	defer c.unreadMu.Unlock()
	if len(c.unread) == 0 {
		return nil
	}
	raw := c.unread[0]
	c.unread = c.unread[1:]
	return raw
}

// keepUnread puts raw back in front of the kept messages: it is the
// oldest (the turn is held from taking a message to handing it over).
func (c *Client) keepUnread(raw []byte) {
	c.unreadMu.Lock()
	defer c.unreadMu.Unlock()
	c.unread = append([][]byte{raw}, c.unread...)
}

// orderRun tracks the state of one order for OnState.
type orderRun struct {
	req   ObtainRequest
	state OrderState
	work  []*pending
}

func (r *orderRun) save(c *Client, order acme.Order) error {
	if r.req.OnState == nil {
		return nil
	}
	s := r.state
	s.Directory, s.OrderURL, s.Emails, s.Replaces = c.DirectoryURL, order.Location, r.req.Emails, r.req.Replaces
	if s.Created.IsZero() {
		s.Created = c.now().UTC()
	}
	s.Finalized = s.Finalized || order.Status == acme.StatusProcessing || order.Status == acme.StatusValid
	// Authorizations already valid when the order was read are kept;
	// the ones being worked on are rewritten from the work list.
	var kept []AuthzState
	for _, a := range s.Authorizations {
		found := false
		for _, p := range r.work {
			if p.authzURL == a.URL {
				found = true
			}
		}
		if !found {
			kept = append(kept, a)
		}
	}
	for _, p := range r.work {
		kept = append(kept, AuthzState{URL: p.authzURL, Email: p.email, ChallengeURL: p.challenge.URL, ReplySent: p.replied, Posted: p.posted, Valid: p.done})
	}
	s.Authorizations = kept
	r.state = s
	if err := r.req.OnState(s); err != nil {
		return fmt.Errorf("save the state of the order: %w", err)
	}
	return nil
}

// newOrder creates the order and fetches its authorizations.
func (c *Client) newOrder(ctx context.Context, req ObtainRequest, st *orderRun) (acme.Order, []*pending, error) {
	ids := make([]acme.Identifier, len(req.Emails))
	for i, e := range req.Emails {
		ids[i] = acme.Identifier{Type: IdentifierType, Value: e}
	}
	order, err := c.acme.NewOrder(ctx, c.account, acme.Order{Identifiers: ids, Replaces: req.Replaces})
	if err != nil {
		return order, nil, fromACME("create the order for "+strings.Join(req.Emails, ", "), err)
	}
	if order.Location == "" {
		return order, nil, errors.New("create the order: the CA sent no order URL (Location header)")
	}
	c.emit(EventOrder, req.Emails[0], "created order %s", order.Location)
	if req.OnOrder != nil {
		if err := req.OnOrder(order.Location); err != nil {
			return order, nil, fmt.Errorf("save the order: %w", err)
		}
	}
	// The order exists before its authorizations are fetched (which may
	// make the CA send mail): record it first.
	if err := st.save(c, order); err != nil {
		return order, nil, err
	}
	if err := checkOrderIdentifiers(order, req.Emails); err != nil {
		return order, nil, err
	}
	work, err := c.authorizations(ctx, order, req.Emails, nil)
	return order, work, err
}

// authorizations fetches the order's authorizations and returns the ones
// still to be worked on. When resumed is the state of an interrupted run, a
// pending challenge must have been answered by it, and its reply accepted
// by the submission server (the state says so): the earlier run's
// challenge mail is gone, and answering anew is never allowed. A reply
// claimed but never recorded as sent (the run was stopped between the
// claim and the submission server's answer) may never have left, so the
// order cannot be continued.
func (c *Client) authorizations(ctx context.Context, order acme.Order, emails []string, resumed *OrderState) ([]*pending, error) {
	resuming := resumed != nil
	// One authorization per address: a CA that lists more (or one twice)
	// would have the run wait for challenge mails that never come.
	if distinct := len(slices.Compact(slices.Sorted(slices.Values(order.Authorizations)))); len(order.Authorizations) > len(emails) || distinct != len(order.Authorizations) {
		return nil, fmt.Errorf("the CA's order lists %d authorizations (%d distinct) for %d address(es); refusing to go on", len(order.Authorizations), distinct, len(emails))
	}
	seen := map[string]bool{}
	var work []*pending
	for _, u := range order.Authorizations {
		fetched := c.now() // a CA may mail as it answers
		authz, err := c.acme.GetAuthorization(ctx, c.account, u)
		if err != nil {
			return nil, fromACME("fetch the authorization "+u, err)
		}
		email := authz.Identifier.Value
		if authz.Identifier.Type != IdentifierType || !containsFold(emails, email) {
			return nil, fmt.Errorf("the CA sent an authorization for %s %q, which was not requested; refusing to go on", authz.Identifier.Type, email)
		}
		if seen[strings.ToLower(email)] {
			return nil, fmt.Errorf("the CA sent two authorizations for %q; refusing to go on", email)
		}
		seen[strings.ToLower(email)] = true
		if authz.Status == acme.StatusValid {
			c.emit(EventValidated, email, "%s is already authorized", email)
			continue
		}
		if authz.Status != acme.StatusPending {
			return nil, authzError(authz)
		}
		var ch *acme.Challenge
		for i := range authz.Challenges {
			if authz.Challenges[i].Type == ChallengeType {
				ch = &authz.Challenges[i]
				break
			}
		}
		if ch == nil {
			var types []string
			for _, x := range authz.Challenges {
				types = append(types, x.Type)
			}
			return nil, fmt.Errorf("the CA offers no %s challenge for %s (it offers: %s); it does not support RFC 8823 for this address", ChallengeType, email, strings.Join(types, ", "))
		}
		if ch.Token == "" {
			return nil, fmt.Errorf("the CA's %s challenge for %s has no token", ChallengeType, email)
		}
		p := &pending{email: email, authzURL: u, challenge: *ch, fetched: fetched}
		if resuming {
			answered, err := c.guard().Claimed(replyKey(c.DirectoryURL, ch.URL))
			if err != nil {
				return nil, fmt.Errorf("check the reply record: %w", err)
			}
			if !answered {
				return nil, fmt.Errorf("its challenge for %s was not answered yet, and the challenge mail went to the earlier run", email)
			}
			if !replySent(resumed, u, ch.URL) && ch.Status == acme.StatusPending {
				return nil, fmt.Errorf("%w: %s", ErrReplyNotAccepted, email)
			}
			p.replied = true
			p.posted = ch.Status != acme.StatusPending
		} else if ch.From == "" {
			c.emit(EventWarning, email, "warning: the CA's challenge for %s does not say which address the challenge mail comes from; only its DKIM or S/MIME signature can be checked", email)
		}
		work = append(work, p)
	}
	return work, nil
}

// resume reads the order of req.Resume and returns it with the work left,
// or an error saying why it cannot be continued.
func (c *Client) resume(ctx context.Context, req ObtainRequest) (acme.Order, []*pending, error) {
	r := req.Resume
	if r.OrderURL == "" {
		return acme.Order{}, nil, errors.New("no order URL was recorded")
	}
	if r.Directory != c.DirectoryURL {
		return acme.Order{}, nil, fmt.Errorf("it is at another CA (%s)", r.Directory)
	}
	if !sameStrings(sortedCopy(r.Emails), sortedCopy(req.Emails)) {
		return acme.Order{}, nil, fmt.Errorf("it is for %s", strings.Join(r.Emails, ", "))
	}
	if r.Replaces != req.Replaces {
		return acme.Order{}, nil, errors.New("it replaces another certificate")
	}
	order, err := c.acme.GetOrder(ctx, c.account, acme.Order{Location: r.OrderURL})
	if err != nil {
		return order, nil, fromACME("fetch the order", err)
	}
	if order.Location == "" {
		order.Location = r.OrderURL
	}
	if err := checkOrderIdentifiers(order, req.Emails); err != nil {
		return order, nil, err
	}
	switch order.Status {
	case acme.StatusPending:
		work, err := c.authorizations(ctx, order, req.Emails, r)
		return order, work, err
	case acme.StatusReady, acme.StatusProcessing, acme.StatusValid:
		return order, nil, nil
	}
	return order, nil, fmt.Errorf("the CA says it is %s", order.Status)
}

// ErrReplyNotAccepted: an interrupted run claimed a challenge (so it is
// never answered again) but stopped before the submission server accepted
// its reply; the reply may never have left, so the order is not continued.
var ErrReplyNotAccepted = errors.New("the earlier run was stopped before the submission server accepted its reply; the challenge cannot be answered twice")

// replySent reports whether st records the reply to the challenge chURL of
// the authorization authzURL as sent.
func replySent(st *OrderState, authzURL, chURL string) bool {
	for _, a := range st.Authorizations {
		if a.ReplySent && (a.URL == authzURL || a.ChallengeURL == chURL) {
			return true
		}
	}
	return false
}

func sortedCopy(list []string) []string {
	out := append([]string(nil), list...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if strings.ToLower(out[j]) < strings.ToLower(out[i]) {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// finish finalizes a ready order (or waits for one being processed) and
// downloads the certificate.
func (c *Client) finish(ctx context.Context, req ObtainRequest, order acme.Order, st *orderRun) (*Certificate, error) {
	var err error
	switch order.Status {
	case acme.StatusReady:
		order, err = c.acme.FinalizeOrder(ctx, c.account, order, req.CSR)
		if err != nil {
			if order.Error != nil {
				return nil, fromACME("finalize the order", *order.Error)
			}
			return nil, fromACME("finalize the order", err)
		}
		c.emit(EventFinalized, req.Emails[0], "order finalized")
	case acme.StatusProcessing:
		if order, err = c.waitOrder(ctx, order); err != nil {
			return nil, err
		}
	case acme.StatusValid:
	case acme.StatusInvalid:
		if order.Error != nil {
			return nil, fromACME("the order", *order.Error)
		}
		return nil, errors.New("the CA marked the order invalid; start a new order")
	default:
		return nil, fmt.Errorf("the order is %s, not ready to finalize", order.Status)
	}
	if err := st.save(c, order); err != nil {
		return nil, err
	}
	if order.Certificate == "" {
		return nil, errors.New("finalize the order: the order is valid but has no certificate URL")
	}
	chains, err := c.acme.GetCertificateChain(ctx, c.account, order.Certificate)
	if err != nil {
		return nil, fromACME("download the certificate", err)
	}
	if len(chains) == 0 {
		return nil, errors.New("download the certificate: the CA sent no certificate")
	}
	certs, err := parseChain(chains[0].ChainPEM)
	if err != nil {
		return nil, fmt.Errorf("download the certificate: %w", err)
	}
	c.emit(EventIssued, req.Emails[0], "certificate issued, serial %s, valid until %s", FormatSerial(certs[0].SerialNumber), certs[0].NotAfter.UTC().Format(time.DateOnly))
	cert := &Certificate{ChainPEM: chains[0].ChainPEM, Chain: certs, OrderURL: order.Location, CertURL: order.Certificate}
	if ri := chains[0].RenewalInfo; ri != nil && ri.HasWindow() {
		cert.RenewalInfo = fromACMERenewalInfo(*ri, c.now())
	}
	return cert, nil
}

// waitOrder polls a processing order until it is valid.
func (c *Client) waitOrder(ctx context.Context, order acme.Order) (acme.Order, error) {
	ctx, cancel := context.WithTimeout(ctx, c.pollTimeout())
	defer cancel()
	delay := c.pollInterval() / 4
	for {
		o, err := c.acme.GetOrder(ctx, c.account, order)
		if err != nil {
			return o, fromACME("fetch the order", err)
		}
		if o.Location == "" {
			o.Location = order.Location
		}
		switch o.Status {
		case acme.StatusValid:
			return o, nil
		case acme.StatusProcessing:
		default:
			if o.Error != nil {
				return o, fromACME("the order", *o.Error)
			}
			return o, fmt.Errorf("the order became %s while the CA was issuing", o.Status)
		}
		if err := c.pollPause(ctx, order.Location, &delay); err != nil {
			return o, fmt.Errorf("the CA did not issue within %s: %w", c.pollTimeout(), err)
		}
	}
}

// answer waits for the challenge mails of work and answers them, POSTing
// each challenge after its reply was sent. When no mail came within
// MailWait, the remaining challenges are POSTed (some CAs mail only then)
// and the wait goes on.
func (c *Client) answer(ctx context.Context, work []*pending, started time.Time, inbox <-chan inMail, mailErr <-chan error, st *orderRun, order acme.Order) error {
	if len(work) == 0 {
		return nil
	}
	var names []string
	for _, p := range work {
		if !p.replied {
			names = append(names, p.email)
		}
	}
	if len(names) == 0 {
		return nil
	}
	msg := "waiting for the challenge mail to " + strings.Join(names, ", ")
	if froms := challengeFroms(work); froms != "" {
		msg += " from " + froms
	}
	c.emit(EventWaitingForMail, names[0], "%s", msg)
	var ignored []error // why mails were ignored, for the timeout error
	// postAll asks the CA to validate (and so to mail) every challenge
	// not yet POSTed.
	postAll := func(why string) error {
		for _, p := range work {
			if p.posted {
				continue
			}
			c.emit(EventChallengePosted, p.email, "%s", why)
			if err := c.post(ctx, p); err != nil {
				return err
			}
			if err := st.save(c, order); err != nil {
				return err
			}
		}
		c.expectMail()
		return nil
	}
	if c.PostAtOnce {
		// Before any mail is looked at: a mail read before the POST
		// still shows (its time) that the CA now mails earlier.
		if err := postAll("asking the CA to send the challenge mail (POST to the challenge; this CA mails only then)"); err != nil {
			return err
		}
	}
	nudge := time.NewTimer(c.mailWait())
	defer nudge.Stop()
	for {
		open := 0
		for _, p := range work {
			if !p.replied {
				open++
			}
		}
		if open == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			var missing []string
			for _, p := range work {
				if !p.replied {
					missing = append(missing, p.email)
				}
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &mailTimeoutError{missing: missing, ignored: ignored}
			}
			return ctx.Err()
		case err := <-mailErr:
			return fmt.Errorf("watch the mailbox: %w", err)
		case <-nudge.C:
			if err := postAll("no challenge mail yet; asking the CA to send it (POST to the challenge)"); err != nil {
				return err
			}
		case m := <-inbox:
			if err := c.consider(ctx, work, started, m, &ignored, func() error { return st.save(c, order) }); err != nil {
				return err
			}
		}
	}
}

// consider checks one incoming mail against the pending challenges and
// answers it if it is the genuine challenge for one of them. Mail that is
// not is reported, its reason kept in *ignored (the most recent
// mailTimeoutMaxIgnored), and ignored; only failures to act are returned.
func (c *Client) consider(ctx context.Context, work []*pending, started time.Time, m inMail, ignored *[]error, save func() error) error {
	raw := m.raw
	if len(raw) > maxMailSize {
		c.logger().Debug("ignored an oversized mail", slog.Int("size", len(raw)))
		return nil
	}
	var names []string
	for _, p := range work {
		if !p.replied {
			names = append(names, p.email)
		}
	}
	ignore := func(who string, why error) {
		c.emit(EventIgnoredMail, who, "ignored a mail claiming to be the challenge for %s: %s", who, why)
		if len(*ignored) == mailTimeoutMaxIgnored {
			*ignored = slices.Delete(*ignored, 0, 1)
		}
		*ignored = append(*ignored, why)
	}
	p, cm, err := c.match(ctx, work, started, raw)
	if err != nil {
		if errors.Is(err, ErrNotChallenge) {
			c.logger().Debug("ignored a mail that is not a challenge")
			return nil
		}
		who := strings.Join(names, ", ")
		if p != nil {
			who = p.email
		}
		ignore(who, err)
		return nil
	}
	c.emit(EventChallengeMail, p.email, "received the challenge mail for %s from %s", p.email, cm.From)

	keyAuth, err := KeyAuthorization(cm.TokenPart1, p.challenge.Token, c.thumb, c.Join)
	if err != nil {
		ignore(p.email, err)
		return nil
	}
	digest := ResponseDigest(keyAuth)
	reply, to, err := ComposeReply(cm, p.email, digest, ReplyOptions{Date: c.now()})
	if err != nil {
		ignore(p.email, fmt.Errorf("cannot compose the reply: %w", err))
		return nil
	}

	// The claim is durable before the reply goes out, so neither a crash
	// nor a concurrent run can ever answer this challenge a second time.
	claimed, err := c.guard().Claim(replyKey(c.DirectoryURL, p.challenge.URL))
	if err != nil {
		return fmt.Errorf("record the reply for %s before sending it: %w", p.email, err)
	}
	if !claimed {
		return fmt.Errorf("the challenge for %s was already answered (by an earlier or concurrent run); refusing to answer it twice", p.email)
	}
	// The mail's own keys (token-part1, Message-ID) protect later runs
	// against a replayed copy of this mail. They are written while the
	// reply travels, and are durable before the CA is asked to validate
	// (unless they cannot be written at all: see below).
	mailClaims := make(chan error, 1)
	go func() {
		for _, k := range mailKeys(cm) {
			if _, err := c.guard().Claim(k); err != nil {
				mailClaims <- err
				return
			}
		}
		mailClaims <- nil
	}()
	sendErr := c.Mail.Send(ctx, p.email, to, reply)
	claimErr := <-mailClaims
	if sendErr != nil {
		return fmt.Errorf("send the reply for %s: %w (the challenge is recorded as answered, and is never answered again)", p.email, sendErr)
	}
	p.replied, p.mailAt = true, m.at
	c.emit(EventReplySent, p.email, "sent the reply to %s", strings.Join(to, ", "))
	if claimErr != nil {
		// The reply is out and its challenge claimed: stopping now (a
		// full disk) would only make the next run start a new order and
		// answer again. What is lost is the record of this mail, which
		// lets a later order ignore a replayed copy of it.
		c.emit(EventWarning, p.email, "warning: the answered challenge mail for %s could not be recorded (%v); a replayed copy of it would not be recognized", p.email, claimErr)
	}
	if err := save(); err != nil {
		return err
	}
	if !p.posted {
		if c.ReplySettle > 0 {
			p.settled = c.ReplySettle
			select {
			case <-time.After(c.ReplySettle):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		c.emit(EventChallengePosted, p.email, "asking the CA to validate %s", p.email)
		if err := c.post(ctx, p); err != nil {
			return err
		}
		return save()
	}
	return nil
}

// match finds the pending challenge raw answers and checks every rule a
// challenge mail must meet. On error, the returned *pending (if not nil)
// names the challenge the mail claimed to be for.
func (c *Client) match(ctx context.Context, work []*pending, started time.Time, raw []byte) (*pending, *ChallengeMail, error) {
	cm, err := ParseChallengeMail(raw)
	if err != nil {
		return nil, nil, err
	}
	var p *pending
	for _, w := range work {
		if !w.replied && containsFold(cm.To, w.email) {
			p = w
			break
		}
	}
	if p == nil {
		for _, w := range work {
			if w.replied && containsFold(cm.To, w.email) {
				return w, cm, errors.New("its challenge was already answered in this run")
			}
		}
		return nil, cm, fmt.Errorf("it is not addressed (To) to an address with a pending order (To: %s)", strings.Join(cm.To, ", "))
	}
	if p.challenge.From != "" && !sameAddress(cm.From, p.challenge.From) {
		return p, cm, fmt.Errorf("its From %s is not the address the CA announced (%s)", cm.From, p.challenge.From)
	}
	if c.InsecureSkipMailAuth {
		c.emit(EventWarning, p.email, "warning: NOT checking the authenticity of the challenge mail for %s (InsecureSkipMailAuth is set)", p.email)
	} else {
		v, err := c.Verifier.Verify(ctx, raw, cm.From)
		if err != nil {
			return p, cm, err
		}
		if v.Headers != nil {
			// S/MIME: the protected headers are the ones to trust.
			inner, err := ParseChallengeMail(v.Headers)
			if err != nil {
				return p, cm, fmt.Errorf("its signed part: %w", err)
			}
			if !sameAddress(inner.From, cm.From) || !sameStrings(inner.To, cm.To) || inner.TokenPart1 != cm.TokenPart1 {
				return p, cm, errors.New("its signed (protected) From, To or Subject differ from the outer headers")
			}
			if !sameStrings(inner.ReplyTo, cm.ReplyTo) {
				return p, cm, errors.New("its outer Reply-To differs from the signed (protected) one")
			}
			// From here on only the protected headers count.
			if inner.MessageID == "" {
				inner.MessageID = cm.MessageID
			}
			cm = inner
		}
		for _, w := range v.Warnings {
			c.emit(EventWarning, p.email, "warning: challenge mail for %s: %s", p.email, w)
		}
	}
	if !cm.HasAutoSubmitted {
		c.emit(EventWarning, p.email, "warning: the challenge mail for %s has no Auto-Submitted header (RFC 8823 requires one); answering anyway", p.email)
	} else if v := strings.ToLower(strings.TrimSpace(strings.SplitN(cm.AutoSubmitted, ";", 2)[0])); v != "auto-generated" {
		return p, cm, fmt.Errorf("its Auto-Submitted is %q, not auto-generated", cm.AutoSubmitted)
	}
	if !cm.Date.IsZero() && cm.Date.Before(started.Add(-maxClockSkew)) {
		return p, cm, fmt.Errorf("it is dated %s, before this order was started (a replayed old challenge?)", cm.Date.UTC().Format(time.RFC3339))
	}
	for _, k := range mailKeys(cm) {
		seen, err := c.guard().Claimed(k)
		if err != nil {
			return p, cm, fmt.Errorf("check the reply record: %w", err)
		}
		if seen {
			return p, cm, errors.New("this challenge mail was answered before (a replay?)")
		}
	}
	return p, cm, nil
}

// maxClockSkew is how much older than the start of the order a challenge
// mail's Date may be (clocks differ).
const maxClockSkew = 15 * time.Minute

// challengeKeyPrefix begins the ReplyGuard key that claims a challenge.
const challengeKeyPrefix = "challenge "

func replyKey(directory, challengeURL string) string {
	return challengeKeyPrefix + directory + " " + challengeURL
}

// IsChallengeKey reports whether key, as given to [ReplyGuard.Claim],
// claims a challenge: the claim made right before its reply is sent.
// The other keys record a challenge mail that was answered (against
// replayed copies) and are claimed while the reply travels.
func IsChallengeKey(key string) bool { return strings.HasPrefix(key, challengeKeyPrefix) }

// mailKeys identify a challenge mail, so a replayed copy is never answered.
func mailKeys(cm *ChallengeMail) []string {
	keys := []string{"token-part1 " + cm.TokenPart1}
	if cm.MessageID != "" {
		keys = append(keys, "message-id "+cm.MessageID)
	}
	return keys
}

func (c *Client) post(ctx context.Context, p *pending) error {
	p.postedAt = c.now()
	ch, err := c.acme.InitiateChallenge(ctx, c.account, p.challenge)
	if err != nil {
		return fromACME("ask the CA to validate "+p.email, err)
	}
	p.posted = true
	switch ch.Status {
	case acme.StatusInvalid:
		return challengeError(p.email, ch)
	case acme.StatusValid:
		// The CA validated while answering. A valid challenge makes its
		// authorization valid (RFC 8555 §7.1.6): nothing to poll.
		p.done = true
		c.emit(EventValidated, p.email, "the CA validated %s", p.email)
	}
	return nil
}

// waitValid polls the authorization until it is valid or invalid,
// honouring Retry-After and backing off otherwise.
func (c *Client) waitValid(ctx context.Context, p *pending) error {
	ctx, cancel := context.WithTimeout(ctx, c.pollTimeout())
	defer cancel()
	delay := c.pollInterval() / 4
	for {
		authz, err := c.acme.GetAuthorization(ctx, c.account, p.authzURL)
		if err != nil {
			return fromACME("check the authorization of "+p.email, err)
		}
		switch authz.Status {
		case acme.StatusValid:
			p.done = true
			c.emit(EventValidated, p.email, "the CA validated %s", p.email)
			return nil
		case acme.StatusPending:
		default:
			return authzError(authz)
		}
		if err := c.pollPause(ctx, p.authzURL, &delay); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return validationError{fmt.Errorf("the CA did not validate %s within %s", p.email, c.pollTimeout())}
			}
			return err
		}
	}
}

// pollPause waits before the next poll of url: the CA's Retry-After for
// it when it sent one, else *delay, which doubles up to the maximum poll
// delay. It returns ctx's error if ctx ends first.
func (c *Client) pollPause(ctx context.Context, url string, delay *time.Duration) error {
	wait := *delay
	if ra, ok := c.tracker.retryAfter(url, c.now()); ok {
		wait = ra
	} else if *delay < c.maxPollDelay() {
		*delay *= 2
	}
	wait = min(max(wait, 50*time.Millisecond), c.maxPollDelay())
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrValidationFailed is matched (errors.Is) by the errors of a challenge
// the CA did not validate: it became invalid (the CA refused the reply, or
// found none in time), or it was still not valid when the poll gave up.
var ErrValidationFailed = errors.New("the CA did not validate the challenge")

type validationError struct{ err error }

func (e validationError) Error() string        { return e.err.Error() }
func (e validationError) Unwrap() error        { return e.err }
func (e validationError) Is(target error) bool { return target == ErrValidationFailed }

func authzError(authz acme.Authorization) error {
	for _, ch := range authz.Challenges {
		if ch.Type == ChallengeType && ch.Error != nil {
			return challengeError(authz.Identifier.Value, ch)
		}
	}
	return validationError{fmt.Errorf("the authorization for %s is %s; start a new order", authz.Identifier.Value, authz.Status)}
}

func challengeError(email string, ch acme.Challenge) error {
	if ch.Error != nil {
		return validationError{fromACME("validation of "+email+" failed", *ch.Error)}
	}
	return validationError{fmt.Errorf("validation of %s failed (challenge %s); start a new order", email, ch.Status)}
}

func checkOrderIdentifiers(order acme.Order, emails []string) error {
	if len(order.Identifiers) != len(emails) {
		return fmt.Errorf("the CA changed the order's identifiers (asked for %d, got %d); refusing to go on", len(emails), len(order.Identifiers))
	}
	for _, id := range order.Identifiers {
		if id.Type != IdentifierType || !containsFold(emails, id.Value) {
			return fmt.Errorf("the CA changed the order's identifiers (got %s %q); refusing to go on", id.Type, id.Value)
		}
	}
	return nil
}

func parseChain(chainPEM []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := chainPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d of the chain: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("the CA's response holds no PEM certificate")
	}
	return certs, nil
}

func containsFold(list []string, addr string) bool {
	for _, x := range list {
		if sameAddress(x, addr) {
			return true
		}
	}
	return false
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameAddress(a[i], b[i]) {
			return false
		}
	}
	return true
}

// challengeFroms lists the addresses the CA announced for the challenge
// mails of work, or "" if it did not announce them all.
func challengeFroms(work []*pending) string {
	var froms []string
	for _, p := range work {
		if p.challenge.From == "" {
			return ""
		}
		froms = append(froms, p.challenge.From)
	}
	return strings.Join(froms, ", ")
}
