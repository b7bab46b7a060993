// Package acmemail obtains S/MIME certificates from an ACME (RFC 8555)
// certificate authority with the email-reply-00 challenge of RFC 8823: the
// CA mails a challenge to the address, and the client proves control of
// the mailbox by answering it.
//
// The package holds the RFC 8823 core, which is pure (bytes in, bytes out)
// and needs no network, and the order flow, [Client], built on the
// low-level client of github.com/mholt/acmez/v3/acme. It does not speak
// IMAP or SMTP itself: callers provide a [Mail] implementation, such as
// the IMAP watcher and SMTP sender of package mailbox, or an in-memory
// one in tests.
//
// # Challenge mail
//
// [ParseChallengeMail] reads the header of a challenge mail into a
// [ChallengeMail]: its From, To, Reply-To, Message-ID, Auto-Submitted and
// Date, and token-part1 from a Subject of the form "ACME: <token-part1>".
// The Subject may use RFC 2047 encoded-words and may be folded; whitespace
// inside the token is ignored and '=' padding is kept as received
// ([ParseSubjectToken]). Mail whose Subject has no "ACME:" is reported with
// [ErrNotChallenge], and a Subject with a reply prefix such as "Re:" with
// [ErrReplySubject]; both must be ignored. Parsing checks form only: the
// authenticity checks (DKIM or S/MIME, From equal to the challenge's from,
// To equal to the requested address) are made by the order flow.
//
// # Token and digest
//
// RFC 8823 joins token-part1 (mail Subject) and token-part2 (challenge
// object) without saying whether strings or octets are joined, and servers
// differ. [KeyAuthorization] does either ([JoinString], the default, or
// [JoinOctet]); [ResponseDigest] hashes the result. The vectors in
// testdata/token-join.json tell the two readings apart.
//
// # Response mail
//
// [ComposeReply] writes the response: From the requested address, To the
// challenge's Reply-To (else its From), Subject "Re: ACME: <token-part1>",
// In-Reply-To and References set to the challenge's Message-ID, a 7-bit
// text/plain body holding the digest between the BEGIN and END ACME
// RESPONSE lines, CRLF line endings. It must be sent through the user's
// own submission server, which DKIM-signs it. [ParseResponse] is the
// server side: it extracts the digest from such a body.
//
// # Certificate request
//
// [NewCSR] builds the PKCS#10 request: an empty subject, an rfc822Name
// subjectAltName per address, and a critical keyUsage chosen by
// [KeyUsageFor] from the key type and the requested [Usage] (signing,
// encryption or both). It adds no other extension, as some CAs reject them.
package acmemail
