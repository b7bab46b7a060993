package issuer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/mailbox"
)

// ErrNotAnswered is wrapped when [Respond] did not answer the mail: it is
// not an acceptable challenge, or no obtain --pipe waits for it.
var ErrNotAnswered = errors.New("the mail was not answered")

// RespondOptions configure [Respond].
type RespondOptions struct {
	// Email is the address whose obtain --pipe gets the mail; empty: the
	// first address in the mail's To that one waits for.
	Email string
	// StateDir returns the state directory the waiting obtain --pipe
	// listens in. It is called once the mail is read and looks like a
	// challenge.
	StateDir func() (string, error)
	// Print, if set, receives the reply (with LF line ends) for the
	// caller's mail transfer agent, e.g. sendmail -t -oi.
	Print io.Writer
	// Login, without Print, logs in to the submission server for the
	// address found and returns the sender of the reply; Respond closes
	// it. It is called before the mail is handed over, so a refused login
	// never costs the challenge.
	Login func(ctx context.Context, email string) (*mailbox.Sender, error)
	// Progress prints what happened (nil: nothing); Logger logs the reply
	// (nil: discarded).
	Progress Reporter
	Logger   *slog.Logger
}

// Respond answers the challenge mail read from in (at most the size of
// any mail acmemail takes) for acmemail respond: it hands the mail to the
// obtain --pipe that waits for its address, and for the genuine challenge
// sends the reply it gets back (or prints it to Print) and confirms that,
// upon which obtain asks the CA to validate. A mail that is not answered
// yields an error wrapping ErrNotAnswered, with the reason; a failure to
// send the reply, one wrapping a *MailError.
func Respond(ctx context.Context, in io.Reader, o RespondOptions) error {
	prog := reporter(o.Progress)
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if in == nil {
		in = strings.NewReader("")
	}
	raw, err := io.ReadAll(io.LimitReader(in, maxMailSize+1))
	if err != nil {
		return fmt.Errorf("read the mail from stdin: %w", err)
	}
	if len(raw) > maxMailSize {
		return fmt.Errorf("%w: it is longer than %d bytes", ErrNotAnswered, maxMailSize)
	}
	// Only to find the address: whether the mail is genuine is decided by
	// the waiting obtain.
	cm, err := acmemail.ParseChallengeMail(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotAnswered, err)
	}
	candidates := cm.To
	if o.Email != "" {
		candidates = []string{o.Email}
	}
	stateDir, err := o.StateDir()
	if err != nil {
		return err
	}
	notWaiting := WithHint(fmt.Errorf("%w: no acmemail obtain --pipe is waiting for %s", ErrNotAnswered, strings.Join(candidates, ", ")),
		"start \"acmemail obtain --pipe EMAIL\" first, with the same ACMEMAIL_HOME as this command")
	socket, email, err := waitingSocket(stateDir, candidates)
	if err != nil {
		return err
	}
	if socket == "" {
		return notWaiting
	}
	// Log in before the mail is handed over: a refused login must not
	// cost the challenge.
	var sender *mailbox.Sender
	if o.Print == nil {
		sender, err = o.Login(ctx, email)
		if err != nil {
			return err
		}
		defer sender.Close()
	}
	v, err := mailbox.HandOver(ctx, socket, raw)
	if errors.Is(err, mailbox.ErrPipeNotListening) {
		return notWaiting
	}
	if err != nil {
		return fmt.Errorf("acmemail obtain did not answer: %w", err)
	}
	defer v.Close()
	switch v.Verdict {
	case mailbox.VerdictAccepted:
	case mailbox.VerdictRejected, mailbox.VerdictNotWanted:
		return fmt.Errorf("%w: %s", ErrNotAnswered, v.Reason)
	default:
		return fmt.Errorf("acmemail obtain: %s", v.Reason)
	}
	prog.Printf("the waiting acmemail obtain accepted the challenge mail for %s", email)
	log.Info("reply", "from", v.From, "to", v.To, "size", len(v.Reply))

	ack := v.Confirm
	if o.Print != nil {
		if _, err := io.WriteString(o.Print, lfLines(v.Reply)); err != nil {
			ack(err)
			return fmt.Errorf("write the reply: %w", err)
		}
		if err := ack(nil); err != nil {
			return fmt.Errorf("tell acmemail obtain the reply was printed: %w", err)
		}
		prog.Printf("printed the reply to %s; acmemail obtain asks the CA to validate shortly", strings.Join(v.To, ", "))
		return nil
	}
	if err := sender.Send(ctx, v.From, v.To, v.Reply); err != nil {
		ack(err)
		return fmt.Errorf("%w (the challenge is recorded as answered; acmemail obtain stops, start a new order)",
			&MailError{Op: "send the reply", SMTP: true, Err: err})
	}
	if err := ack(nil); err != nil {
		return fmt.Errorf("tell acmemail obtain the reply was sent: %w", err)
	}
	prog.Printf("sent the reply to %s; acmemail obtain asks the CA to validate", strings.Join(v.To, ", "))
	return nil
}

// waitingSocket returns the socket of the first of the addresses for
// which an obtain --pipe listens in stateDir, and that address
// (normalized); "" when none does. Addresses that are not mail
// addresses are skipped.
func waitingSocket(stateDir string, addrs []string) (socket, email string, err error) {
	for _, addr := range addrs {
		if strings.HasPrefix(addr, "*") {
			continue
		}
		addr, err := acmemail.NormalizeAddress(addr)
		if err != nil {
			continue
		}
		path, err := PipeSocketPath(stateDir, addr)
		if err != nil {
			return "", "", err
		}
		if _, err := os.Stat(path); err == nil {
			return path, addr, nil
		}
	}
	return "", "", nil
}
