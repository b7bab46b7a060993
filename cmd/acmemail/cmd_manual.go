package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/acmemail/acmemail/acmemail"
)

// externalFlags select obtain's modes without IMAP and SMTP: --manual (the
// user pastes the challenge mail and sends the reply) and --pipe (a mail
// filter hands the challenge mail to acmemail respond).
type externalFlags struct {
	manual        bool
	challengeFile string
	yes           bool
	pipe          bool
	mailWaitSet   bool // --mail-wait was given explicitly
}

func (e *externalFlags) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&e.manual, "manual", false, "no IMAP or SMTP: paste the challenge mail (or give --challenge-file), send the printed reply yourself, then confirm")
	f.StringVar(&e.challengeFile, "challenge-file", "", "with --manual: read the challenge mail from this file (saved with its headers) instead of stdin")
	f.BoolVar(&e.yes, "yes", false, "with --manual: ask the CA to validate right after printing the reply, without waiting for a confirmation (for CAs that keep looking for the reply after that)")
	f.BoolVar(&e.pipe, "pipe", false, "no IMAP or SMTP: wait for 'acmemail respond', run by your mail filter, to hand over the challenge mail and send the reply")
}

func (e *externalFlags) active() bool { return e.manual || e.pipe }

func (e *externalFlags) check(server string) error {
	switch {
	case e.manual && e.pipe:
		return usageErrorf("--manual and --pipe exclude each other")
	case !e.manual && (e.challengeFile != "" || e.yes):
		return usageErrorf("--challenge-file and --yes need --manual")
	case e.active() && server == "sandbox":
		// Its mailbox has a password only this process knows: nobody
		// could read the challenge mail or send the reply.
		return withHint(usageErrorf("--manual and --pipe need a mailbox you can reach; the in-process sandbox's is not"),
			"run \"acmemail sandbox --dir DIR\" and give --server its directory URL (its roots and passwords are in DIR)")
	}
	return nil
}

// externalMail is an acmemail.Mail that does not use IMAP and SMTP. It
// also watches the order flow's progress events, which tell it whether a
// mail it handed over was refused and why.
type externalMail interface {
	acmemail.Mail
	observe(acmemail.Event)
	close()
}

// openExternal prepares --manual or --pipe for the session.
func openExternal(ctx context.Context, g *globals, prog *progress, stateDir, email string, e *externalFlags) (externalMail, error) {
	if e.manual {
		if e.challengeFile == "" && g.stdin == nil {
			return nil, usageErrorf("--manual needs the challenge mail on stdin or --challenge-file")
		}
		m := &manualMail{
			in: bufio.NewReader(g.stdin), out: g.stderr, prog: prog, email: email,
			file: e.challengeFile, yes: e.yes,
			waiting: make(chan struct{}), rejected: make(chan string, 1),
		}
		return m, nil
	}
	return listenPipe(stateDir, email, prog.printf)
}

// manualMail reads the challenge mail from stdin or a file and prints the
// reply for the user to send.
type manualMail struct {
	in    *bufio.Reader
	out   io.Writer
	prog  *progress
	email string
	file  string
	yes   bool

	once     sync.Once
	waiting  chan struct{} // closed when the order flow waits for the mail
	rejected chan string   // why the mail handed over was refused
	handed   bool          // Next returned a mail (owned by Next's caller)
}

func (m *manualMail) observe(e acmemail.Event) {
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

func (m *manualMail) close() {}

func (m *manualMail) Next(ctx context.Context) ([]byte, error) {
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
		if m.file != "" {
			return nil, fmt.Errorf("the mail in %s is not an acceptable challenge (see above); nothing was sent", m.file)
		}
		m.prog.printf("that mail was not accepted (see above); paste the genuine challenge mail again, or press Ctrl-C")
	} else {
		m.instructions()
	}
	for {
		raw, err := m.read()
		if err != nil {
			return nil, err
		}
		if _, err := acmemail.ParseChallengeMail(raw); errors.Is(err, acmemail.ErrNotChallenge) {
			if m.file != "" {
				return nil, fmt.Errorf("%s is not an RFC 8823 challenge mail (%v); save the whole mail, headers included", m.file, err)
			}
			m.prog.printf("that is not an RFC 8823 challenge mail (%v); paste the whole mail, headers included", err)
			continue
		}
		m.handed = true
		return raw, nil
	}
}

func (m *manualMail) instructions() {
	m.prog.printf("the challenge mail to %s has the Subject \"ACME: <token>\"; when it arrives, open it in your mail program", m.email)
	m.prog.printf("and show its source (\"Show original\", \"View source\"): the whole mail, headers included, is needed")
	if m.file != "" {
		m.prog.printf("save that source as %s, then press Enter", m.file)
	} else {
		m.prog.printf("paste it here and end with a line holding only \".\" (or Ctrl-D)")
	}
}

// read returns one challenge mail: the file's content after a line on
// stdin, or stdin up to a line holding only "." or the end.
func (m *manualMail) read() ([]byte, error) {
	if m.file != "" {
		if _, err := m.in.ReadString('\n'); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		data, err := readLimited(m.file)
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
				return nil, errors.New("no challenge mail on stdin (it ended); paste the mail, or use --challenge-file")
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
	}
	return buf.Bytes(), nil
}

const maxMailSize = 10 << 20

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMailSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxMailSize {
		return nil, fmt.Errorf("%s is longer than %d bytes", path, maxMailSize)
	}
	return data, nil
}

// replyBegin and replyEnd enclose the reply printed in manual mode.
const (
	replyBegin = "----- reply mail: send it as is -----"
	replyEnd   = "----- end of reply mail -----"
)

// Send prints the reply and waits for the user to say it was sent.
func (m *manualMail) Send(ctx context.Context, from string, to []string, raw []byte) error {
	m.prog.endLive()
	m.prog.printf("the challenge mail is genuine. Send this reply from %s to %s, before acmemail asks the CA to check it:", from, strings.Join(to, ", "))
	m.prog.printf("save it to a file and run \"sendmail -t -oi < FILE\" through your provider, or write a new mail with this To, Subject and the three body lines")
	text := strings.ReplaceAll(string(raw), "\r\n", "\n")
	fmt.Fprintf(m.out, "%s\n%s%s\n", replyBegin, text, replyEnd)
	if m.yes {
		m.prog.printf("--yes: not waiting for a confirmation")
		return nil
	}
	m.prog.printf("once it is sent, press Enter (or type \"abort\" to stop without asking the CA to validate)")
	line, err := m.in.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		return fmt.Errorf("no confirmation that the reply was sent (stdin ended; use --yes in scripts)")
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "", "y", "yes", "sent", "ok":
		return nil
	}
	return errors.New("you did not confirm that the reply was sent, so the CA was not asked to validate; start a new order when you are ready")
}

// manualMailWait is the mail wait of --manual when --mail-wait is not
// given: a person takes longer than the default to paste the mail, and a
// CA that mails at once (most do) would fail a challenge POSTed before the
// reply was sent.
func manualMailWait(timeout time.Duration) time.Duration {
	if timeout > 0 {
		return timeout
	}
	return 24 * time.Hour
}
