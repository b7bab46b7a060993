package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/acmemail/acmemail/cmd/internal/termout"
	"github.com/spf13/cobra"
)

// The EXIT STATUS of each command's help and man page comes from these
// tables: what each status means, and which statuses each command can
// return (and what one means to it, where it says more). exitCode
// (errors.go) maps errors to the statuses; a command's list follows from
// which errors its code paths can return.

// exitMeaning is what each exit status means.
var exitMeaning = map[int]string{
	exitOK:          "success",
	exitError:       "any other error (stderr says which)",
	exitUsage:       "usage error: bad flags, arguments or configuration",
	exitMailAuth:    "the mail server refused the login (IMAP or SMTP)",
	exitMailTimeout: "no acceptable challenge mail arrived in time",
	exitCA:          "the CA refused the request, the validation failed, or the certificate the CA issued was refused (wrong key, addresses or key usage; nothing is saved)",
	exitSomeFailed:  "renew: at least one certificate could not be renewed, or its deploy hook failed (the others were renewed or not due; stderr says which and why)",
	exitHookFailed:  "the certificate was saved, but the --deploy-hook command failed",
	exitLocked:      "another acmemail run is working on the same address (see --wait-lock)",
	exitInterrupted: "interrupted by SIGINT (Ctrl-C)",
	exitTerminated:  "terminated by SIGTERM",
}

// exitStatuses are the statuses a command can return, and what a status
// means to it where that is more particular than exitMeaning. A command
// that only groups others (acmemail, account) has no codes of its own: it
// documents those of its commands.
type exitStatuses struct {
	codes []int
	say   map[int]string
}

// Statuses most commands share: every command can meet a usage error (a
// flag, the configuration file) or another error; one that waits on the
// network, a mail server, a password command or a CA stops on a signal
// (the others finish first: the signals are caught).
var (
	exitsLocal       = []int{exitOK, exitError, exitUsage}
	exitsInterrupted = []int{exitInterrupted, exitTerminated}
	exitsAccount     = exitStatuses{
		codes: slices.Concat(exitsLocal, []int{exitCA}, exitsInterrupted),
		say:   map[int]string{exitCA: "the CA refused the request"},
	}
)

// commandExits holds the statuses of each command, by its path after
// "acmemail" ("" is acmemail itself).
var commandExits = map[string]exitStatuses{
	"": {say: map[int]string{
		exitMailTimeout: "no acceptable challenge mail arrived in time (respond: the mail was not answered)",
	}},
	// Mail login (3) and mail wait (4) through the mailbox, the CA (5)
	// through the order, the hook (7) once the certificate is saved, the
	// identity's lock (8) before anything is sent.
	"obtain": {codes: slices.Concat(exitsLocal, []int{exitMailAuth, exitMailTimeout, exitCA, exitHookFailed, exitLocked}, exitsInterrupted)},
	// Each address's failure, its hook's included, counts in 6; one
	// locked by another run is skipped, unless it was named: then 8.
	"renew": {
		codes: slices.Concat(exitsLocal, []int{exitSomeFailed, exitLocked}, exitsInterrupted),
		say: map[int]string{
			exitOK:         "nothing failed, whether or not anything was due",
			exitSomeFailed: "at least one certificate could not be renewed, or its deploy hook failed (the others were renewed or not due; stderr says which and why)",
			exitLocked:     "every address that failed was named and another acmemail run is working on it (see --wait-lock); without EMAIL such an address is skipped",
		},
	},
	// A check that fails is a line of the report, and 1.
	"doctor": {
		codes: slices.Concat(exitsLocal, exitsInterrupted),
		say: map[int]string{
			exitOK:    "every check passed (warnings allowed)",
			exitError: `at least one check failed (see its "fix:" line), or another error`,
		},
	},
	"respond": {
		codes: slices.Concat(exitsLocal, []int{exitMailAuth, exitMailTimeout}, exitsInterrupted),
		say: map[int]string{
			exitOK:          "the reply was sent (--smtp) or printed (--print)",
			exitMailAuth:    "the submission server refused the login",
			exitMailTimeout: `the mail was not answered: it is not an acceptable challenge (the reason is on stderr), or no "acmemail obtain --pipe" is waiting for its address`,
		},
	},
	"revoke": {
		codes: slices.Concat(exitsLocal, []int{exitCA}, exitsInterrupted),
		say: map[int]string{
			exitCA: "the CA refused the revocation (also alreadyRevoked, when every certificate asked for was revoked before)",
		},
	},
	// It runs until a signal or --duration ends it: that is success.
	// With --mail-address it logs in to a real mail system first.
	"sandbox": {
		codes: slices.Concat(exitsLocal, []int{exitMailAuth}, exitsInterrupted),
		say: map[int]string{
			exitOK:          "stopped by SIGINT (Ctrl-C), SIGTERM or the end of --duration",
			exitMailAuth:    "the mail system of --mail-address refused the login",
			exitInterrupted: "interrupted by SIGINT (Ctrl-C) before the sandbox was running",
			exitTerminated:  "terminated by SIGTERM before the sandbox was running",
		},
	},
	// The keyring only; a --password-command can be interrupted.
	"login":              {codes: slices.Concat(exitsLocal, exitsInterrupted)},
	"account":            {say: exitsAccount.say},
	"account register":   exitsAccount,
	"account show":       exitsAccount,
	"account rollover":   exitsAccount,
	"account deactivate": exitsAccount,
	// The state directory and the configuration file only. A
	// certificate whose files cannot be read is 1 once the others are
	// printed.
	"list": {codes: exitsLocal, say: map[int]string{
		exitOK:    "success, pending addresses included",
		exitError: "the files of at least one certificate cannot be read (its state is broken; the others are listed, stderr says which file and what is wrong), or another error",
	}},
	"show": {codes: exitsLocal, say: map[int]string{
		exitOK:    "success, a pending address included",
		exitError: "the files of the certificate, or of the encryption certificate of its pair, cannot be read (its state is broken; stderr says which file and what is wrong), or another error",
	}},
	"export": {codes: exitsLocal},
	"forget": {codes: slices.Concat(exitsLocal, []int{exitLocked}, exitsInterrupted), say: map[int]string{
		exitUsage:       "usage error, or not confirmed (without a terminal: no --yes); nothing was changed",
		exitInterrupted: "interrupted by SIGINT (Ctrl-C), at the question too; nothing was changed",
	}},
	"server":        {say: map[int]string{exitCA: "the CA refused the request, the validation failed, or its certificate was refused (wrong names, no serverAuth, a key usage unfit for the key; nothing is saved or installed)"}},
	"server obtain": {codes: slices.Concat(exitsLocal, []int{exitCA, exitHookFailed, exitLocked}, exitsInterrupted), say: map[int]string{exitHookFailed: "the certificate was saved, but --install or the --deploy-hook command failed"}},
	"server renew":  {codes: slices.Concat(exitsLocal, []int{exitSomeFailed}, exitsInterrupted)},
	"server list":   {codes: exitsLocal}, "server show": {codes: exitsLocal}, "server export": {codes: exitsLocal},
	"server revoke": {codes: slices.Concat(exitsLocal, []int{exitCA}, exitsInterrupted), say: map[int]string{exitCA: "the CA refused the revocation (alreadyRevoked: it was revoked before)"}},
	"server doctor": {codes: slices.Concat(exitsLocal, exitsInterrupted), say: map[int]string{exitOK: "every check passed (warnings allowed)", exitError: `at least one check failed (see its "fix:" line), or another error`}},
	"config":        {codes: exitsLocal},
	"completion":    {codes: exitsLocal},
	"version":       {codes: exitsLocal},
}

// exitKey is c's key in commandExits: its path after the root's name.
func exitKey(c *cobra.Command) string {
	return strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), c.Root().Name()), " ")
}

// documented reports whether c has help and a man page of its own: not
// cobra's help command, nor a hidden one.
func documented(c *cobra.Command) bool {
	return !c.Hidden && c.Name() != "help"
}

// exitLine is one status of a command's EXIT STATUS.
type exitLine struct {
	code    int
	meaning string
}

// exitCodes are the statuses c can return, in order: its own, or for a
// command that groups others, those of its commands.
func exitCodes(c *cobra.Command) []int {
	codes := commandExits[exitKey(c)].codes
	if codes == nil {
		for _, sub := range c.Commands() {
			if documented(sub) {
				codes = append(codes, exitCodes(sub)...)
			}
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(codes)))
}

// exitLines are the statuses c documents with their meanings; none for a
// command that is not documented, or not in commandExits.
func exitLines(c *cobra.Command) []exitLine {
	st, ok := commandExits[exitKey(c)]
	if !documented(c) || !ok {
		return nil
	}
	var lines []exitLine
	for _, code := range exitCodes(c) {
		m, ok := st.say[code]
		if !ok {
			m = exitMeaning[code]
		}
		lines = append(lines, exitLine{code, m})
	}
	return lines
}

// exitIntro is the sentence before the statuses of a command that groups
// others, "" for any other.
func exitIntro(c *cobra.Command) string {
	if commandExits[exitKey(c)].codes != nil {
		return ""
	}
	return "The statuses of the " + c.CommandPath() + " commands; each one's --help lists those it can return."
}

// exitStatusHelp is the EXIT STATUS section of c's --help, the meanings
// wrapped to fit 80 columns.
func exitStatusHelp(c *cobra.Command) string {
	lines := exitLines(c)
	if len(lines) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("EXIT STATUS")
	if intro := exitIntro(c); intro != "" {
		b.WriteString("\n  " + termout.Wrap(intro, "  "))
	}
	for _, l := range lines {
		fmt.Fprintf(&b, "\n  %-3d  %s", l.code, termout.Wrap(l.meaning, "       ")) // "  130  "
	}
	return b.String()
}

// helpTemplate is cobra's, with the EXIT STATUS section after the
// description.
const helpTemplate = `{{with (or .Long .Short)}}{{. | trimTrailingWhitespaces}}

{{end}}{{with exitStatusHelp .}}{{.}}

{{end}}{{if or .Runnable .HasSubCommands}}{{.UsageString}}{{end}}`

func init() {
	cobra.AddTemplateFunc("exitStatusHelp", exitStatusHelp)
}
