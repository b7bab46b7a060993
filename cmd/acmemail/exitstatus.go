package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// The EXIT STATUS of each command's help and man page comes from these
// tables: what each status means, and what it means to a command that
// says it otherwise. exitCode (errors.go) maps errors to the statuses.

// exitMeaning is what each exit status means.
var exitMeaning = map[int]string{
	exitOK:          "success",
	exitError:       "an error not covered below",
	exitUsage:       "usage error: bad flags, arguments or configuration",
	exitMailAuth:    "the mail server refused the login (IMAP or SMTP)",
	exitMailTimeout: "no acceptable challenge mail arrived in time",
	exitCA:          "the CA refused the request, the validation failed, or its certificate was refused",
	exitSomeFailed:  "renew: at least one certificate could not be renewed (the others were renewed or not due; stderr says which and why)",
	exitHookFailed:  "the certificate was saved, but the --deploy-hook command failed",
	exitLocked:      "another acmemail run is working on the same address (see --wait-lock)",
	exitInterrupted: "interrupted by SIGINT (Ctrl-C)",
	exitTerminated:  "terminated by SIGTERM",
}

// exitStatuses are the statuses a command can return, and what a status
// means to it where that is more particular than exitMeaning.
type exitStatuses struct {
	codes []int
	say   map[int]string
}

// commandExits holds the commands (by path after "acmemail") whose
// statuses are not all of exitMeaning.
var commandExits = map[string]exitStatuses{
	"doctor": {
		codes: []int{exitOK, exitError, exitUsage, exitInterrupted, exitTerminated},
		say: map[int]string{
			exitOK:    "every check passed (warnings allowed)",
			exitError: `at least one check failed (see its "fix:" line), or another error`,
		},
	},
	"respond": {
		codes: []int{exitOK, exitError, exitUsage, exitMailAuth, exitMailTimeout, exitInterrupted, exitTerminated},
		say: map[int]string{
			exitOK:          "the reply was sent (--smtp) or printed (--print)",
			exitMailAuth:    "the submission server refused the login",
			exitMailTimeout: `the mail was not answered: it is not an acceptable challenge (the reason is on stderr), or no "acmemail obtain --pipe" is waiting for its address`,
		},
	},
}

// exitLine is one status of a command's EXIT STATUS.
type exitLine struct {
	code    int
	meaning string
}

// exitLines are the statuses c documents, in order; none for a command
// that is not documented (cobra's help, hidden commands).
func exitLines(c *cobra.Command) []exitLine {
	if c.Hidden || c.Name() == "help" {
		return nil
	}
	st := commandExits[strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), c.Root().Name()), " ")]
	codes := st.codes
	if codes == nil {
		for code := range exitMeaning {
			codes = append(codes, code)
		}
	}
	codes = slices.Sorted(slices.Values(codes))
	lines := make([]exitLine, 0, len(codes))
	for _, code := range codes {
		m, ok := st.say[code]
		if !ok {
			m = exitMeaning[code]
		}
		lines = append(lines, exitLine{code, m})
	}
	return lines
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
	const indent = "       " // "  130  "
	for _, l := range lines {
		fmt.Fprintf(&b, "\n  %-3d  ", l.code)
		col := len(indent)
		for i, w := range strings.Fields(l.meaning) {
			if i > 0 && col+1+len(w) > 80 {
				b.WriteString("\n" + indent)
				col = len(indent)
			} else if i > 0 {
				b.WriteByte(' ')
				col++
			}
			b.WriteString(w)
			col += len(w)
		}
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
