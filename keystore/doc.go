// Package keystore keeps acmemail's state on disk: ACME account keys and
// registrations, certificate keys and chains, PKCS #12 exports, and the
// records that make sure a challenge is never answered twice.
//
// It knows nothing about mail or the ACME protocol flow, and reads no
// environment variables except through the getenv argument of
// [DefaultDir].
//
// # Layout
//
//	<state dir>/                           0700  DefaultDir; Open removes group/world bits
//	├── accounts/                          0700
//	│   └── <host>_<port>_<hash>/          0700  one per ACME directory URL
//	│       ├── account.key                0600  PKCS #8 PEM, P-256 by default
//	│       └── account.json               0600  {directory, url, contact, created}
//	├── certificates/                      0700
//	│   └── <email>/                       0700  local part as given, domain lowercased
//	│       ├── pending-key.pem            0600  key for the next certificate (CertKey)
//	│       ├── pending-key.pem.corrupt-<time>  one that did not parse, kept (CertKey)
//	│       ├── key.pem                    0600  key of the installed certificate
//	│       ├── chain.pem                  0600  installed chain, leaf first
//	│       ├── cert.pem                   0600  installed leaf alone (derived from chain.pem)
//	│       ├── meta.json                  0600  CertMeta
//	│       ├── cert.p12                   0600  PKCS #12 export (WritePKCS12, SaveCertificateWithPKCS12)
//	│       ├── order.json                 0600  pending order's state (WriteOrderState)
//	│       ├── renewal.json               0600  renewal window of the installed certificate
//	│       ├── .lock                      0600  flock while a method works here
//	│       ├── .run-lock                  0600  flock for a whole run (LockIdentity)
//	│       ├── archive/                   0700
//	│       │   └── <20060102T150405.000000000Z>/  0700  a replaced generation:
//	│       │       └── key.pem, chain.pem, cert.pem, meta.json, cert.p12, renewal.json, pending-key.pem
//	│       └── <slot>/                    0700  a second certificate (Store.Slot), e.g.
//	│                                            encrypt/ for the encryption half of a split pair: same layout
//	├── forgotten/                         0700
//	│   └── <email>-<20060102T150405Z>/    0700  a forgotten address's directory, whole (Store.Forget)
//	├── servers/                           0700
//	│   └── <host>/                        0700  a mail server's certificate ([Store.Servers]): same layout
//	└── replies/                           0700
//	    ├── .record                        0600  the file each record is a hard link to
//	    └── <hex sha256(key)>              0600  one per answered challenge (ClaimReply)
//
// <hash> is the first 8 bytes, in hex, of the SHA-256 of the canonical
// directory URL (lowercase scheme and host, explicit port, path and
// query), so that two CAs on one host get different accounts.
//
// # File safety
//
// Files are created 0600 and directories 0700 with an explicit chmod, so
// the umask does not matter. Every write goes to a temporary file in the
// same directory that is fsynced, renamed into place, and followed by an
// fsync of the directory ([WriteFileAtomic]). New keys are created
// exclusively (a fully written temporary file is hard-linked to the final
// name, which fails if it exists) and are on disk before they are used.
// Keys and certificates are never deleted: a replaced generation is moved
// to archive/. Errors name the operation and the path, never key material.
//
// # Certificate lifecycle
//
// [Store.CertKey] creates (or, in a resumed run, reuses) pending-key.pem;
// the caller builds the CSR with it and finalizes the order.
// [Store.SaveCertificate] checks that the issued leaf is for that key, then
// archives the current generation and installs the new one: the pending
// key becomes key.pem. The new files are written before anything else
// changes, so a save that fails (a full disk) leaves the directory as it
// was, the pending order's state included. The install is staged
// (cert.p12.new with [Store.SaveCertificateWithPKCS12], meta.json.new,
// cert.pem.new, then chain.pem.new) and completed by whichever
// certificate method runs next if the process dies half way. [Store.WritePKCS12] exports the installed
// key and chain.
//
// # Reading
//
// The methods that only read ([Store.LoadCertificate], [Store.History],
// [Store.ListCertificates], ...) lock a certificate directory through its
// existing .lock (shared when it cannot be opened for writing) and never
// create one, so that a state directory that cannot be written, opened
// with [OpenExisting], can be read; they write only to complete an
// interrupted install.
//
// # Reply records
//
// RFC 8823 forbids answering a challenge twice. [Store.ClaimReply] creates
// replies/<hash> exclusively and durably before the reply is sent; only
// the caller that created it may send. Records are hard links to
// replies/.record where the file system allows (a name, not a new file). [Store.Claim] and [Store.Claimed]
// have the method set of acmemail's ReplyGuard.
package keystore
