package main

import (
	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

// The libraries never import each other: what cmd passes from one to
// another fits by method set alone. These fail to compile if that drifts.
var (
	_ acmemail.Mail         = (*mailbox.Mailbox)(nil)
	_ acmemail.MailExpecter = (*mailbox.Mailbox)(nil)
	_ acmemail.Mail         = (*mailbox.Multi)(nil)
	_ acmemail.MailExpecter = (*mailbox.Multi)(nil)
	_ acmemail.Mail         = (*mailbox.PipeServer)(nil)
	_ acmemail.ReplyGuard   = (*keystore.Store)(nil)
)
