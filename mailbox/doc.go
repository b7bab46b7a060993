// Package mailbox watches an IMAP mailbox for new messages and submits
// messages over SMTP. It moves raw RFC 5322 bytes in and out and knows
// nothing about what they contain.
//
// # Endpoints
//
// [ParseIMAPURL] and [ParseSMTPURL] turn user input into an [Endpoint]:
//
//	imaps://mail.example.org        implicit TLS, port 993
//	imap://mail.example.org         STARTTLS, port 143
//	smtps://mail.example.org        implicit TLS, port 465
//	smtp://mail.example.org         STARTTLS, port 587
//	mail.example.org:587            bare host:port: implicit TLS on 993/465, STARTTLS otherwise
//	imap+insecure://127.0.0.1:1143  plaintext, for local test servers only
//
// # Discovery
//
// [Discover] finds the servers for an address when the user did not name
// them: SRV records (RFC 6186, RFC 8314), then the domain's autoconfig
// documents over verified HTTPS, then the usual host names if they
// answer. It returns only TLS or STARTTLS endpoints and says where each
// came from. Its resolver, HTTP client and dialer are injectable.
//
// # Security
//
// Credentials are only ever sent over TLS (implicit or STARTTLS; a server
// that does not offer STARTTLS is refused), with certificate verification.
// The one exception is a plaintext endpoint (Security [Insecure]) with
// AllowInsecure set in the configuration, and then only when the host
// resolves to loopback addresses only; anything else is refused before a
// byte is sent. Errors and logs never contain the password, and the
// optional protocol trace (DebugWriter) has the authentication exchange
// redacted.
//
// # Watching
//
// [Watch] logs in, selects the mailbox and records UIDNEXT;
// [Watcher.Next] then returns each message that arrives afterwards, once,
// in UID order, without marking it as seen. New mail is noticed through
// IDLE when the server supports it, by polling otherwise. Messages larger
// than IMAPConfig.MaxMessageSize (10 MiB by default) are skipped.
//
// # Logging in
//
// With a password, IMAP uses LOGIN (AUTHENTICATE PLAIN when the server
// disables LOGIN) and SMTP uses AUTH PLAIN (LOGIN when PLAIN is not
// offered). With Credentials.OAuthToken set, both use OAUTHBEARER (RFC
// 7628) when the server offers it, else XOAUTH2 (Gmail, Microsoft 365),
// fetching a fresh token for every login. Credentials.Mechanism forces a
// mechanism.
//
// # Sending
//
// [Sender.Send] submits one message. Call
// [Sender.Prepare] ahead of time to have an authenticated session ready,
// so that a time-critical Send only needs MAIL FROM, RCPT TO and DATA.
//
// # Mailboxes
//
// [Mailbox] joins a Watcher and a Sender into the one value an order flow
// reads mail from and replies through (the method set of acmemail's Mail
// and MailExpecter). [Multi] reads several mailboxes as one, for addresses
// that live in different mailboxes, and sends each reply through the
// mailbox of its From address.
//
// # Pipe
//
// Where a mail filter, not IMAP, delivers the mail, the program it runs
// hands each mail to a waiting process over a Unix socket: [HandOver] on
// one side, [PipeServer] (from [ListenPipe]) on the other, which also has
// Next and Send. The server serves every connection on its own goroutine
// with bounded time, and reports through [PipeServer.Ready] whether the
// peer of the mail being answered is still there.
package mailbox
