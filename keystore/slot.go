package keystore

import (
	"fmt"
)

// Slot returns a view of the store whose certificate methods (CertKey,
// SaveCertificate, LoadCertificate, WritePKCS12, History, ...) keep their
// files in certificates/<email>/<name>/ instead of certificates/<email>/:
// a second certificate for the same address, such as the encryption
// certificate of a split signing/encryption pair. The slot directory has
// the same layout (key.pem, chain.pem, meta.json, cert.p12, archive/) and
// the same guarantees; accounts and reply records stay shared. name is one
// to 16 lowercase letters, digits or hyphens, and cannot be "archive".
func (s *Store) Slot(name string) (*Store, error) {
	if name == "" || len(name) > 16 || name == "archive" {
		return nil, fmt.Errorf("certificate slot %q: want 1 to 16 characters, not \"archive\"", name)
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return nil, fmt.Errorf("certificate slot %q: only a-z, 0-9 and '-' are allowed", name)
		}
	}
	if s.slot != "" {
		return nil, fmt.Errorf("certificate slot %q: the store is already the slot %q", name, s.slot)
	}
	return &Store{Dir: s.Dir, Notice: s.Notice, slot: name, servers: s.servers}, nil
}
