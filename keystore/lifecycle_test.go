package keystore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLockIdentity(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	const alice = "alice@Example.org"
	unlock, err := s.LockIdentity(ctx, alice, false)
	if err != nil {
		t.Fatalf("LockIdentity() = %v", err)
	}
	// A second run, without waiting, is refused at once, also under
	// another spelling of the domain.
	if _, err := s.LockIdentity(ctx, "alice@example.org", false); !errors.Is(err, ErrLocked) {
		t.Fatalf("second LockIdentity() = %v, want ErrLocked", err)
	}
	// Other identities are independent.
	u2, err := s.LockIdentity(ctx, "bob@example.org", false)
	if err != nil {
		t.Fatalf("LockIdentity(bob) = %v", err)
	}
	u2()
	// The certificate methods still work while the run lock is held.
	if _, err := s.CertKey(alice, "p256"); err != nil {
		t.Fatalf("CertKey while locked: %v", err)
	}
	// A waiting run gets the lock once the first lets go.
	got := make(chan error, 1)
	go func() {
		u, err := s.LockIdentity(ctx, alice, true)
		if err == nil {
			u()
		}
		got <- err
	}()
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("waiting LockIdentity() = %v", err)
	}
	// A waiting run gives up when its context ends.
	unlock, _ = s.LockIdentity(ctx, alice, false)
	defer unlock()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.LockIdentity(cctx, alice, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("LockIdentity(cancelled) = %v", err)
	}
}

// TestLockIdentityAfterMove: a run waiting for the lock while the holder
// moves the address's directory away (acmemail forget) gets the lock of
// the directory the address has now, not an error or a lock on the file
// that was moved (which would exclude no one).
func TestLockIdentityAfterMove(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	const alice = "alice@example.org"
	unlock, err := s.LockIdentity(ctx, alice, false)
	if err != nil {
		t.Fatal(err)
	}
	_, dir, err := s.certDir(alice, false)
	if err != nil {
		t.Fatal(err)
	}
	type locked struct {
		unlock func()
		err    error
	}
	got := make(chan locked, 1)
	go func() {
		u, err := s.LockIdentity(ctx, alice, true)
		got <- locked{u, err}
	}()
	time.Sleep(3 * lockPollMin) // the waiter polls the old directory's lock file
	if err := os.Rename(dir, filepath.Join(s.Dir, "moved")); err != nil {
		t.Fatal(err)
	}
	unlock()
	w := <-got
	if w.err != nil {
		t.Fatalf("the waiting LockIdentity after the move = %v, want the lock", w.err)
	}
	defer w.unlock()
	if _, err := os.Stat(filepath.Join(dir, runLockFile)); err != nil {
		t.Errorf("the address's directory has no run lock file: %v", err)
	}
	if _, err := s.LockIdentity(ctx, alice, false); !errors.Is(err, ErrLocked) {
		t.Errorf("a second run while the waiter holds the lock: %v, want ErrLocked", err)
	}
}

func TestOrderAndRenewalState(t *testing.T) {
	s := openTestStore(t)
	ca := newTestCA(t)
	const alice = "alice@example.org"
	if _, err := s.ReadOrderState(alice); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadOrderState() before any = %v, want ErrNotFound", err)
	}
	key, err := s.CertKey(alice, "p256")
	if err != nil {
		t.Fatal(err)
	}
	state := []byte(`{"order_url":"https://ca.example/order/1"}`)
	if err := s.WriteOrderState(alice, state); err != nil {
		t.Fatalf("WriteOrderState() = %v", err)
	}
	if got, err := s.ReadOrderState(alice); err != nil || !bytes.Equal(got, state) {
		t.Fatalf("ReadOrderState() = %q, %v", got, err)
	}
	if err := s.WriteRenewalState(alice, []byte(`{"old":true}`)); err != nil {
		t.Fatal(err)
	}
	paths, err := s.SaveCertificate(alice, ca.issue(t, key.Public(), alice), CertMeta{})
	if err != nil {
		t.Fatal(err)
	}
	// Installing the certificate ends the order and the old renewal state.
	if _, err := s.ReadOrderState(alice); !errors.Is(err, ErrNotFound) {
		t.Errorf("order state after install: %v, want ErrNotFound", err)
	}
	if _, err := s.ReadRenewalState(alice); !errors.Is(err, ErrNotFound) {
		t.Errorf("renewal state after install: %v, want ErrNotFound", err)
	}
	leaf, err := os.ReadFile(paths.Leaf)
	if err != nil {
		t.Fatalf("cert.pem: %v", err)
	}
	chain, _ := os.ReadFile(paths.Chain)
	if c, err := ParseChain(leaf); err != nil || len(c) != 1 || !bytes.HasPrefix(chain, leaf) {
		t.Errorf("cert.pem is not the chain's leaf alone (%v)", err)
	}
	if fi, err := os.Stat(paths.Leaf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cert.pem mode: %v, %v", fi.Mode(), err)
	}
	if err := s.WriteRenewalState(alice, []byte(`{"new":true}`)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ReadRenewalState(alice); string(got) != `{"new":true}` {
		t.Errorf("ReadRenewalState() = %q", got)
	}
	if err := s.WriteOrderState(alice, state); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveOrderState(alice); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(paths.Dir, orderFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("order.json still exists after RemoveOrderState")
	}
}

// TestUpdateState: the Update variants replace the recorded state like
// the Write ones (complete files, mode 0600, nothing temporary left).
func TestUpdateState(t *testing.T) {
	s := openTestStore(t)
	const email = "una@example.org"
	if err := s.WriteOrderState(email, []byte(`{"order_url":"a"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateOrderState(email, []byte(`{"order_url":"b"}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadOrderState(email); err != nil || string(got) != `{"order_url":"b"}` {
		t.Errorf("ReadOrderState() = %q, %v", got, err)
	}
	if err := s.UpdateRenewalState(email, []byte(`{"serial":"1"}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadRenewalState(email); err != nil || string(got) != `{"serial":"1"}` {
		t.Errorf("ReadRenewalState() = %q, %v", got, err)
	}
	p, _ := s.CertificatePaths(email)
	entries, err := os.ReadDir(p.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
		if fi, _ := e.Info(); e.Type().IsRegular() && fi.Mode().Perm() != filePerm {
			t.Errorf("%s has mode %v", e.Name(), fi.Mode().Perm())
		}
	}
}
