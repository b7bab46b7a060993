package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
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

// externalMail is an acmemail.Mail that does not use IMAP and SMTP
// (issuer.ManualMail, issuer.PipeMail). It also watches the order flow's
// progress events, which tell it whether a mail it handed over was
// refused and why.
type externalMail interface {
	acmemail.Mail
	Observe(acmemail.Event)
	Close() error
}

// openExternal prepares --manual or --pipe for one obtain run.
func openExternal(g *globals, prog *progress, stateDir, email string, e *externalFlags) (externalMail, error) {
	if e.manual {
		if e.challengeFile == "" && g.stdin == nil {
			return nil, usageErrorf("--manual needs the challenge mail on stdin or --challenge-file")
		}
		return issuer.NewManualMail(g.stdin, g.stderr, issuer.ManualOptions{
			Email: email, File: e.challengeFile, Yes: e.yes, Progress: prog,
		}), nil
	}
	m, err := issuer.ListenPipe(stateDir, email, prog)
	if err != nil {
		return nil, err
	}
	return m, nil
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

// inputEndedHint says what running obtain --manual or --pipe again does
// after its input ended, as the recorded order state decides it.
func inputEndedHint(ie *issuer.InputEndedError) string {
	switch {
	case !ie.Ordered:
		return "run the same command again: nothing was ordered yet, and a key already made is kept"
	case ie.Answered:
		return "run the same command again to continue: the order and key are kept, and the CA was already asked to validate, so send the reply above if you have not (if the CA failed it meanwhile, a new order is made; a challenge is never answered twice)"
	}
	return "run the same command again: it starts a new order, with the same key, and the CA sends a new challenge mail: give that one, not this order's (a challenge is never answered twice)"
}
