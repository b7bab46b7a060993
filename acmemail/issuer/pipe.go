package issuer

import (
	"context"
	"errors"
	"fmt"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/mailbox"
)

// The pipe mode: "acmemail obtain --pipe EMAIL" creates the order and
// listens on a Unix socket in the state directory (pipe/<hash>.sock, in a
// 0700 directory, so only the user reaches it). "acmemail respond", run by
// the user's mail filter (procmail, Sieve's pipe, an MTA alias), connects
// and hands over one mail. The waiting obtain checks it exactly as mail
// read over IMAP (the same acmemail.Client code: DKIM or S/MIME, From, To,
// Subject, Auto-Submitted, age, the durable record that no challenge is
// answered twice) and answers with a verdict; for the genuine challenge
// the verdict carries the reply, which respond sends or prints and then
// confirms, and only then does obtain ask the CA to validate.
//
// The socket, its protocol and the serving of connections (each on its
// own, with bounded time) are mailbox's PipeServer and HandOver; what
// needs acmemail is here: which mail is a challenge at all, the
// rejections the order flow reports, and holding the challenge's claim
// until its respond is known to be still there.

// PipeSocketPath is where obtain --pipe for email listens under the
// state directory stateDir (see mailbox.PipeSocketPath).
func PipeSocketPath(stateDir, email string) (string, error) {
	p, err := mailbox.PipeSocketPath(stateDir, email)
	if errors.Is(err, mailbox.ErrSocketPathTooLong) {
		return "", WithHint(err, "set ACMEMAIL_HOME to a shorter directory")
	}
	return p, err
}

// screenChallenge refuses, before the order flow sees it, a mail that is
// not a challenge mail at all (respond's own check, repeated for clients
// that are not respond).
func screenChallenge(raw []byte) error {
	if _, err := acmemail.ParseChallengeMail(raw); errors.Is(err, acmemail.ErrNotChallenge) {
		return err
	}
	return nil
}

// PipeMail is the acmemail.Mail of obtain --pipe: the mails acmemail
// respond hands over, and the replies it sends. Give its Observe to
// ObtainOptions.Observe (a refused mail's respond learns why) and its
// Guard to ObtainOptions.Guard.
type PipeMail struct {
	srv  *mailbox.PipeServer
	prog Reporter
}

// ListenPipe starts listening for acmemail respond on the socket of email
// in the state directory stateDir; prog prints progress lines (nil: none).
// The caller closes it.
func ListenPipe(stateDir, email string, prog Reporter) (*PipeMail, error) {
	path, err := PipeSocketPath(stateDir, email)
	if err != nil {
		return nil, err
	}
	srv, err := mailbox.ListenPipe(mailbox.PipeConfig{
		Path: path, PeerName: "acmemail respond", Screen: screenChallenge, MaxMessageSize: maxMailSize,
	})
	if errors.Is(err, mailbox.ErrPipeInUse) {
		return nil, WithHint(fmt.Errorf("another acmemail obtain --pipe is already waiting for %s", email), "stop it first, or let it finish")
	}
	if err != nil {
		return nil, fmt.Errorf("listen for acmemail respond: %w", err)
	}
	m := &PipeMail{srv: srv, prog: reporter(prog)}
	m.prog.Printf("waiting for the challenge mail: have your mail filter pipe it to \"acmemail respond --smtp URL\" (or \"acmemail respond --print | sendmail -t -oi\")")
	return m, nil
}

// Next returns the next mail acmemail respond handed over.
func (m *PipeMail) Next(ctx context.Context) ([]byte, error) {
	raw, err := m.srv.Next(ctx)
	if err != nil {
		return nil, err
	}
	m.prog.Printf("acmemail respond handed over a mail; checking it")
	return raw, nil
}

// Observe passes the order flow's refusal of the mail handed over on to
// its respond (see ObtainOptions.Observe).
func (m *PipeMail) Observe(e acmemail.Event) {
	if e.Kind == acmemail.EventIgnoredMail {
		m.srv.Reject(e.Message)
	}
}

// Send hands the reply to acmemail respond and waits until it says the
// reply was sent (or printed).
func (m *PipeMail) Send(ctx context.Context, from string, to []string, raw []byte) error {
	if err := m.srv.Send(ctx, from, to, raw); err != nil {
		return err
	}
	m.prog.Printf("acmemail respond sent the reply")
	return nil
}

// Close stops listening.
func (m *PipeMail) Close() error { return m.srv.Close() }

// Guard wraps the order flow's reply guard (for ObtainOptions.Guard):
// before a challenge is claimed as answered (acmemail.IsChallengeKey,
// right before the reply is handed over), it checks that the respond
// whose mail is being answered is still connected. A respond that went
// away could not send the reply: its challenge is left unanswered, and
// obtain stops without having spent it.
func (m *PipeMail) Guard(g acmemail.ReplyGuard) acmemail.ReplyGuard {
	return pipeGuard{g, m.srv}
}

type pipeGuard struct {
	acmemail.ReplyGuard
	srv *mailbox.PipeServer
}

func (g pipeGuard) Claim(key string) (bool, error) {
	if acmemail.IsChallengeKey(key) {
		if err := g.srv.Ready(); err != nil {
			return false, WithHint(fmt.Errorf("%w; the challenge was not answered", err),
				"run acmemail obtain --pipe again: it orders anew, and your mail filter hands the new challenge mail to acmemail respond as before")
		}
	}
	return g.ReplyGuard.Claim(key)
}

var _ acmemail.Mail = (*PipeMail)(nil)
