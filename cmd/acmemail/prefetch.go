package main

import (
	"crypto"
)

// startCertKey makes (or loads) the pending certificate key in the
// background, so that key generation (slow for RSA) and its durable write
// overlap the mailbox logins and the account setup instead of following
// them. issue waits for the result; Close waits for the goroutine, so a
// run that fails early does not exit in the middle of the write. A key
// made for a run that then fails stays pending and is reused by the next
// run (see keystore.Store.CertKey).
func (s *session) startCertKey() {
	store, email, kt := s.store, s.id.email, s.id.keyType
	var key crypto.Signer
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		key, err = store.CertKey(email, kt)
	}()
	s.certKey = func() (crypto.Signer, error) {
		<-done
		return key, err
	}
	s.closers = append(s.closers, func() { <-done })
}
