package issuer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/mailbox"
)

// maxMailSize bounds a challenge mail that does not come over IMAP: the
// paste, the file it was saved to, the mail a filter hands to respond.
const maxMailSize = mailbox.DefaultMaxMessageSize

// Manual mode (obtain --manual) needs neither IMAP nor SMTP: the user
// pastes the challenge mail (or saves it to a file), acmemail checks it
// exactly as one read over IMAP, prints the reply for the user to send,
// and asks the CA to validate once the user confirms it was sent.

// ManualReplyBegin and ManualReplyEnd enclose the reply a [ManualMail]
// prints, each on a line of its own.
const (
	ManualReplyBegin = "----- reply mail: send it as is -----"
	ManualReplyEnd   = "----- end of reply mail -----"
)

// ManualOptions configure a [ManualMail].
type ManualOptions struct {
	Email string // the address the challenge mail goes to
	// File, if set, is where the user saves the challenge mail; a line on
	// the input says it is there. Else the mail is pasted on the input.
	File string
	// Yes: Send prints the reply and returns at once, without waiting
	// for the user to confirm it was sent.
	Yes bool
	// Progress prints the instructions; nil prints none.
	Progress Reporter
}

// ManualMail is the acmemail.Mail of obtain --manual: Next reads the
// challenge mail the user pastes (or saves to ManualOptions.File), Send
// prints the reply for the user to send and waits for the confirmation.
// Give its Observe to ObtainOptions.Observe: it reads nothing before the
// order flow waits for the mail, and learns from the flow's events that
// a mail it handed over was refused.
type ManualMail struct {
	in   *bufio.Reader
	out  io.Writer
	prog Reporter
	o    ManualOptions

	once     sync.Once
	waiting  chan struct{} // closed when the order flow waits for the mail
	rejected chan string   // why the mail handed over was refused
	handed   bool          // Next returned a mail (owned by Next's caller)
}

// NewManualMail reads the user's input (the paste, the Enter that says
// the file is saved, the confirmation) from in and prints the reply to
// out; a nil in has ended.
func NewManualMail(in io.Reader, out io.Writer, o ManualOptions) *ManualMail {
	if in == nil {
		in = strings.NewReader("")
	}
	return &ManualMail{
		in: bufio.NewReader(in), out: out, prog: reporter(o.Progress), o: o,
		waiting: make(chan struct{}), rejected: make(chan string, 1),
	}
}

// Observe watches the order flow's events (see ObtainOptions.Observe).
func (m *ManualMail) Observe(e acmemail.Event) {
	switch e.Kind {
	case acmemail.EventWaitingForMail:
		m.once.Do(func() { close(m.waiting) })
	case acmemail.EventIgnoredMail:
		select {
		case m.rejected <- e.Message:
		default:
		}
	}
}

// Close releases nothing: the input belongs to the caller.
func (m *ManualMail) Close() error { return nil }

// Next waits until the order flow waits for the mail, prints the
// instructions and returns the first mail given that looks like a
// challenge; a pasted mail that does not is asked for again. Called
// again, it waits for the verdict on the mail before, and after a
// refusal asks for the mail again (from a file: fails).
func (m *ManualMail) Next(ctx context.Context) ([]byte, error) {
	select {
	case <-m.waiting:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if m.handed {
		// The order flow goes on reading while it checks the mail given
		// before: wait for its verdict. An accepted mail leads to Send,
		// and this call waits until the flow ends.
		select {
		case <-m.rejected:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if m.o.File != "" {
			return nil, fmt.Errorf("the mail in %s is not an acceptable challenge (see above); nothing was sent", m.o.File)
		}
		m.prog.Printf("that mail was not accepted (see above); paste the genuine challenge mail again, or press Ctrl-C")
	} else {
		m.instructions()
	}
	for {
		raw, err := m.read()
		if err != nil {
			return nil, err
		}
		if _, err := acmemail.ParseChallengeMail(raw); errors.Is(err, acmemail.ErrNotChallenge) {
			if m.o.File != "" {
				return nil, fmt.Errorf("%s is not an RFC 8823 challenge mail (%v); save the whole mail, headers included", m.o.File, err)
			}
			m.prog.Printf("that is not an RFC 8823 challenge mail (%v); paste the whole mail, headers included", err)
			continue
		}
		m.handed = true
		return raw, nil
	}
}

func (m *ManualMail) instructions() {
	m.prog.Printf("the challenge mail to %s has the Subject \"ACME: <token>\"; when it arrives, open it in your mail program", m.o.Email)
	m.prog.Printf("and show its source (\"Show original\", \"View source\"): the whole mail, headers included, is needed")
	if m.o.File != "" {
		m.prog.Printf("save that source as %s, then press Enter", m.o.File)
	} else {
		m.prog.Printf("paste it here and end with a line holding only \".\" (or Ctrl-D)")
	}
}

// read returns one challenge mail: the file's content after a line of
// input, or the input up to a line holding only "." or its end.
func (m *ManualMail) read() ([]byte, error) {
	if m.o.File != "" {
		if _, err := m.in.ReadString('\n'); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		data, err := readMailFile(m.o.File)
		if err != nil {
			return nil, fmt.Errorf("--challenge-file: %w", err)
		}
		return data, nil
	}
	var buf bytes.Buffer
	for {
		line, err := m.in.ReadString('\n')
		if t := strings.TrimRight(line, "\r\n"); t == "." && err == nil {
			break
		}
		buf.WriteString(line)
		if buf.Len() > maxMailSize {
			return nil, fmt.Errorf("the pasted mail is longer than %d bytes", maxMailSize)
		}
		if errors.Is(err, io.EOF) {
			if buf.Len() == 0 {
				return nil, errors.New("no challenge mail on stdin (it ended)")
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// readMailFile reads a saved mail of at most maxMailSize bytes.
func readMailFile(path string) ([]byte, error) {
	return readRegular(path, maxMailSize)
}

// Send prints the reply (with LF line ends, between ManualReplyBegin and
// ManualReplyEnd) and waits for the user to say it was sent: an empty
// line or yes; anything else, or the end of the input, fails.
func (m *ManualMail) Send(ctx context.Context, from string, to []string, raw []byte) error {
	m.prog.EndLive()
	m.prog.Printf("the challenge mail is genuine. Send this reply from %s to %s, before acmemail asks the CA to check it:", from, strings.Join(to, ", "))
	m.prog.Printf("save it to a file and run \"sendmail -t -oi < FILE\" through your provider, or write a new mail with this To, Subject and the three body lines")
	fmt.Fprintf(m.out, "%s\n%s%s\n", ManualReplyBegin, lfLines(raw), ManualReplyEnd)
	if m.o.Yes {
		m.prog.Printf("--yes: not waiting for a confirmation")
		return nil
	}
	m.prog.Printf("once it is sent, press Enter (or type \"abort\" to stop without asking the CA to validate)")
	line, err := m.in.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		return fmt.Errorf("no confirmation that the reply was sent (stdin ended; use --yes in scripts)")
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "", "y", "yes", "sent", "ok":
		return nil
	}
	return errors.New("you did not confirm that the reply was sent; stopped")
}

// lfLines is a mail as a local mail transfer agent (sendmail -t -oi)
// and a person read it: with LF line ends.
func lfLines(raw []byte) string { return strings.ReplaceAll(string(raw), "\r\n", "\n") }

var _ acmemail.Mail = (*ManualMail)(nil)
