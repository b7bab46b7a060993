package mailbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// Credentials are what a login to IMAP or SMTP needs: a user name and
// either a password (IMAP LOGIN or AUTHENTICATE PLAIN, SMTP AUTH PLAIN or
// LOGIN) or an OAuth 2.0 access token (OAUTHBEARER or XOAUTH2).
type Credentials struct {
	Username, Password string
	// OAuthToken, if set, returns an OAuth 2.0 access token, and the login
	// uses OAUTHBEARER (RFC 7628) or XOAUTH2 instead of the password. It is
	// called before every login, because tokens expire and connections
	// are reopened.
	OAuthToken func(ctx context.Context) (string, error)
	// Mechanism forces a SASL mechanism (MechPlain, MechLogin,
	// MechOAuthBearer, MechXOAuth2). "" chooses by what the server offers:
	// OAUTHBEARER, else XOAUTH2, with a token; with a password, IMAP LOGIN
	// (AUTHENTICATE PLAIN if LOGIN is disabled) and SMTP PLAIN, else LOGIN.
	Mechanism string
}

// DefaultMaxMessageSize is the largest message [Watcher.Next] returns when
// IMAPConfig.MaxMessageSize is zero.
const DefaultMaxMessageSize = 10 << 20

// IMAPConfig configures [Watch].
type IMAPConfig struct {
	Endpoint
	Credentials

	// Mailbox is the mailbox to watch; "" means INBOX.
	Mailbox string
	// TLSConfig is used for implicit TLS and STARTTLS. nil means the system
	// roots; ServerName defaults to the endpoint's host. InsecureSkipVerify
	// is refused.
	TLSConfig *tls.Config
	// AllowInsecure permits Security == Insecure (plaintext), and only to a
	// host whose addresses are all loopback addresses. Without it a
	// plaintext endpoint is refused before anything is sent.
	AllowInsecure bool
	// PollInterval is how often the mailbox is checked when the server
	// does not support IDLE (or NoIdle is set); 0 means 5 s.
	PollInterval time.Duration
	// NoIdle polls even when the server offers IDLE, for servers whose
	// IDLE does not report new mail reliably.
	NoIdle bool
	// MaxMessageSize caps the size of a message that Next returns; larger
	// messages are skipped with a log line. 0 means DefaultMaxMessageSize.
	MaxMessageSize int64
	// Logger receives milestones at Info and protocol steps at Debug; nil
	// discards.
	Logger *slog.Logger
	// DebugWriter, if set, receives the raw IMAP protocol trace. The
	// arguments of LOGIN and AUTHENTICATE and every client line of an
	// authentication exchange are replaced by "[redacted]".
	DebugWriter io.Writer
	// Logins, if set, bounds the logins in progress at once to the server
	// (shared by the configurations of one server); nil: no bound.
	Logins Limiter
}

// idleRestartInterval is how often IDLE is re-issued, below the 29 minutes
// after which RFC 9051 lets a server drop an idle client. A variable for
// tests.
var idleRestartInterval = 25 * time.Minute

const (
	defaultPollInterval = 5 * time.Second
	setupTimeout        = time.Minute
	commandTimeout      = 2 * time.Minute
	fetchTimeout        = 5 * time.Minute
	keepAliveInterval   = 10 * time.Minute
	closeTimeout        = 5 * time.Second
	reconnectWindow     = time.Minute
)

var errWatcherClosed = fmt.Errorf("imap watcher closed: %w", net.ErrClosed)

// Watcher watches one IMAP mailbox for messages that arrive after [Watch]
// was called. It keeps one connection open: in IDLE when the server
// supports it (re-issued every 25 minutes), otherwise polling. If the
// server drops the connection, the Watcher reconnects once (at most once
// a minute) and carries on from where it was.
//
// A Watcher may instead be a subscription to a connection shared by
// several waiters ([Shared.Subscribe]); its methods then act on the
// subscription.
//
// A Watcher is safe for concurrent use.
type Watcher struct {
	// sub, if set, makes this Watcher a subscription to a Shared one
	// (Shared.Subscribe): its methods are the subscription's.
	sub *subscriber

	cfg   IMAPConfig
	log   *slog.Logger
	trace *redactor
	max   int64

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	// Owned by the run goroutine.
	c             *imapclient.Client
	idle          *imapclient.IdleCommand
	canIdle       bool
	uidValidity   uint32
	nextUID       imap.UID // lowest UID not yet delivered or skipped
	pending       []pendingMsg
	dirty         bool // the mailbox may hold messages not yet in pending
	lastReconnect time.Time
	lastCommand   time.Time

	cur    atomic.Pointer[imapclient.Client] // for Close's last resort
	idleOK atomic.Bool                       // canIdle, for UsesIdle
	exists chan struct{}                     // EXISTS seen
	kick   chan struct{}                     // a Next is waiting
	expect chan struct{}                     // Expect was called
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	ready   [][]byte
	waiting bool
	err     error
	changed chan struct{} // closed when ready or err changes
}

// session is a logged-in connection with the mailbox selected.
type session struct {
	c       *imapclient.Client
	data    *imap.SelectData
	canIdle bool
}

type pendingMsg struct {
	uid  imap.UID
	size int64
}

// Watch connects to the IMAP server, logs in, selects the mailbox and
// records its UIDNEXT: only messages that arrive after this point are
// returned by [Watcher.Next]. It then waits for new mail in the
// background, with IDLE when the server offers it.
//
// ctx bounds the connection setup only; the Watcher lives until Close. A
// login the server refuses yields an error wrapping [ErrAuthFailed].
func Watch(ctx context.Context, cfg IMAPConfig) (*Watcher, error) {
	if cfg.Mailbox == "" {
		cfg.Mailbox = "INBOX"
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = defaultPollInterval
	}
	if cfg.Username == "" {
		return nil, errors.New("imap login: no user name configured")
	}
	if err := cfg.Credentials.check("imap"); err != nil {
		return nil, err
	}
	w := &Watcher{
		cfg:     cfg,
		log:     discardLogger(cfg.Logger).With("mailbox", cfg.Mailbox),
		trace:   newRedactor(cfg.DebugWriter, false, cfg.Username, cfg.Password),
		max:     cfg.MaxMessageSize,
		exists:  make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		expect:  make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	if w.max <= 0 {
		w.max = DefaultMaxMessageSize
	}
	sess, err := w.connect(ctx)
	if err != nil {
		return nil, err
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.setSession(sess)
	w.uidValidity = sess.data.UIDValidity
	w.nextUID = sess.data.UIDNext
	w.dirty = true
	w.log.Info("imap watching for new mail", "server", cfg.Endpoint.String(), "uid_next", uint32(w.nextUID), "idle", w.canIdle)
	go w.run()
	return w, nil
}

// Next returns the raw bytes of the next message that arrived in the
// mailbox after Watch was called, in UID order, each message once. It is
// fetched with BODY.PEEK[], so the message is not marked as seen. Next
// blocks until such a message arrives, ctx ends, the connection fails for
// good, or the Watcher is closed.
func (w *Watcher) Next(ctx context.Context) ([]byte, error) {
	if w.sub != nil {
		return w.sub.Next(ctx)
	}
	for {
		w.mu.Lock()
		if len(w.ready) > 0 {
			msg := w.ready[0]
			w.ready[0] = nil
			w.ready = w.ready[1:]
			w.mu.Unlock()
			return msg, nil
		}
		if w.err != nil {
			err := w.err
			w.mu.Unlock()
			return nil, err
		}
		w.waiting = true
		changed := w.changed
		w.mu.Unlock()
		signal(w.kick)

		select {
		case <-changed:
		case <-ctx.Done():
			w.mu.Lock()
			w.waiting = false
			w.mu.Unlock()
			return nil, fmt.Errorf("imap wait for new mail in %s: %w", w.cfg.Mailbox, context.Cause(ctx))
		}
	}
}

// Close stops waiting (ending IDLE), logs out and closes the connection.
// Pending and later calls to Next return an error wrapping net.ErrClosed.
func (w *Watcher) Close() error {
	if w.sub != nil {
		w.sub.Close()
		return nil
	}
	w.once.Do(func() {
		close(w.quit)
		w.cancel()
		select {
		case <-w.done:
		case <-time.After(2 * closeTimeout):
			if c := w.cur.Load(); c != nil {
				c.Close()
			}
			<-w.done
		}
		w.setErr(errWatcherClosed)
	})
	return nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// notify wakes all waiting Next calls; w.mu must be held.
func (w *Watcher) notify() {
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *Watcher) setErr(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
		w.notify()
	}
	w.mu.Unlock()
}

func (w *Watcher) wanted() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.waiting && len(w.ready) == 0
}

func (w *Watcher) deliver(msg []byte) {
	w.mu.Lock()
	w.ready = append(w.ready, msg)
	w.waiting = false
	w.notify()
	w.mu.Unlock()
}

func (w *Watcher) setSession(sess *session) {
	w.c = sess.c
	w.cur.Store(sess.c)
	w.canIdle = sess.canIdle
	w.idleOK.Store(sess.canIdle)
	w.lastCommand = time.Now()
}

// UsesIdle reports whether the Watcher waits for new mail with IDLE: the
// server announced IDLE and has not refused it. false means it polls
// every IMAPConfig.PollInterval instead.
func (w *Watcher) UsesIdle() bool {
	if w.sub != nil {
		return w.sub.s.w.UsesIdle()
	}
	return w.idleOK.Load()
}

// expectPollDelay is the first delay between polls after [Watcher.Expect].
const expectPollDelay = 100 * time.Millisecond

// Expect tells the Watcher that a message is due (for example: the CA has
// just been asked for its challenge mail). Without IDLE it checks the
// mailbox at once and then polls 100 ms later, doubling the delay back up
// to the poll interval, so that a mail delivered within seconds is seen
// within a fraction of them. With IDLE the server reports new mail by
// itself and Expect does nothing.
func (w *Watcher) Expect() {
	if w.sub != nil {
		w.sub.s.w.Expect()
		return
	}
	signal(w.expect)
}

func (w *Watcher) onMailbox(data *imapclient.UnilateralDataMailbox) {
	if data.NumMessages != nil {
		signal(w.exists)
	}
}

// connect dials, logs in and selects the mailbox.
func (w *Watcher) connect(ctx context.Context) (*session, error) {
	release, err := acquire(ctx, w.cfg.Logins)
	if err != nil {
		return nil, fmt.Errorf("imap connect %s: %w", w.cfg.Endpoint.Address(), err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()

	ep := w.cfg.Endpoint
	addrs, err := dialAddrs(ctx, imapProto, ep, w.cfg.AllowInsecure)
	if err != nil {
		return nil, err
	}
	tlsConf, err := clientTLSConfig(w.cfg.TLSConfig, ep.Host)
	if err != nil {
		return nil, fmt.Errorf("imap connect %s: %w", ep.Address(), err)
	}
	// A fresh token for every login, fetched before dialling so that a
	// broken token helper is reported without touching the server.
	var token string
	if w.cfg.OAuthToken != nil {
		if token, err = w.cfg.token(ctx, "imap"); err != nil {
			return nil, err
		}
	}
	opts := &imapclient.Options{
		TLSConfig:             tlsConf,
		DebugWriter:           w.trace.writer(),
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{Mailbox: w.onMailbox},
	}
	w.log.Debug("imap connecting", "server", ep.String(), "addresses", addrs)
	w.trace.reset()

	var c *imapclient.Client
	switch ep.Security {
	case TLS:
		tlsConf = tlsConf.Clone()
		if tlsConf.NextProtos == nil {
			tlsConf.NextProtos = []string{"imap"}
		}
		conn, err := dialTLS(ctx, addrs, tlsConf)
		if err != nil {
			return nil, fmt.Errorf("imap connect %s: %w", ep.Address(), tlsHint(err, imapProto, ep))
		}
		c = imapclient.New(conn, opts)
	case StartTLS:
		conn, err := dial(ctx, addrs)
		if err != nil {
			return nil, fmt.Errorf("imap connect %s: %w", ep.Address(), err)
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		c, err = imapclient.NewStartTLS(conn, opts)
		stop()
		if err != nil {
			port := ep.Port
			if port == imapProto.startTLSPort {
				port = imapProto.tlsPort
			}
			// imapclient sends STARTTLS without waiting for the greeting,
			// so an implicit-TLS server fails its handshake and hangs up.
			implicit := net.JoinHostPort(ep.Host, strconv.Itoa(port))
			return nil, fmt.Errorf("imap STARTTLS with %s: %w (if the server uses implicit TLS, use imaps://%s)",
				ep.Address(), ctxErr(ctx, err), implicit)
		}
	default: // Insecure, vetted by dialAddrs
		conn, err := dial(ctx, addrs)
		if err != nil {
			return nil, fmt.Errorf("imap connect %s: %w", ep.Address(), err)
		}
		c = imapclient.New(conn, opts)
	}

	stop := context.AfterFunc(ctx, func() { c.Close() })
	data, err := w.loginSelect(c, token)
	var canIdle bool
	if err == nil {
		canIdle = c.Caps().Has(imap.CapIdle) && !w.cfg.NoIdle
	}
	if !stop() || err != nil {
		c.Close()
		if err == nil || ctx.Err() != nil {
			err = fmt.Errorf("imap connect %s: %w", ep.Address(), context.Cause(ctx))
		}
		return nil, err
	}
	return &session{c: c, data: data, canIdle: canIdle}, nil
}

func (w *Watcher) loginSelect(c *imapclient.Client, token string) (*imap.SelectData, error) {
	ep := w.cfg.Endpoint
	if err := c.WaitGreeting(); err != nil {
		return nil, fmt.Errorf("imap greeting from %s: %w", ep.Address(), err)
	}
	if err := w.login(c, token); err != nil {
		return nil, err
	}
	data, err := c.Select(w.cfg.Mailbox, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("imap select %q: %w", w.cfg.Mailbox, err)
	}
	if data.UIDNext == 0 {
		// The server did not send UIDNEXT: derive it from the last message.
		data.UIDNext = 1
		if data.NumMessages > 0 {
			bufs, err := c.Fetch(imap.SeqSetNum(data.NumMessages), &imap.FetchOptions{UID: true}).Collect()
			if err != nil {
				return nil, fmt.Errorf("imap fetch the last UID of %q: %w", w.cfg.Mailbox, err)
			}
			for _, b := range bufs {
				if b.UID >= data.UIDNext {
					data.UIDNext = b.UID + 1
				}
			}
		}
	}
	return data, nil
}

func (w *Watcher) login(c *imapclient.Client, token string) error {
	if c.State() == imap.ConnStateAuthenticated { // PREAUTH
		return nil
	}
	user, pass := w.cfg.Username, w.cfg.Password
	forced := strings.ToUpper(w.cfg.Mechanism)
	caps := c.Caps()
	var err error
	var oc *oauthClient
	op := "imap login as " + user
	switch {
	case w.cfg.OAuthToken != nil:
		var offered []string
		for _, m := range caps.AuthMechanisms() {
			offered = append(offered, strings.ToUpper(m))
		}
		mech, err2 := chooseOAuthMech("imap", offered, forced)
		if err2 != nil {
			return err2
		}
		oc = newOAuthClient(mech, user, token)
		w.trace.addSecrets(oc.secrets()...)
		op = "imap AUTHENTICATE " + mech + " as " + user
		err = c.Authenticate(oc)
	case forced == MechPlain || (forced == "" && caps.Has(imap.CapLoginDisabled)):
		if !caps.Has(imap.AuthCap(sasl.Plain)) && forced == "" {
			if w.cfg.Security == Insecure {
				return fmt.Errorf("%s: the server refuses to log in over a plaintext connection (LOGINDISABLED); allow plaintext authentication on the test server or use TLS", op)
			}
			return fmt.Errorf("%s: the server disabled LOGIN and does not offer AUTHENTICATE PLAIN", op)
		}
		op = "imap AUTHENTICATE PLAIN as " + user
		err = c.Authenticate(sasl.NewPlainClient("", user, pass))
	default:
		err = c.Login(user, pass).Wait()
	}
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		text := ie.Text
		for _, s := range append(oc.secrets(), pass) {
			if len(s) >= 4 {
				text = strings.ReplaceAll(text, s, "[redacted]")
			}
		}
		reply := string(ie.Type)
		if ie.Code != "" {
			reply += " [" + string(ie.Code) + "]"
		}
		reply += " " + text
		if d := oc.detail(); d != "" {
			reply += "; " + d
		}
		switch {
		case ie.Type != imap.StatusResponseTypeNo:
			return fmt.Errorf("%s: server replied %s", op, reply)
		case ie.Code == imap.ResponseCodePrivacyRequired:
			return fmt.Errorf("%s: the server requires an encrypted connection (%s)", op, reply)
		case ie.Code == imap.ResponseCodeUnavailable:
			return fmt.Errorf("%s: the server is temporarily unable to log in (%s)", op, reply)
		default:
			return fmt.Errorf("%s: %w (server replied %s)", op, ErrAuthFailed, reply)
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// run owns the connection: it keeps IDLE (or polls) while nobody waits,
// and fetches messages on demand.
func (w *Watcher) run() {
	defer close(w.done)

	var idleTimer *time.Timer
	var poll *time.Timer
	pollDelay := w.cfg.PollInterval // shortened by Expect, then doubling back
	defer func() {
		if idleTimer != nil {
			idleTimer.Stop()
		}
		if poll != nil {
			poll.Stop()
		}
	}()
	noop := func() error { return w.command(commandTimeout, func() error { return w.c.Noop().Wait() }) }

	for {
		select {
		case <-w.quit:
			w.shutdown()
			return
		default:
		}

		var err error
		switch {
		case w.wanted() && len(w.pending) == 0 && w.dirty:
			if err = w.stopIdle(); err == nil {
				err = w.scan()
			}
		case w.wanted() && len(w.pending) > 0:
			if err = w.stopIdle(); err == nil {
				err = w.fetchNext()
			}
		case w.canIdle && w.idle == nil:
			err = w.startIdle()
			var ie *imap.Error
			if errors.As(err, &ie) {
				w.log.Warn("imap server refused IDLE; polling instead", "error", err, "interval", w.cfg.PollInterval)
				w.canIdle, err = false, nil
				w.idleOK.Store(false)
			} else if err == nil {
				if idleTimer == nil {
					idleTimer = time.NewTimer(idleRestartInterval)
				} else {
					idleTimer.Reset(idleRestartInterval)
				}
			}
		default:
			var idleC, pollC <-chan time.Time
			if w.canIdle {
				idleC = idleTimer.C
			} else {
				if poll == nil {
					poll = time.NewTimer(pollDelay)
				}
				pollC = poll.C
			}
			select {
			case <-w.quit:
			case <-w.kick:
			case <-w.expect:
				if !w.canIdle {
					// Mail is due: look now, then again soon, backing
					// off to the poll interval.
					if w.wanted() {
						err = noop()
						w.dirty = true
					}
					pollDelay = min(expectPollDelay, w.cfg.PollInterval)
					poll.Reset(pollDelay)
				}
			case <-w.exists:
				w.dirty = true
			case <-idleC:
				w.log.Debug("imap re-issuing IDLE")
				err = w.stopIdle() // restarted on the next turn
			case <-pollC:
				if w.wanted() {
					// NOOP lets the server report new messages (EXISTS).
					err = noop()
					w.dirty = true
				} else if time.Since(w.lastCommand) > keepAliveInterval {
					err = noop()
				}
				pollDelay = min(2*pollDelay, w.cfg.PollInterval)
				poll.Reset(pollDelay)
			case <-w.c.Closed():
				err = errors.New("connection closed by the server")
			}
		}
		if err != nil && !w.recover(err) {
			w.c.Close()
			return
		}
	}
}

// command runs fn, closing the connection if it takes longer than d so that
// a dead peer cannot hang the watcher.
func (w *Watcher) command(d time.Duration, fn func() error) error {
	c := w.c
	t := time.AfterFunc(d, func() {
		w.log.Warn("imap command timed out; closing the connection", "timeout", d)
		c.Close()
	})
	defer t.Stop()
	w.lastCommand = time.Now()
	return fn()
}

func (w *Watcher) startIdle() error {
	return w.command(commandTimeout, func() error {
		idle, err := w.c.Idle()
		if err != nil {
			return fmt.Errorf("imap IDLE: %w", err)
		}
		w.idle = idle
		return nil
	})
}

func (w *Watcher) stopIdle() error {
	if w.idle == nil {
		return nil
	}
	idle := w.idle
	w.idle = nil
	return w.command(commandTimeout, func() error {
		err := idle.Close()
		if err == nil {
			err = idle.Wait()
		}
		if err != nil {
			return fmt.Errorf("imap end IDLE: %w", err)
		}
		return nil
	})
}

// scan lists the messages with UID >= nextUID and their sizes.
func (w *Watcher) scan() error {
	w.dirty = false
	if mbox := w.c.Mailbox(); mbox != nil && mbox.NumMessages == 0 {
		// Some servers reject "n:*" in an empty mailbox. NOOP makes the
		// server report messages it has not announced yet.
		if err := w.command(commandTimeout, func() error { return w.c.Noop().Wait() }); err != nil {
			return fmt.Errorf("imap NOOP: %w", err)
		}
		if mbox := w.c.Mailbox(); mbox != nil && mbox.NumMessages == 0 {
			return nil
		}
	}
	var bufs []*imapclient.FetchMessageBuffer
	err := w.command(commandTimeout, func() error {
		var err error
		set := imap.UIDSet{imap.UIDRange{Start: w.nextUID, Stop: 0}} // "n:*"
		bufs, err = w.c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
		return err
	})
	if err != nil {
		return fmt.Errorf("imap search %q for new mail: %w", w.cfg.Mailbox, err)
	}
	w.pending = w.pending[:0]
	for _, b := range bufs {
		// "n:*" also matches the last message when it is older than n.
		if b.UID >= w.nextUID {
			w.pending = append(w.pending, pendingMsg{uid: b.UID, size: b.RFC822Size})
		}
	}
	slices.SortFunc(w.pending, func(a, b pendingMsg) int { return int(a.uid) - int(b.uid) })
	w.pending = slices.CompactFunc(w.pending, func(a, b pendingMsg) bool { return a.uid == b.uid })
	if len(w.pending) > 0 {
		w.log.Debug("imap new messages", "count", len(w.pending), "first_uid", uint32(w.pending[0].uid))
	}
	return nil
}

// fetchNext fetches pending[0] and delivers it, or skips it if too large
// or gone.
func (w *Watcher) fetchNext() error {
	m := w.pending[0]
	if m.size > w.max {
		w.log.Warn("imap skipping message larger than the size limit", "uid", uint32(m.uid), "size", m.size, "limit", w.max)
		w.advance(m.uid)
		return nil
	}
	var body []byte
	var tooLarge bool
	err := w.command(fetchTimeout, func() error {
		cmd := w.c.Fetch(imap.UIDSetNum(m.uid), &imap.FetchOptions{
			UID:         true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		})
		defer cmd.Close()
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			var uid imap.UID
			var data []byte
			for item := msg.Next(); item != nil; item = msg.Next() {
				switch item := item.(type) {
				case imapclient.FetchItemDataUID:
					uid = item.UID
				case imapclient.FetchItemDataBodySection:
					if item.Literal == nil {
						continue
					}
					if item.Literal.Size() > w.max {
						tooLarge = true
						continue // the rest is discarded by msg.Next
					}
					b, err := io.ReadAll(io.LimitReader(item.Literal, w.max))
					if err != nil {
						return err
					}
					data = b
				}
			}
			if uid == m.uid && data != nil {
				body = data
			}
		}
		return cmd.Close()
	})
	if err != nil {
		return fmt.Errorf("imap fetch message UID %d: %w", m.uid, err)
	}
	switch {
	case tooLarge:
		w.log.Warn("imap skipping message larger than the size limit", "uid", uint32(m.uid), "limit", w.max)
	case body == nil:
		w.log.Warn("imap message vanished before it could be fetched", "uid", uint32(m.uid))
	default:
		w.log.Debug("imap fetched message", "uid", uint32(m.uid), "size", len(body))
		w.deliver(body)
	}
	w.advance(m.uid)
	return nil
}

func (w *Watcher) advance(uid imap.UID) {
	w.pending = w.pending[1:]
	w.nextUID = uid + 1
}

// recover handles a failed operation: after a lost connection it
// reconnects once (at most once per reconnectWindow) and reports whether
// the watcher can go on. Otherwise it records the error for Next.
func (w *Watcher) recover(err error) bool {
	select {
	case <-w.quit:
		return false
	default:
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		w.setErr(err) // the server refused a command: not a connection problem
		return false
	}
	w.idle = nil
	w.c.Close()
	if !w.lastReconnect.IsZero() && time.Since(w.lastReconnect) < reconnectWindow {
		w.setErr(fmt.Errorf("imap connection to %s lost again soon after reconnecting: %w", w.cfg.Endpoint.Address(), err))
		return false
	}
	w.lastReconnect = time.Now()
	w.log.Warn("imap connection lost; reconnecting", "error", err)
	sess, cerr := w.connect(w.ctx)
	if cerr != nil {
		w.setErr(fmt.Errorf("imap connection to %s lost (%v), and reconnecting failed: %w", w.cfg.Endpoint.Address(), err, cerr))
		return false
	}
	w.setSession(sess)
	data := sess.data
	if data.UIDValidity != w.uidValidity {
		w.log.Warn("imap UIDVALIDITY changed after reconnecting; messages that arrived meanwhile may be missed",
			"old", w.uidValidity, "new", data.UIDValidity)
		w.uidValidity = data.UIDValidity
		w.nextUID = data.UIDNext
	}
	w.pending = nil
	w.dirty = true
	w.log.Info("imap reconnected", "uid_next", uint32(w.nextUID))
	return true
}

func (w *Watcher) shutdown() {
	c := w.c
	t := time.AfterFunc(closeTimeout, func() { c.Close() })
	defer t.Stop()
	if err := w.stopIdle(); err != nil {
		w.log.Debug("imap end IDLE on close", "error", err)
	}
	if err := c.Logout().Wait(); err != nil {
		w.log.Debug("imap logout", "error", err)
	}
	c.Close()
	w.log.Debug("imap watcher closed")
}
