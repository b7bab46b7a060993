package main

import (
	"io"

	"github.com/acmemail/acmemail/cmd/internal/termout"
)

// protocolTrace returns where the raw IMAP or SMTP protocol goes at -vv:
// stderr, each line prefixed with "acmemail: imap| ". The mailbox package
// has already redacted the login exchange and masked the secrets. At lower
// verbosity it returns nil (no trace).
func (g *globals) protocolTrace(proto string) io.Writer {
	if g.verbose < 2 {
		return nil
	}
	return termout.NewPrefixWriter(g.stderr, "acmemail: "+proto+"| ")
}
