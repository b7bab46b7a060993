package keystore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Files of a certificate directory that describe work in progress and
// renewal decisions. They hold no secrets.
const (
	runLockFile  = ".run-lock"    // held for a whole obtain or renew run (LockIdentity)
	orderFile    = "order.json"   // the pending order's state (WriteOrderState)
	renewalFile  = "renewal.json" // the CA's renewal window for the installed certificate
	leafFile     = "cert.pem"     // the installed leaf alone (derived from chain.pem)
	lockPollMin  = 50 * time.Millisecond
	lockPollMax  = time.Second
	stateMaxSize = 1 << 20
)

// ErrLocked is returned (wrapped) by [Store.LockIdentity] when another run
// holds the identity's lock and the caller did not want to wait.
var ErrLocked = errors.New("another acmemail run is working on this identity")

// LockIdentity takes the lock that keeps two runs (processes or
// goroutines) for one address from interleaving: hold it from before the
// order is created until the certificate is installed. With wait it waits
// until the lock is free or ctx ends; without, it fails at once with an
// error wrapping ErrLocked. The lock is released by unlock, or by the
// kernel when the process dies (SIGKILL included).
//
// It is a different lock from the one every certificate method takes
// briefly, so a holder can still call them.
func (s *Store) LockIdentity(ctx context.Context, email string, wait bool) (unlock func(), err error) {
	delay := lockPollMin
	for {
		// Found anew each time: a forget while we wait moves the
		// directory away, and the run after it starts a new one.
		norm, dir, err := s.certDir(email, true)
		if err != nil {
			return nil, fmt.Errorf("lock: %w", err)
		}
		path := filepath.Join(dir, runLockFile)
		unlock, ok, err := tryLockFile(path)
		if err != nil {
			return nil, err
		}
		if ok {
			return unlock, nil
		}
		if !wait {
			return nil, fmt.Errorf("%s: %w (lock %s)", norm, ErrLocked, path)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the lock of %s: %w", norm, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, lockPollMax)
	}
}

// WriteOrderState records, atomically, the state of email's pending order
// (opaque JSON from the caller; no secrets). Installing a certificate
// ([Store.SaveCertificate]) removes it.
func (s *Store) WriteOrderState(email string, state []byte) error {
	return s.writeCertFile(email, orderFile, state, "order state")
}

// UpdateOrderState replaces the recorded state of email's pending order
// like [Store.WriteOrderState], with one difference: the replacement is
// not made durable against a crash of the whole system (the new content
// is fsynced, its rename is not), so after a power failure the state
// written before it may be found instead. A process that is killed loses
// nothing. Use it for changes an interrupted run does not need to resume
// the order, once the order itself was recorded with WriteOrderState.
func (s *Store) UpdateOrderState(email string, state []byte) error {
	return s.writeCertFileWith(email, orderFile, state, "order state", replaceFile)
}

// ReadOrderState returns what [Store.WriteOrderState] recorded last, or
// an error wrapping ErrNotFound.
func (s *Store) ReadOrderState(email string) ([]byte, error) {
	return s.readCertFile(email, orderFile, "order state")
}

// RemoveOrderState forgets email's pending order (it cannot be continued).
func (s *Store) RemoveOrderState(email string) error {
	_, dir, err := s.certDir(email, false)
	if err != nil {
		return fmt.Errorf("remove order state: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return fmt.Errorf("remove order state: %w", err)
	}
	defer unlock()
	if err := os.Remove(filepath.Join(dir, orderFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove order state: %w", err)
	}
	return syncDir(dir)
}

// WriteRenewalState records, atomically, the renewal decision for email's
// installed certificate (opaque JSON from the caller: the CA's window, the
// chosen time). Installing a new certificate removes it.
func (s *Store) WriteRenewalState(email string, state []byte) error {
	return s.writeCertFile(email, renewalFile, state, "renewal state")
}

// UpdateRenewalState is [Store.WriteRenewalState] without making the
// replacement durable against a crash of the whole system (see
// [Store.UpdateOrderState]): for a state that is as good lost as found,
// such as the CA's window fetched right after an install (which removed
// the previous one), which is fetched again when it is missing.
func (s *Store) UpdateRenewalState(email string, state []byte) error {
	return s.writeCertFileWith(email, renewalFile, state, "renewal state", replaceFile)
}

// ReadRenewalState returns what [Store.WriteRenewalState] recorded last,
// or an error wrapping ErrNotFound.
func (s *Store) ReadRenewalState(email string) ([]byte, error) {
	return s.readCertFile(email, renewalFile, "renewal state")
}

func (s *Store) writeCertFile(email, name string, data []byte, what string) error {
	return s.writeCertFileWith(email, name, data, what, WriteFileAtomic)
}

func (s *Store) writeCertFileWith(email, name string, data []byte, what string, write func(string, []byte, os.FileMode) error) error {
	norm, dir, err := s.certDir(email, true)
	if err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return fmt.Errorf("write %s for %s: %w", what, norm, err)
	}
	defer unlock()
	if err := write(filepath.Join(dir, name), data, filePerm); err != nil {
		return fmt.Errorf("write %s for %s: %w", what, norm, err)
	}
	return nil
}

func (s *Store) readCertFile(email, name, what string) ([]byte, error) {
	norm, dir, err := s.certDir(email, false)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	f, err := os.Open(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no %s for %s: %w", what, norm, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, stateMaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s for %s: %w", what, norm, err)
	}
	if len(data) > stateMaxSize {
		return nil, fmt.Errorf("read %s for %s: the file is larger than %d bytes", what, norm, stateMaxSize)
	}
	return data, nil
}
