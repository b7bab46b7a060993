package issuer

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/mailbox"
)

// TestRespondNotAnswered: a mail too large or no challenge at all is
// refused before the state directory is looked at; a challenge nobody
// waits for, before anyone logs in.
func TestRespondNotAnswered(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := func(t *testing.T, stateDir bool) RespondOptions {
		return RespondOptions{
			StateDir: func() (string, error) {
				if !stateDir {
					t.Error("the state directory was opened")
				}
				return dir, nil
			},
			Login: func(context.Context, string) (*mailbox.Sender, error) {
				t.Error("Login was called")
				return nil, errors.New("no login")
			},
		}
	}
	for _, c := range []struct {
		name, in, err string
		stateDir      bool
	}{
		{"too large", strings.Repeat("x", maxMailSize+1), "the mail was not answered: it is longer than 10485760 bytes", false},
		{"not a challenge", "Subject: hello\r\n\r\nhi\r\n", "the mail was not answered: parse challenge mail: ", false},
		{"nobody waits", challengeHeader, "the mail was not answered: no acmemail obtain --pipe is waiting for alice@example.test", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Respond(ctx, strings.NewReader(c.in), opts(t, c.stateDir))
			if !errors.Is(err, ErrNotAnswered) || !strings.HasPrefix(err.Error(), c.err) {
				t.Errorf("Respond: %v, want %q", err, c.err)
			}
		})
	}
	// Email, when given, replaces the mail's To.
	o := opts(t, true)
	o.Email = "bob@example.test"
	if err := Respond(ctx, strings.NewReader(challengeHeader), o); err == nil || !strings.Contains(err.Error(), "waiting for bob@example.test") {
		t.Errorf("Respond for bob: %v", err)
	}
}

// TestRespondPipe hands mails to a PipeMail, as obtain --pipe and respond
// --print do: a refused mail's respond gets the order flow's reason, the
// accepted one prints the reply with LF line ends and confirms it.
func TestRespondPipe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	prog := &lines{}
	m, err := ListenPipe(dir, "alice@example.test", prog)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := ListenPipe(dir, "alice@example.test", nil); err == nil || !strings.Contains(err.Error(), "another acmemail obtain --pipe is already waiting for alice@example.test") {
		t.Errorf("a second ListenPipe: %v", err)
	}
	reply := []byte("From: alice@example.test\r\nTo: ca@example.net\r\n\r\nbody\r\n")
	served := make(chan error, 1)
	go func() {
		served <- func() error {
			raw, err := m.Next(ctx)
			if err != nil {
				return err
			}
			if string(raw) != challengeHeader {
				t.Errorf("handed over %q", raw)
			}
			m.Observe(acmemail.Event{Kind: acmemail.EventIgnoredMail, Message: "forged"})
			if _, err := m.Next(ctx); err != nil {
				return err
			}
			return m.Send(ctx, "alice@example.test", []string{"ca@example.net"}, reply)
		}()
	}()
	o := RespondOptions{StateDir: func() (string, error) { return dir, nil }}
	var out bytes.Buffer
	o.Print = &out
	if err := Respond(ctx, strings.NewReader(challengeHeader), o); !errors.Is(err, ErrNotAnswered) || err.Error() != "the mail was not answered: forged" {
		t.Errorf("Respond of a refused mail: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("a refused mail's reply was printed: %q", out.String())
	}
	rprog := &lines{}
	o.Progress = rprog
	if err := Respond(ctx, strings.NewReader(challengeHeader), o); err != nil {
		t.Fatalf("Respond: %v", err)
	}
	if want := "From: alice@example.test\nTo: ca@example.net\n\nbody\n"; out.String() != want {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
	if err := <-served; err != nil {
		t.Fatalf("obtain's side: %v", err)
	}
	if !strings.Contains(rprog.String(), "printed the reply to ca@example.net") {
		t.Errorf("respond's progress:\n%s", rprog)
	}
	for _, want := range []string{"waiting for the challenge mail", "acmemail respond handed over a mail", "acmemail respond sent the reply"} {
		if !strings.Contains(prog.String(), want) {
			t.Errorf("obtain's progress lacks %q:\n%s", want, prog)
		}
	}
}

// guardRecord is a ReplyGuard that records its claims.
type guardRecord struct{ claimed []string }

func (g *guardRecord) Claim(key string) (bool, error) {
	g.claimed = append(g.claimed, key)
	return true, nil
}
func (g *guardRecord) Claimed(string) (bool, error) { return false, nil }

// TestPipeGuard: a challenge is claimed only while a respond waits for
// its answer; the records of a mail are not held up.
func TestPipeGuard(t *testing.T) {
	m, err := ListenPipe(t.TempDir(), "alice@example.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	inner := &guardRecord{}
	g := m.Guard(inner)
	if ok, err := g.Claim("token-part1 abc"); !ok || err != nil {
		t.Errorf("Claim of a mail's key: %v, %v", ok, err)
	}
	ok, err := g.Claim("challenge https://ca.example/dir https://ca.example/chall/1")
	var he *HintError
	if ok || !errors.As(err, &he) || !strings.Contains(err.Error(), "; the challenge was not answered") {
		t.Errorf("Claim of a challenge nobody waits for: %v, %v", ok, err)
	}
	if len(inner.claimed) != 1 {
		t.Errorf("claimed %q, want only the mail's key", inner.claimed)
	}
}
