package issuer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

// passwords are the Secrets of the RenewAll tests: a mail password per
// login, and one PKCS#12 password.
type passwords map[string]string

func (pw passwords) MailLogin(_ context.Context, p *Profile) (mailbox.Credentials, mailbox.Credentials, error) {
	c := mailbox.Credentials{Username: p.LoginUser(), Password: pw[p.LoginUser()]}
	return c, c, nil
}

func (pw passwords) AlsoPassword(_ context.Context, _ *Profile, a Also) (string, error) {
	return pw[a.User], nil
}

func (passwords) P12Password(context.Context, *Profile) (string, error) { return "test", nil }

// acmeLog records the ACME requests a world serves, to find how many were
// in flight at once.
type acmeLog struct {
	mu    sync.Mutex
	spans [][2]time.Time
}

func (l *acmeLog) observe(o sandbox.Observation) {
	if o.Kind != sandbox.ObserveACME {
		return
	}
	l.mu.Lock()
	l.spans = append(l.spans, [2]time.Time{o.At, o.At.Add(o.Took)})
	l.mu.Unlock()
}

func (l *acmeLog) reset() {
	l.mu.Lock()
	l.spans = nil
	l.mu.Unlock()
}

// maxInFlight is the most requests the CA was serving at one time.
func (l *acmeLog) maxInFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, s := range l.spans {
		edges = append(edges, edge{s[0], 1}, edge{s[1], -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta // an end before a start at the same time
		}
		return edges[i].at.Before(edges[j].at)
	})
	cur, most := 0, 0
	for _, e := range edges {
		cur += e.delta
		most = max(most, cur)
	}
	return most
}

// renewAllWorld is a sandbox whose challenge mail takes delay, and an
// issuer whose state directory holds a certificate for each of emails,
// obtained one after the other; login names who reads each address's
// mail (its own mailbox when not listed).
func renewAllWorld(t *testing.T, delay time.Duration, emails []string, login map[string]string) (*sandbox.World, *Issuer, *acmeLog) {
	t.Helper()
	log := &acmeLog{}
	w, err := sandbox.Start(t.Context(), sandbox.Options{Observe: log.observe})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	roots := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(roots, w.TLSRootsPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := keystore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pw := passwords{}
	for _, e := range emails {
		user := cmpOr(login[e], e)
		if pw[user] == "" {
			pw[user] = "pw-" + user
			if err := w.AddUser(user, pw[user]); err != nil {
				t.Fatal(err)
			}
		}
		if user != e {
			if err := w.AddAlias(e, user); err != nil {
				t.Fatal(err)
			}
		}
	}
	is := &Issuer{Store: store, Secrets: pw, UserAgent: "acmemail-test"}
	for _, e := range emails {
		p := Profile{
			Email: e, Server: w.DirectoryURL, CARoots: roots, IMAP: w.IMAPURL, SMTP: w.SMTPURL, User: login[e],
			DNSResolver: w.DNSAddr, KeyType: keystore.KeyP256, MailWait: Duration(10 * time.Second),
		}
		if _, err := is.Obtain(t.Context(), p, ObtainOptions{AgreeTOS: true}); err != nil {
			t.Fatalf("obtain %s: %v", e, err)
		}
	}
	w.SetMailDelay(delay)
	log.reset()
	return w, is, log
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// renewAll renews emails with --force, at most parallel at once.
func renewAll(t *testing.T, is *Issuer, emails []string, parallel int) []Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var reported []string
	out := is.RenewAll(ctx, emails, parallel, func(string) (RenewOptions, error) {
		return RenewOptions{Force: true, Explicit: true}, nil
	}, func(oc *Outcome) {
		mu.Lock()
		reported = append(reported, oc.Email)
		mu.Unlock()
	})
	if len(reported) != len(emails) {
		t.Errorf("%d outcomes reported for %d addresses", len(reported), len(emails))
	}
	got := make([]string, len(out))
	for i := range out {
		got[i] = out[i].Email
	}
	if !slices.Equal(got, emails) {
		t.Errorf("outcomes in the order %v, want that of the addresses %v", got, emails)
	}
	return out
}

// checkAnsweredOnce checks that every challenge the CA mailed got exactly
// one reply.
func checkAnsweredOnce(t *testing.T, w *sandbox.World, want int) {
	t.Helper()
	s := w.Stats()
	if len(s.RepliesPerChallenge) < want {
		t.Errorf("%d challenges answered, want at least %d", len(s.RepliesPerChallenge), want)
	}
	for url, n := range s.RepliesPerChallenge {
		if n != 1 {
			t.Errorf("challenge %s answered %d times", url, n)
		}
	}
	if s.RepliesRejected != 0 {
		t.Errorf("the CA rejected replies: %q", s.RejectedReasons)
	}
}

// TestRenewAllSharedMailbox: the addresses of one mailbox are renewed
// concurrently over one IMAP connection, each challenge answered once;
// one whose login fails (a wrong password, so not carried by the shared
// connection of the others) fails alone.
func TestRenewAllSharedMailbox(t *testing.T) {
	t.Parallel()
	var emails []string
	login := map[string]string{}
	for i := range 6 {
		e := fmt.Sprintf("a%d@example.test", i)
		emails = append(emails, e)
		login[e] = "box@example.test"
	}
	w, is, _ := renewAllWorld(t, 300*time.Millisecond, emails, login)
	before := w.Stats()
	// a5 gives a wrong password this time.
	pw := clonePasswords(is.Secrets.(passwords))
	is.Secrets = &wrongFor{passwords: pw, email: "a5@example.test"}
	out := renewAll(t, is, emails, len(emails))
	for _, oc := range out {
		if oc.Email == "a5@example.test" {
			if oc.Status != Failed || !strings.Contains(oc.Error, "open the mailbox") {
				t.Errorf("a5 with a wrong password: %s %q, want failed to open the mailbox", oc.Status, oc.Error)
			}
			continue
		}
		if oc.Status != Renewed {
			t.Errorf("%s: %s %s", oc.Email, oc.Status, oc.Error)
		}
	}
	after := w.Stats()
	if n := after.Logins["imap LOGIN"] - before.Logins["imap LOGIN"]; n != 1 {
		t.Errorf("%d IMAP logins for five addresses of one mailbox, want 1", n)
	}
	if n := after.IMAPConnections - before.IMAPConnections; n != 2 {
		t.Errorf("%d IMAP connections, want 2 (the shared one, a5's refused one)", n)
	}
	if n := after.ChallengesValid - before.ChallengesValid; n != 5 {
		t.Errorf("%d challenges valid, want 5", n)
	}
	checkAnsweredOnce(t, w, 6+5)
}

// wrongFor gives a wrong mail password for one address.
type wrongFor struct {
	passwords
	email string
}

func (s *wrongFor) MailLogin(ctx context.Context, p *Profile) (mailbox.Credentials, mailbox.Credentials, error) {
	i, sc, err := s.passwords.MailLogin(ctx, p)
	if p.Email == s.email {
		i.Password, sc.Password = "wrong", "wrong"
	}
	return i, sc, err
}

func clonePasswords(p passwords) passwords {
	out := passwords{}
	for k, v := range p {
		out[k] = v
	}
	return out
}

// TestRenewAllBounds: addresses with mailboxes of their own on one server
// renewed all at once log in to it at most Limits.MailLogins at a time
// (IMAP and submission), send at most Limits.CARequests requests to the CA
// at a time, and are all renewed, each mailbox over one connection.
func TestRenewAllBounds(t *testing.T) {
	t.Parallel()
	var emails []string
	for i := range 6 {
		emails = append(emails, fmt.Sprintf("b%d@example.test", i))
	}
	w, is, acme := renewAllWorld(t, 200*time.Millisecond, emails, nil)
	is.Limits = Limits{MailLogins: 1, CARequests: 1}
	before := w.Stats()
	out := renewAll(t, is, emails, len(emails))
	for _, oc := range out {
		if oc.Status != Renewed {
			t.Errorf("%s: %s %s", oc.Email, oc.Status, oc.Error)
		}
	}
	after := w.Stats()
	if after.IMAPLoggingInMax != 1 || after.SMTPLoggingInMax != 1 {
		t.Errorf("at most %d IMAP and %d SMTP logins in progress at once, want 1 and 1", after.IMAPLoggingInMax, after.SMTPLoggingInMax)
	}
	if n := after.IMAPConnections - before.IMAPConnections; n != len(emails) {
		t.Errorf("%d IMAP connections for %d mailboxes", n, len(emails))
	}
	if after.IMAPOpenMax < 2 {
		t.Errorf("at most %d IMAP connections open at once: the renewals did not overlap", after.IMAPOpenMax)
	}
	if n := acme.maxInFlight(); n != 1 {
		t.Errorf("the CA served %d requests at once, want 1", n)
	}
	checkAnsweredOnce(t, w, 2*len(emails))
}

// TestOthersMail: in a shared mailbox a renewal passes over the challenge
// mails of the run's other addresses, and only those.
func TestOthersMail(t *testing.T) {
	tg := newTogether(Limits{}, 4, []string{"a@example.test", "B@example.test", "c@example.test"}, nil)
	challenge := func(to string) []byte {
		return []byte("From: acme-challenge+x@ca.example\r\nTo: " + to + "\r\nSubject: ACME: abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\r\n" +
			"Auto-Submitted: auto-generated; type=acme\r\nMessage-ID: <1@ca.example>\r\n\r\nbody\r\n")
	}
	skipA := tg.othersMail([]string{"a@example.test", "also-a@example.test"})
	for _, tc := range []struct {
		raw  []byte
		skip bool
	}{
		{challenge("b@example.test"), true},       // another renewal's
		{challenge("C@Example.test"), true},       // another's, case aside
		{challenge("a@example.test"), false},      // its own
		{challenge("also-a@example.test"), false}, // its own --also address
		{challenge("b@example.test, a@example.test"), false},
		{challenge("stranger@example.test"), false},                                                   // nobody's in the run: the renewal says why it ignores it
		{[]byte("From: x@example.test\r\nTo: b@example.test\r\nSubject: hello\r\n\r\nhi\r\n"), false}, // not a challenge
		{nil, false},
	} {
		for range 2 { // the second time from the cache
			if got := skipA(tc.raw); got != tc.skip {
				t.Errorf("skip(%q) = %v, want %v", tc.raw, got, tc.skip)
			}
		}
	}
}

// TestRenewAllShares: the mail sessions of a process resume the TLS
// sessions of the first ones to each server, and the ACME requests share
// their connections, so a run of many identities does not pay a full
// handshake (the server's chain verified, a signature checked) for each;
// and the renewals of one run look the CA's DKIM key up once between
// them, not once per challenge mail. Counted on the sandbox's servers,
// over the obtains that set the addresses up one after the other and the
// renewal of all at once.
func TestRenewAllShares(t *testing.T) {
	t.Parallel()
	var emails []string
	for i := range 6 {
		emails = append(emails, fmt.Sprintf("r%d@example.test", i))
	}
	w, is, _ := renewAllWorld(t, 100*time.Millisecond, emails, nil)
	before := w.Stats()
	for _, oc := range renewAll(t, is, emails, len(emails)) {
		if oc.Status != Renewed {
			t.Errorf("%s: %s %s", oc.Email, oc.Status, oc.Error)
		}
	}
	after := w.Stats()
	for _, proto := range []string{"imap", "smtp"} {
		if n := after.TLSHandshakes[proto] - before.TLSHandshakes[proto]; n < len(emails) {
			t.Errorf("%s: %d TLS handshakes while renewing %d mailboxes, want at least one each", proto, n, len(emails))
		}
		if full := after.TLSHandshakes[proto] - after.TLSResumed[proto]; full != 1 {
			t.Errorf("%s: %d full TLS handshakes in %d handshakes, want 1 (the first obtain's)", proto, full, after.TLSHandshakes[proto])
		}
	}
	if n := after.ChallengesSent - before.ChallengesSent; n != len(emails) {
		t.Errorf("%d challenge mails for %d renewals", n, len(emails))
	}
	if n := after.DNSQueries - before.DNSQueries; n != 1 {
		t.Errorf("%d DNS queries for the challenge mails of %d renewals, want 1", n, len(emails))
	}
	if n := after.TLSHandshakes["https"]; n < 1 || n > 2 {
		t.Errorf("%d TLS handshakes with the CA for %d obtains and renewals, want 1 (one connection reused; 2 if two requests raced to dial)", n, 2*len(emails))
	}
}

// TestRenewAllLearnsOnce: what the renewals of one run learn about their
// CA is merged into one timing, written when the last of them ends:
// every renewal counts (each used to start from the file as the run
// found it and write it anew, so all but one were lost).
func TestRenewAllLearnsOnce(t *testing.T) {
	t.Parallel()
	var emails []string
	for i := range 5 {
		emails = append(emails, fmt.Sprintf("l%d@example.test", i))
	}
	w, is, _ := renewAllWorld(t, 50*time.Millisecond, emails, nil)
	found, err := LoadCATiming(is.Store, w.DirectoryURL)
	if err != nil || found == nil || found.Runs != len(emails) {
		t.Fatalf("learned after %d obtains: %+v, %v", len(emails), found, err)
	}
	path := is.Store.CATimingPath(w.DirectoryURL)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, oc := range renewAll(t, is, emails, len(emails)) {
		if oc.Status != Renewed {
			t.Errorf("%s: %s %s", oc.Email, oc.Status, oc.Error)
		}
	}
	got, err := LoadCATiming(is.Store, w.DirectoryURL)
	if err != nil || got == nil || got.Runs != 2*len(emails) {
		t.Fatalf("learned after %d renewals more: %+v, %v; want %d runs", len(emails), got, err, 2*len(emails))
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(before, after) {
		t.Error("the learned file was not replaced")
	}
}

// TestRenewAllLearnsAtTheEnd: what a run learned is written when all its
// renewals have ended, not when the renewals started so far have: with
// one at a time, a slow set-up of the second address let the first
// renewal's end write the file, and the last one write it again.
func TestRenewAllLearnsAtTheEnd(t *testing.T) {
	t.Parallel()
	emails := []string{"e0@example.test", "e1@example.test"}
	w, is, _ := renewAllWorld(t, 0, emails, nil)
	path := is.Store.CATimingPath(w.DirectoryURL)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan struct{})
	var early bool
	out := is.RenewAll(t.Context(), emails, 1, func(e string) (RenewOptions, error) {
		if e == emails[1] {
			<-firstDone
			time.Sleep(300 * time.Millisecond) // the first renewal's goroutine ends meanwhile
			now, err := os.Stat(path)
			early = err != nil || !os.SameFile(before, now)
		}
		return RenewOptions{Force: true, Explicit: true}, nil
	}, func(oc *Outcome) {
		if oc.Email == emails[0] {
			close(firstDone)
		}
	})
	for _, oc := range out {
		if oc.Status != Renewed {
			t.Fatalf("%s: %s %s", oc.Email, oc.Status, oc.Error)
		}
	}
	if early {
		t.Error("the learned timing was written before the run's last renewal ended")
	}
	got, err := LoadCATiming(is.Store, w.DirectoryURL)
	if err != nil || got == nil || got.Runs != 2*len(emails) {
		t.Fatalf("learned: %+v, %v; want %d runs", got, err, 2*len(emails))
	}
}
