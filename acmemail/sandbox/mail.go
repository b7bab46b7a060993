package sandbox

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-msgauth/dkim"
)

// mxHost names the sandbox's mail host in trace fields and as the authserv-id
// of the Authentication-Results fields it adds on delivery.
const mxHost = "mx.sandbox.test"

// errUnknownRecipient is returned by local delivery for addresses that have
// no mailbox.
var errUnknownRecipient = errors.New("no such mailbox")

// mailSystem is the sandbox's mail domain: users with an IMAP mailbox and a
// submission login, local delivery into those mailboxes, and the CA's own
// mailbox.
type mailSystem struct {
	log       *slog.Logger
	keys      *dkimRegistry
	stats     *statsBox
	lookupTXT func(string) ([]string, error)
	caLocal   string // "acme-challenge"
	caDomain  string // "ca.sandbox.test"
	toCA      func(rcpt string, raw []byte)
	noSign    bool   // the submission server does not DKIM-sign
	folder    string // where mail is delivered (Options.Folder)
	// submitDelay holds each submission before it is accepted
	// (Options.SubmitDelay); done ends the wait when the world closes.
	submitDelay atomic.Int64
	// mailDelay and replyDelay hold deliveries (Options.MailDelay,
	// ReplyDelay) on the timers of later, which the world's Close stops.
	mailDelay, replyDelay atomic.Int64
	later                 later
	done                  <-chan struct{}
	oauth                 OAuthMode
	observe               func(Observation) // nil: nobody watches

	mem *imapmemserver.Server

	mu      sync.Mutex
	users   map[string]*mailUser // by lowercased address
	aliases map[string]string    // lowercased alias -> lowercased user address (see World.AddAlias)
	changed chan struct{}        // closed and replaced when a message is delivered
}

type mailUser struct {
	addr      string
	password  string
	tokens    []string // OAuth access tokens, see World.AddOAuthToken
	imap      *imapmemserver.User
	delivered [][]byte // every message appended to INBOX, for World.Inbox
}

// inbox returns a copy of the list of messages delivered to addr.
func (m *mailSystem) inbox(addr string) [][]byte {
	msgs, _ := m.inboxChanged(addr)
	return msgs
}

// inboxChanged returns the messages delivered to addr and a channel that
// is closed at the next delivery.
func (m *mailSystem) inboxChanged(addr string) ([][]byte, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out [][]byte
	if u := m.users[strings.ToLower(addr)]; u != nil {
		for _, msg := range u.delivered {
			out = append(out, append([]byte(nil), msg...))
		}
	}
	return out, m.changed
}

func (m *mailSystem) addUser(addr, password string) error {
	key := strings.ToLower(addr)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.users[key] != nil {
		return fmt.Errorf("add user %s: the user exists", addr)
	}
	u := imapmemserver.NewUser(addr, password)
	if err := u.Create("INBOX", nil); err != nil {
		return fmt.Errorf("add user %s: create INBOX: %w", addr, err)
	}
	for _, mb := range []struct {
		name string
		attr imap.MailboxAttr
	}{{"Sent", imap.MailboxAttrSent}, {"Junk", imap.MailboxAttrJunk}, {"Trash", imap.MailboxAttrTrash}} {
		if err := u.Create(mb.name, &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{mb.attr}}); err != nil {
			return fmt.Errorf("add user %s: create %s: %w", addr, mb.name, err)
		}
	}
	_ = u.Subscribe("INBOX")
	m.mem.AddUser(u)
	m.users[key] = &mailUser{addr: addr, password: password, imap: u}
	return nil
}

func (m *mailSystem) user(addr string) *mailUser {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.aliases[strings.ToLower(addr)]; u != "" {
		return m.users[u]
	}
	return m.users[strings.ToLower(addr)]
}

func (m *mailSystem) hasUser(addr string) bool { return m.user(addr) != nil }

// login checks submission credentials and returns the user's address.
func (m *mailSystem) login(username, password string) (string, bool) {
	u := m.user(username)
	if u == nil {
		// Spend comparable time on unknown users.
		subtle.ConstantTimeCompare([]byte(password), []byte(password))
		return "", false
	}
	if subtle.ConstantTimeCompare([]byte(password), []byte(u.password)) != 1 {
		return "", false
	}
	return u.addr, true
}

// isCA reports whether addr is the CA's address or one of its plus addresses.
func (m *mailSystem) isCA(addr string) bool {
	local, domain := splitAddress(addr)
	if !strings.EqualFold(domain, m.caDomain) {
		return false
	}
	return local == m.caLocal || strings.HasPrefix(local, m.caLocal+"+")
}

func (m *mailSystem) canReceive(addr string) bool { return m.isCA(addr) || m.hasUser(addr) }

// envelope describes how a message entered the mail system.
type envelope struct {
	from  string // MAIL FROM
	helo  string // "" for mail the sandbox itself originates
	login string // the authenticated submission user
	id    string // queue id for trace fields
	// delivering, if set, is called just before the message is put into
	// a user's mailbox (after Options.MailDelay, if any).
	delivering func()
}

// delay is how long a message of env waits before it is delivered: mail
// the CA sends waits Options.MailDelay, mail users submit ReplyDelay.
func (m *mailSystem) delay(env envelope) time.Duration {
	if env.helo == "" && env.login == "" {
		return time.Duration(m.mailDelay.Load())
	}
	return time.Duration(m.replyDelay.Load())
}

// deliver hands raw to every recipient: users get it in their INBOX with
// trace and Authentication-Results fields added, CA addresses get it in the
// CA's mailbox. It fails before delivering anything if a recipient is
// unknown.
func (m *mailSystem) deliver(env envelope, rcpts []string, raw []byte) error {
	for _, r := range rcpts {
		if !m.canReceive(r) {
			return fmt.Errorf("deliver to %s: %w", r, errUnknownRecipient)
		}
	}
	authRes := m.authResults(raw)
	clean := removeFields(raw, func(f headerField) bool {
		return strings.EqualFold(f.name, "Authentication-Results") && isOurAuthservID(f.value())
	})
	var errs []error
	d := m.delay(env)
	for _, r := range rcpts {
		put := func() error {
			msg := m.trace(env, r, authRes, clean)
			if m.isCA(r) {
				m.toCA(r, msg)
				return nil
			}
			if env.delivering != nil {
				env.delivering()
			}
			return m.appendInbox(r, msg)
		}
		if d <= 0 {
			if err := put(); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		// Delivered later, as an MTA with a queue does: the sender has
		// its answer now, and a failure is only logged.
		if !m.later.after(d, func() {
			if err := put(); err != nil {
				m.log.Error("delayed delivery", "error", err)
			}
		}) {
			errs = append(errs, fmt.Errorf("deliver to %s: the sandbox is closing", r))
		}
	}
	return errors.Join(errs...)
}

func isOurAuthservID(v string) bool {
	id, _, _ := strings.Cut(v, ";")
	id = strings.TrimSpace(id)
	if i := strings.IndexAny(id, " \t"); i >= 0 {
		id = id[:i]
	}
	return strings.EqualFold(id, mxHost)
}

// trace prepends the fields an MTA and MDA add on delivery.
func (m *mailSystem) trace(env envelope, rcpt, authRes string, raw []byte) []byte {
	now := time.Now().Format(time.RFC1123Z)
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <%s>\r\n", env.from)
	fmt.Fprintf(&b, "Delivered-To: %s\r\n", rcpt)
	fmt.Fprintf(&b, "Authentication-Results: %s;\r\n\t%s\r\n", mxHost, authRes)
	if env.helo != "" {
		fmt.Fprintf(&b, "Received: from %s (localhost [127.0.0.1])\r\n\tby %s (acmemail sandbox) with ESMTPSA id %s\r\n\tfor <%s>; %s\r\n", sanitizeHelo(env.helo), mxHost, env.id, rcpt, now)
	} else {
		fmt.Fprintf(&b, "Received: by %s (acmemail sandbox CA) id %s\r\n\tfor <%s>; %s\r\n", mxHost, env.id, rcpt, now)
	}
	b.Write(raw)
	return b.Bytes()
}

func sanitizeHelo(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || r == '(' || r == ')' || r == ';' {
			return -1
		}
		return r
	}, s)
	if len(s) > 64 {
		s = s[:64]
	}
	if s == "" {
		s = "unknown"
	}
	return s
}

// authResults checks the DKIM signatures of raw as a receiving MTA would and
// returns the resinfo part of an Authentication-Results field (RFC 8601).
func (m *mailSystem) authResults(raw []byte) string {
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: m.lookupTXT, MaxVerifications: 8})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return "dkim=permerror"
	}
	if len(verifs) == 0 {
		return "dkim=none"
	}
	var parts []string
	for _, v := range verifs {
		d := sanitizeHelo(v.Domain)
		switch {
		case v.Err == nil:
			parts = append(parts, fmt.Sprintf("dkim=pass header.d=%s header.i=%s", d, sanitizeHelo(v.Identifier)))
		case dkim.IsTempFail(v.Err):
			parts = append(parts, fmt.Sprintf("dkim=temperror header.d=%s", d))
		case dkim.IsPermFail(v.Err):
			parts = append(parts, fmt.Sprintf("dkim=permerror header.d=%s", d))
		default:
			parts = append(parts, fmt.Sprintf("dkim=fail header.d=%s", d))
		}
	}
	return strings.Join(parts, ";\r\n\t")
}

// appendInbox stores raw in the delivery folder (INBOX unless
// Options.Folder says otherwise) of addr exactly as given.
func (m *mailSystem) appendInbox(addr string, raw []byte) error {
	u := m.user(addr)
	if u == nil {
		return fmt.Errorf("deliver to %s: %w", addr, errUnknownRecipient)
	}
	if _, err := u.imap.Append(m.folder, bytes.NewReader(raw), &imap.AppendOptions{}); err != nil {
		return fmt.Errorf("deliver to %s: %w", addr, err)
	}
	m.mu.Lock()
	u.delivered = append(u.delivered, append([]byte(nil), raw...))
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	m.stats.update(func(s *Stats) { s.MessagesDelivered++ })
	m.log.Debug("message delivered", "to", addr, "size", len(raw))
	return nil
}

// logAdapter turns the Printf-style loggers of go-imap and go-smtp into
// debug records.
type logAdapter struct {
	log *slog.Logger
	msg string
}

func (a logAdapter) Printf(format string, v ...any) {
	a.log.Log(context.Background(), slog.LevelDebug, a.msg, "detail", strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (a logAdapter) Println(v ...any) {
	a.log.Log(context.Background(), slog.LevelDebug, a.msg, "detail", strings.TrimSpace(fmt.Sprintln(v...)))
}

// flushingSession works around an imapmemserver quirk (go-imap v2 beta.8):
// updates queued between two commands are not sent when IDLE starts, only
// with the next change, so a message delivered just before IDLE would go
// unannounced. Real servers (Dovecot) report pending changes when IDLE
// begins; so does the sandbox.
//
// Polling once before IDLE is not enough: a message delivered between that
// poll and the moment the tracker starts listening (SessionTracker.Idle
// registers itself only then) is queued without a wake-up and would wait
// for the next change, seen as a lost challenge mail under heavy load. So
// the inner IDLE is restarted every idleRepoll with a poll in between:
// a delivery that falls into the gap is announced at most idleRepoll late;
// all others are announced at once, as before.
type flushingSession struct{ imapserver.SessionIMAP4rev2 }

// idleRepoll bounds how late a message that races the start of IDLE is
// announced.
const idleRepoll = 250 * time.Millisecond

func (s flushingSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	for {
		if err := s.SessionIMAP4rev2.Poll(w, true); err != nil {
			return err
		}
		inner := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- s.SessionIMAP4rev2.Idle(w, inner) }()
		t := time.NewTimer(idleRepoll)
		select {
		case <-stop:
			t.Stop()
			close(inner)
			return <-done
		case err := <-done: // the session ended IDLE by itself
			t.Stop()
			return err
		case <-t.C:
			close(inner)
			if err := <-done; err != nil {
				return err
			}
		}
	}
}
