package sandbox

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// TestMailDelay: the challenge mail reaches the mailbox no earlier than
// MailDelay after the authorization fetch that sent it, and that fetch
// does not wait for it.
func TestMailDelay(t *testing.T) {
	t.Parallel()
	const alice, delay = "alice@example.org", 400 * time.Millisecond
	var observed atomic.Int64 // when the challenge mail was observed going into the mailbox
	e := newEnv(t, Options{MailDelay: delay, Observe: func(o Observation) {
		if o.Kind == ObserveChallengeMail {
			observed.Store(o.At.UnixNano())
		}
	}}, alice)
	start := time.Now()
	e.order(alice) // the authorization fetch mails the challenge, and does not wait for it:
	if n := len(e.w.Inbox(alice)); n != 0 {
		t.Fatalf("%d messages delivered at once, want none before %v", n, delay)
	}
	if n := e.w.PendingDeliveries(); n != 1 {
		t.Errorf("PendingDeliveries = %d, want 1", n)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := e.w.WaitInbox(ctx, alice, 1); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < delay {
		t.Errorf("the challenge mail arrived %v after it was sent, before the delay of %v", d, delay)
	}
	if at := time.Unix(0, observed.Load()); at.Sub(start) < delay {
		t.Errorf("the challenge mail was observed %v after it was sent, want it observed on delivery, after %v", at.Sub(start), delay)
	}
	if n := e.w.PendingDeliveries(); n != 0 {
		t.Errorf("PendingDeliveries = %d after the delivery, want 0", n)
	}
	parseChallengeMail(t, e.fetchMail(alice, 1))
}

// TestReplyDelay: the submission server accepts a reply at once and the CA
// gets it no earlier than ReplyDelay later; the challenge POST made
// meanwhile is validated when it arrives.
func TestReplyDelay(t *testing.T) {
	t.Parallel()
	const alice, delay = "alice@example.org", 400 * time.Millisecond
	e := newEnv(t, Options{ReplyDelay: delay}, alice)
	_, az, ch := e.order(alice)
	cm := parseChallengeMail(t, e.fetchMail(alice, 1))
	thumb, _ := e.acct.Thumbprint()
	digest := digestFor(t, cm.tp1, ch.Token, thumb, false)
	start := time.Now()
	if err := e.submit(alice, []string{cm.header.Get("From")}, composeReply(alice, cm.header.Get("From"), cm, digest, replyOpts{})); err != nil {
		t.Fatal(err)
	}
	// Accepted, and not delivered yet: the 250 did not wait for it.
	if s := e.w.Stats(); s.RepliesReceived != 0 || s.MessagesSubmitted != 1 {
		t.Fatalf("at once: %d replies received, %d submitted; want 0 and 1", s.RepliesReceived, s.MessagesSubmitted)
	}
	if _, err := e.client.InitiateChallenge(t.Context(), e.acct, ch); err != nil {
		t.Fatal(err)
	}
	got := e.waitAuthz(az.Location)
	if got.Status != "valid" {
		t.Fatalf("authorization %s, want valid", got.Status)
	}
	if d := time.Since(start); d < delay {
		t.Errorf("valid %v after the submission, before the reply delay of %v", d, delay)
	}
	if s := e.w.Stats(); s.RepliesReceived != 1 || s.RepliesPerChallenge[ch.URL] != 1 {
		t.Errorf("replies received %d, for the challenge %d; want 1 and 1", s.RepliesReceived, s.RepliesPerChallenge[ch.URL])
	}
}

// TestCloseWithPendingDelivery: closing a world whose challenge mail waits
// for its delay returns at once and drops the mail.
func TestCloseWithPendingDelivery(t *testing.T) {
	t.Parallel()
	const alice = "alice@example.org"
	e := newEnv(t, Options{MailDelay: time.Hour}, alice)
	e.order(alice)
	if n := e.w.PendingDeliveries(); n != 1 {
		t.Fatalf("PendingDeliveries = %d, want 1", n)
	}
	start := time.Now()
	if err := e.w.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second { // not the hour of the delay
		t.Errorf("Close took %v with a delivery pending", d)
	}
	if n := e.w.PendingDeliveries(); n != 0 || len(e.w.Inbox(alice)) != 0 {
		t.Errorf("after Close: %d pending, %d delivered; want none", n, len(e.w.Inbox(alice)))
	}
	if !e.w.mail.later.after(time.Millisecond, func() { t.Error("a delivery scheduled after Close ran") }) {
		return
	}
	t.Error("a delivery was scheduled after Close")
}

func TestDelayOptions(t *testing.T) {
	t.Parallel()
	for _, opt := range []Options{{MailDelay: -time.Second}, {ReplyDelay: -1}} {
		if _, err := Start(t.Context(), opt); err == nil {
			t.Errorf("Start(%+v) accepted a negative delay", opt)
		}
	}
}

// TestConnectionStats: the IMAP and submission servers count their
// connections, the most open at once and the most logging in at once.
func TestConnectionStats(t *testing.T) {
	t.Parallel()
	const alice = "alice@example.org"
	e := newEnv(t, Options{}, alice)
	c, err := imapclient.DialTLS(hostOf(e.w.IMAPURL), &imapclient.Options{TLSConfig: e.tls})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(alice, password(alice)).Wait(); err != nil {
		t.Fatal(err)
	}
	c.Close() // one IMAP connection, logged in, closed
	if err := e.submit(alice, []string{alice}, []byte("From: "+alice+"\r\nTo: "+alice+"\r\nSubject: hi\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := e.w.Stats()
		if s.IMAPConnections == 1 && s.IMAPOpenMax == 1 && s.IMAPLoggingInMax == 1 && s.SMTPConnections == 1 && s.SMTPOpenMax == 1 && s.SMTPLoggingInMax == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("IMAP %d/%d/%d, SMTP %d/%d/%d; want 1/1/1 each", s.IMAPConnections, s.IMAPOpenMax, s.IMAPLoggingInMax, s.SMTPConnections, s.SMTPOpenMax, s.SMTPLoggingInMax)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.w.stats.mu.Lock()
	open, logging := e.w.stats.open["imap"], e.w.stats.loggingIn["imap"]
	e.w.stats.mu.Unlock()
	if open != 0 || logging != 0 {
		t.Errorf("IMAP connections open now %d, logging in %d; want 0 and 0 after the client closed", open, logging)
	}
}
