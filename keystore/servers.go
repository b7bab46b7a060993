package keystore

import (
	"fmt"
	"strings"
)

// maxHostLen is the longest DNS name in presentation form without the
// final dot (RFC 1035 §2.3.4).
const maxHostLen = 253

// Servers returns a view of the store whose certificate methods (CertKey,
// SaveCertificate, LoadCertificate, LockIdentity, the order and renewal
// state, History, ...) are keyed by a mail server's host name instead of
// an address and keep their files in servers/<host>/, with the layout,
// locks and guarantees of certificates/<email>/. Accounts and reply
// records stay shared.
func (s *Store) Servers() *Store {
	return &Store{Dir: s.Dir, Notice: s.Notice, servers: true}
}

// NormalizeHost checks that host is a DNS host name (LDH labels of 1 to
// 63 characters, IDNs in A-label form, at most 253 characters, a final dot
// allowed) that is safe as a directory name, and returns it lowercased
// without the final dot. A single label is refused: a mail server's
// certificate names a fully qualified host.
func NormalizeHost(host string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("invalid host name %q: %s", host, why)
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	switch {
	case h == "":
		return bad("empty")
	case len(h) > maxHostLen:
		return bad(fmt.Sprintf("longer than %d characters", maxHostLen))
	}
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return bad("not a fully qualified name (one label)")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return bad("a label is empty or longer than 63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return bad("a label starts or ends with '-'")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return bad(fmt.Sprintf("%q is not a letter, digit or '-' (write an internationalized name in its xn-- form)", rune(c)))
			}
		}
	}
	return h, nil
}
