package issuer

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/mailbox"
)

// Limits bound what the renewals of one RenewAll do at once against one
// server, whatever the number of addresses renewed in parallel: a run of
// many addresses overlaps their waits for mail without hitting a provider
// or a CA with all of them in the same moment.
type Limits struct {
	// MailLogins is the number of logins in progress at once to one IMAP
	// server and to one submission server (host and port): the connection
	// set-up, not the sessions held after it. Default 4.
	MailLogins int
	// CARequests is the number of ACME requests in flight at once to one
	// CA (the host of its directory URL). Default 8.
	CARequests int
}

// Default limits (see Limits).
const (
	DefaultMailLogins = 4
	DefaultCARequests = 8
)

func (l Limits) withDefaults() Limits {
	if l.MailLogins <= 0 {
		l.MailLogins = DefaultMailLogins
	}
	if l.CARequests <= 0 {
		l.CARequests = DefaultCARequests
	}
	return l
}

// together is what the renewals of one RenewAll share: the login and
// request bounds per server, and one IMAP connection per mailbox (server,
// login and folder), whose mail every renewal that reads that mailbox
// sees (each answers only its own challenges).
type together struct {
	limits Limits
	keep   int // mailboxes kept open while no renewal reads them, at most
	log    *slog.Logger
	salt   []byte // for the credential part of mailbox keys

	mu         sync.Mutex
	imapLogins map[string]mailbox.Limiter // by host:port
	smtpLogins map[string]mailbox.Limiter
	ca         map[string]*http.Client // by CA host, per root pool
	boxes      map[string]*sharedBox
	renewing   map[string]bool // the addresses of the run, lower-cased
	closed     bool
	closing    sync.WaitGroup // mailboxes being closed

	// The recipients (To, lower-cased; nil: not a challenge mail) of the
	// messages of shared mailboxes, by their first byte: each message is
	// parsed once, not once per renewal reading it.
	// The keys keep their messages in memory: toBytes bounds them.
	toMu    sync.Mutex
	to      map[*byte][]string
	toBytes int

	learned map[string]*caLearning // by directory URL, under mu

	keys dkimKeys // the CA's DKIM key records, looked up once for all
}

type sharedBox struct {
	s       *mailbox.Shared // nil while opening
	opening chan struct{}   // closed when the opening is done
	refs    int
}

func newTogether(limits Limits, keep int, emails []string, log *slog.Logger) *together {
	salt := make([]byte, 32)
	rand.Read(salt)
	t := &together{
		limits: limits.withDefaults(), keep: max(keep, 1), log: log, salt: salt,
		imapLogins: map[string]mailbox.Limiter{}, smtpLogins: map[string]mailbox.Limiter{},
		ca: map[string]*http.Client{}, boxes: map[string]*sharedBox{}, renewing: map[string]bool{},
		learned: map[string]*caLearning{},
	}
	for _, e := range emails {
		t.renewing[strings.ToLower(e)] = true
	}
	return t
}

// othersMail returns what a renewal of the addresses own passes over in a
// shared mailbox: challenge mail addressed to other addresses of the run
// and to none of its own. It is theirs, and expected; any other mail
// reaches the renewal, which checks it and says why it ignores it.
func (t *together) othersMail(own []string) func(raw []byte) bool {
	mine := map[string]bool{}
	for _, e := range own {
		mine[strings.ToLower(e)] = true
	}
	return func(raw []byte) bool {
		others := false
		for _, to := range t.recipients(raw) {
			if mine[to] {
				return false
			}
			others = others || t.renewing[to]
		}
		return others
	}
}

// Bounds of the cache of recipients (messages, and their bytes kept in
// memory); it is cleared when full (the renewals have read its messages
// long before).
const (
	maxRecipientsCached      = 4096
	maxRecipientsCachedBytes = 16 << 20
)

// recipients returns the lower-cased To addresses of a challenge mail, or
// nil for any other message.
func (t *together) recipients(raw []byte) []string {
	if len(raw) == 0 {
		return nil
	}
	id := &raw[0] // the subscribers of a Shared get the same bytes
	t.toMu.Lock()
	to, ok := t.to[id]
	t.toMu.Unlock()
	if ok {
		return to
	}
	if cm, err := acmemail.ParseChallengeMail(raw); err == nil {
		to = make([]string, 0, len(cm.To))
		for _, a := range cm.To {
			to = append(to, strings.ToLower(a))
		}
	}
	t.toMu.Lock()
	if t.to == nil || len(t.to) >= maxRecipientsCached || t.toBytes+len(raw) > maxRecipientsCachedBytes {
		t.to, t.toBytes = map[*byte][]string{}, 0
	}
	t.to[id] = to
	t.toBytes += len(raw)
	t.toMu.Unlock()
	return to
}

// loginLimits sets the login bounds of the servers of ic and sc.
func (t *together) loginLimits(ic *mailbox.IMAPConfig, sc *mailbox.SMTPConfig) {
	t.mu.Lock()
	defer t.mu.Unlock()
	get := func(m map[string]mailbox.Limiter, addr string) mailbox.Limiter {
		if m[addr] == nil {
			m[addr] = mailbox.NewLimiter(t.limits.MailLogins)
		}
		return m[addr]
	}
	ic.Logins = get(t.imapLogins, ic.Endpoint.Address())
	sc.Logins = get(t.smtpLogins, sc.Endpoint.Address())
}

// httpClient is base with at most Limits.CARequests requests in flight to
// the host of dirURL (shared by the renewals of the run that use that CA
// with the same roots).
func (t *together) httpClient(base *http.Client, dirURL string) *http.Client {
	u, err := url.Parse(dirURL)
	if err != nil {
		return base
	}
	key := fmt.Sprintf("%p %s", base, u.Host)
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.ca[key]; c != nil {
		return c
	}
	c := *base
	c.Transport = &limitedTransport{rt: base.Transport, sem: make(chan struct{}, t.limits.CARequests)}
	t.ca[key] = &c
	return &c
}

// limitedTransport lets a bounded number of requests be in flight: from
// the request until its response body is closed.
type limitedTransport struct {
	rt  http.RoundTripper
	sem chan struct{}
}

func (l *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case l.sem <- struct{}{}:
	case <-req.Context().Done():
		return nil, context.Cause(req.Context())
	}
	var once sync.Once
	release := func() { once.Do(func() { <-l.sem }) }
	resp, err := l.rt.RoundTrip(req)
	if err != nil {
		release()
		return nil, err
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: release}
	return resp, nil
}

type releasingBody struct {
	io.ReadCloser
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

// mailboxKey names a mailbox for sharing: the server, the login (the
// password only as a keyed hash that lives as long as the run, or the
// token command), the folder, and the roots and security flags the
// connection is made with. Renewals whose keys differ never share a
// connection: a login that would fail on its own is not carried by
// another one that succeeds.
func (t *together) mailboxKey(ic *mailbox.IMAPConfig, p *Profile, rootsID string) string {
	mac := hmac.New(sha256.New, t.salt)
	if ic.OAuthToken != nil {
		fmt.Fprintf(mac, "oauth %q", p.Login.OAuthTokenCommand)
	} else {
		fmt.Fprintf(mac, "password %q", ic.Password)
	}
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s\x00%v\x00%s\x00%s", ic.Endpoint.String(), ic.Endpoint.Address(), ic.Username, ic.Mailbox,
		ic.Mechanism, ic.AllowInsecure, rootsID, hex.EncodeToString(mac.Sum(nil)))
}

// watch returns a subscription to the shared connection of the mailbox
// key (passing over what skip refuses), opening it with ic if there is
// none, and the function that ends the subscription.
func (t *together) watch(ctx context.Context, key string, ic mailbox.IMAPConfig, skip func([]byte) bool) (*mailbox.Watcher, func(), error) {
	t.mu.Lock()
	for {
		if t.closed {
			t.mu.Unlock()
			return nil, nil, fmt.Errorf("the renew run is ending")
		}
		b := t.boxes[key]
		if b == nil {
			break
		}
		if b.s == nil { // another renewal is opening it
			opening := b.opening
			t.mu.Unlock()
			select {
			case <-opening:
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("imap connect %s: %w", ic.Endpoint.Address(), context.Cause(ctx))
			}
			t.mu.Lock()
			continue
		}
		if b.s.Err() != nil { // failed for good: open a new one
			delete(t.boxes, key)
			t.closing.Go(func() { b.s.Close() })
			break
		}
		b.refs++
		sub := b.s.Subscribe(skip)
		t.mu.Unlock()
		return sub, t.release(key, b, sub), nil
	}
	b := &sharedBox{opening: make(chan struct{}), refs: 1}
	t.boxes[key] = b
	t.mu.Unlock()

	w, err := mailbox.Watch(ctx, ic)

	t.mu.Lock()
	defer t.mu.Unlock()
	close(b.opening)
	if err != nil {
		// The renewals waiting for it try on their own.
		delete(t.boxes, key)
		return nil, nil, err
	}
	if t.closed {
		delete(t.boxes, key)
		w.Close()
		return nil, nil, fmt.Errorf("the renew run is ending")
	}
	b.s = mailbox.NewShared(w, t.log)
	sub := b.s.Subscribe(skip)
	t.evictLocked()
	return sub, t.release(key, b, sub), nil
}

// release returns the function that ends the subscription sub to b.
func (t *together) release(key string, b *sharedBox, sub *mailbox.Watcher) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			sub.Close()
			t.mu.Lock()
			defer t.mu.Unlock()
			b.refs--
			t.evictLocked()
		})
	}
}

// evictLocked closes mailboxes no renewal reads while more than keep are
// open; the others stay open for the next renewals of the same mailbox.
func (t *together) evictLocked() {
	open := len(t.boxes)
	for key, b := range t.boxes {
		if open <= t.keep {
			return
		}
		if b.s != nil && b.refs == 0 {
			delete(t.boxes, key)
			t.closing.Go(func() { b.s.Close() })
			open--
		}
	}
}

// close closes every mailbox; the renewals have ended.
func (t *together) close() {
	t.mu.Lock()
	t.closed = true
	var boxes []*sharedBox
	for key, b := range t.boxes {
		if b.s != nil {
			boxes = append(boxes, b)
		}
		delete(t.boxes, key)
	}
	t.mu.Unlock()
	for _, b := range boxes {
		t.closing.Go(func() { b.s.Close() })
	}
	t.closing.Wait()
}
