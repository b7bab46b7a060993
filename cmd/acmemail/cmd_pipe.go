package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
// needs acmemail stays here: which mail is a challenge at all, the
// rejections the order flow reports, and holding the challenge's claim
// until its respond is known to be still there.

// pipeSocketPath is where obtain --pipe for email listens.
func pipeSocketPath(stateDir, email string) (string, error) {
	p, err := mailbox.PipeSocketPath(stateDir, email)
	if errors.Is(err, mailbox.ErrSocketPathTooLong) {
		return "", withHint(err, "set ACMEMAIL_HOME to a shorter directory")
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

// pipeMail is the acmemail.Mail of obtain --pipe.
type pipeMail struct {
	srv    *mailbox.PipeServer
	printf func(format string, a ...any)
}

// listenPipe starts listening for acmemail respond on the socket of email
// in stateDir; printf prints progress lines. The caller closes it.
func listenPipe(stateDir, email string, printf func(format string, a ...any)) (*pipeMail, error) {
	path, err := pipeSocketPath(stateDir, email)
	if err != nil {
		return nil, err
	}
	srv, err := mailbox.ListenPipe(mailbox.PipeConfig{
		Path: path, PeerName: "acmemail respond", Screen: screenChallenge, MaxMessageSize: maxMailSize,
	})
	if errors.Is(err, mailbox.ErrPipeInUse) {
		return nil, withHint(fmt.Errorf("another acmemail obtain --pipe is already waiting for %s", email), "stop it first, or let it finish")
	}
	if err != nil {
		return nil, fmt.Errorf("listen for acmemail respond: %w", err)
	}
	printf("waiting for the challenge mail: have your mail filter pipe it to \"acmemail respond --smtp URL\" (or \"acmemail respond --print | sendmail -t -oi\")")
	return &pipeMail{srv: srv, printf: printf}, nil
}

func (m *pipeMail) Next(ctx context.Context) ([]byte, error) {
	raw, err := m.srv.Next(ctx)
	if err != nil {
		return nil, err
	}
	m.printf("acmemail respond handed over a mail; checking it")
	return raw, nil
}

func (m *pipeMail) observe(e acmemail.Event) {
	if e.Kind == acmemail.EventIgnoredMail {
		m.srv.Reject(e.Message)
	}
}

// Send hands the reply to acmemail respond and waits until it says the
// reply was sent (or printed).
func (m *pipeMail) Send(ctx context.Context, from string, to []string, raw []byte) error {
	if err := m.srv.Send(ctx, from, to, raw); err != nil {
		return err
	}
	m.printf("acmemail respond sent the reply")
	return nil
}

func (m *pipeMail) close() { m.srv.Close() }

// pipeGuard is the order flow's ReplyGuard in pipe mode: before a
// challenge is recorded as answered (acmemail's key "challenge <directory>
// <challenge URL>", claimed right before the reply is handed over), it
// checks that the respond whose mail is being answered is still connected.
// A respond that went away could not send the reply: its challenge is
// left unanswered, and obtain stops without having spent it.
type pipeGuard struct {
	acmemail.ReplyGuard
	srv *mailbox.PipeServer
}

func (g pipeGuard) Claim(key string) (bool, error) {
	if strings.HasPrefix(key, "challenge ") {
		if err := g.srv.Ready(); err != nil {
			return false, withHint(fmt.Errorf("%w; the challenge was not answered", err),
				"run acmemail obtain --pipe again: it orders anew, and your mail filter hands the new challenge mail to acmemail respond as before")
		}
	}
	return g.ReplyGuard.Claim(key)
}
