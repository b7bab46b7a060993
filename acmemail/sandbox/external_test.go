package sandbox

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// externalMail records the challenge emails an external-mail world submits.
type externalMail struct {
	mu   sync.Mutex
	sent [][]byte
	to   []string
	from []string
	err  error
	got  chan struct{}
}

func (x *externalMail) send(_ context.Context, from string, to []string, raw []byte) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err != nil {
		return x.err
	}
	x.sent = append(x.sent, bytes.Clone(raw))
	x.from = append(x.from, from)
	x.to = append(x.to, to...)
	select {
	case x.got <- struct{}{}:
	default:
	}
	return nil
}

// TestExternalMail runs the flow with the CA's mail going through an
// outside mail system: the challenge is submitted unsigned through Send,
// the reply comes back through Deliver and its DKIM key is looked up with
// Options.LookupTXT, not in the world's zone.
func TestExternalMail(t *testing.T) {
	const alice = "alice@example.com" // no mailbox in the world
	x := &externalMail{got: make(chan struct{}, 1)}
	signer := newDKIMRegistry() // the "user's provider"
	if _, err := signer.key("example.com"); err != nil {
		t.Fatal(err)
	}
	var lookups []string
	var mu sync.Mutex
	e := newEnv(t, Options{
		External: &ExternalMail{Address: "acme@ca.example.net", Send: x.send},
		LookupTXT: func(_ context.Context, name string) ([]string, error) {
			mu.Lock()
			lookups = append(lookups, name)
			mu.Unlock()
			if rec, ok := signer.lookup(strings.TrimSuffix(name, ".")); ok {
				return []string{rec}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		},
	})
	if e.w.CAFrom != "acme@ca.example.net" {
		t.Errorf("CAFrom = %q, want the external address", e.w.CAFrom)
	}
	_, az, ch := e.order(alice)
	if !strings.HasPrefix(ch.From, "acme+") || !strings.HasSuffix(ch.From, "@ca.example.net") {
		t.Errorf("challenge from = %q, want acme+...@ca.example.net", ch.From)
	}
	select {
	case <-x.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no challenge email was submitted")
	}
	x.mu.Lock()
	raw, from, to := x.sent[0], x.from[0], x.to
	x.mu.Unlock()
	if from != ch.From || len(to) != 1 || to[0] != alice {
		t.Errorf("submitted from %s to %v, want from %s to %s", from, to, ch.From, alice)
	}
	if bytes.Contains(raw, []byte("DKIM-Signature:")) {
		t.Error("the submitted challenge is already DKIM-signed; the external mail system signs it")
	}
	cm := parseChallengeMail(t, raw)
	thumb, err := e.acct.Thumbprint()
	if err != nil {
		t.Fatal(err)
	}
	reply := composeReply(alice, ch.From, cm, digestFor(t, cm.tp1, ch.Token, thumb, false), replyOpts{})

	// An unsigned reply is refused.
	if err := e.w.Deliver(e.w.CAFrom, reply); err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	if s := e.w.Stats(); s.RepliesRejected != 1 {
		t.Fatalf("RepliesRejected = %d after an unsigned reply, want 1", s.RepliesRejected)
	}
	// Signed as OpenDKIM does by default: RFC 6376's recommended fields
	// that are present, From oversigned; no Message-ID or MIME fields.
	key, err := signer.key("example.com")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := dkim.Sign(&out, bytes.NewReader(reply), &dkim.SignOptions{
		Domain: "example.com", Selector: dkimSelector, Signer: key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "In-Reply-To", "References", "From"},
	}); err != nil {
		t.Fatal(err)
	}
	signed := out.Bytes()
	if err := e.w.Deliver(e.w.CAFrom, signed); err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	if _, err := e.client.InitiateChallenge(t.Context(), e.acct, ch); err != nil {
		t.Fatalf("InitiateChallenge() = %v", err)
	}
	if az = e.waitAuthz(az.Location); az.Status != "valid" {
		t.Fatalf("authorization %s, want valid; stats %+v", az.Status, e.w.Stats())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lookups) == 0 || !strings.HasPrefix(lookups[0], dkimSelector+"._domainkey.example.com") {
		t.Errorf("LookupTXT calls = %q, want the example.com DKIM key", lookups)
	}
}

// TestExternalMailSendFails: a challenge the mail system refuses makes the
// challenge invalid with the reason.
func TestExternalMailSendFails(t *testing.T) {
	x := &externalMail{got: make(chan struct{}, 1), err: errors.New("553 5.7.1 sender not owned by user")}
	e := newEnv(t, Options{
		External:  &ExternalMail{Address: "acme@ca.example.net", Send: x.send},
		LookupTXT: func(context.Context, string) ([]string, error) { return nil, errors.New("unused") },
	})
	_, az, _ := e.order("bob@example.com")
	az = e.waitAuthz(az.Location)
	if az.Status != "invalid" {
		t.Fatalf("authorization %s, want invalid", az.Status)
	}
	if p := az.Challenges[0].Error; p == nil || !strings.Contains(p.Detail, "sender not owned") {
		t.Errorf("challenge error = %+v, want the submission error", p)
	}
}

func TestExternalMailOptions(t *testing.T) {
	send := func(context.Context, string, []string, []byte) error { return nil }
	for _, tt := range []struct {
		name string
		opt  Options
		want string
	}{
		{"plus address", Options{External: &ExternalMail{Address: "acme+x@ca.example.net", Send: send}}, "+extension"},
		{"no send", Options{External: &ExternalMail{Address: "acme@ca.example.net"}}, "no Send"},
		{"bad address", Options{External: &ExternalMail{Address: "acme", Send: send}}, "CA address"},
		{"hostile", Options{Hostile: true, External: &ExternalMail{Address: "acme@ca.example.net", Send: send}}, "hostile"},
		{"lookup without external", Options{LookupTXT: systemLookupTXT}, "external mail only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Start(t.Context(), tt.opt)
			if err == nil {
				w.Close()
				t.Fatalf("Start() succeeded, want an error about %s", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start() = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
