package issuer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/acmemail/acmemail/keystore"
)

// TestForget: a split pair with an --also address, and the mail servers
// remembered for it, is moved into forgotten/ after Before saw its
// status; list no longer has it, and the --also address is gone with it.
func TestForget(t *testing.T) {
	store := testStore(t)
	const email = "alice@example.org"
	p := Profile{Email: email, Split: true, Also: []Also{{Email: "info@example.org"}}}
	saveTestCert(t, store, p, "sign")
	saveTestCert(t, encSlot(t, store), p, "encrypt")
	remembered, err := RememberedPath(store.Dir, email)
	if err != nil {
		t.Fatal(err)
	}
	if err := SaveRemembered(remembered, &RememberedServers{Email: email, IMAP: "imaps://imap.example.org:993", SMTP: "smtps://smtp.example.org:465"}); err != nil {
		t.Fatal(err)
	}
	var seen *Status
	res, err := Forget(context.Background(), store, email, ForgetOptions{Before: func(s Status) error { seen = &s; return nil }})
	if err != nil {
		t.Fatalf("Forget = %v", err)
	}
	if seen == nil || seen.State != StateValid || seen.Encryption == nil {
		t.Errorf("Before saw %+v, want the valid pair", seen)
	}
	if res.State != StateValid || !res.Split || !slices.Equal(res.Also, []string{"info@example.org"}) || res.Serial == "" {
		t.Errorf("Forget = %+v", res)
	}
	if !slices.Equal(res.Keys, []string{"encrypt/key.pem", "key.pem"}) {
		t.Errorf("kept keys %q, want encrypt/key.pem and key.pem", res.Keys)
	}
	if filepath.Dir(res.Archived) != filepath.Join(store.Dir, "forgotten") {
		t.Errorf("archived in %s, want forgotten/", res.Archived)
	}
	if res.MailServers != filepath.Join(res.Archived, "mail-servers.json") {
		t.Errorf("mail servers record at %q", res.MailServers)
	}
	if _, err := os.Stat(remembered); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the remembered servers stay: %v", err)
	}
	if list, err := Statuses(store, time.Now()); err != nil || len(list) != 0 {
		t.Errorf("Statuses after Forget = %+v, %v; want none", list, err)
	}
	if _, err := Forget(context.Background(), store, "info@example.org", ForgetOptions{}); !errors.Is(err, ErrNotManaged) {
		t.Errorf("Forget of the --also address after its certificate = %v, want ErrNotManaged", err)
	}
}

// TestForgetRefusals: nothing changes when the address is not managed,
// is only an --also address of another's certificate, is locked by a
// run, or Before says no.
func TestForgetRefusals(t *testing.T) {
	store := testStore(t)
	const email = "alice@example.org"
	saveTestCert(t, store, Profile{Email: email, Also: []Also{{Email: "info@example.org"}}}, "both")
	ctx := context.Background()

	if _, err := Forget(ctx, store, "nobody@example.org", ForgetOptions{}); !errors.Is(err, ErrNotManaged) {
		t.Errorf("unknown address: %v, want ErrNotManaged", err)
	}
	if _, err := os.Stat(filepath.Join(store.Dir, "certificates", "nobody@example.org")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("forget of an unknown address made its directory: %v", err)
	}
	var ae *AlsoAddressError
	if _, err := Forget(ctx, store, "info@example.org", ForgetOptions{}); !errors.As(err, &ae) || ae.Primary != email {
		t.Errorf("--also address: %v, want an AlsoAddressError naming %s", err, email)
	}
	unlock, err := store.LockIdentity(ctx, email, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Forget(ctx, store, email, ForgetOptions{Before: func(Status) error { t.Error("Before called while locked"); return nil }})
	unlock()
	if !errors.As(err, new(*LockedError)) {
		t.Errorf("locked: %v, want a LockedError", err)
	}
	no := errors.New("no")
	if _, err := Forget(ctx, store, email, ForgetOptions{Before: func(Status) error { return no }}); !errors.Is(err, no) {
		t.Errorf("Before refused: %v", err)
	}
	if st, err := StatusOf(store, email, time.Now()); err != nil || st.State != StateValid {
		t.Errorf("after the refusals: %+v, %v; want it valid and managed", st, err)
	}
	if _, err := os.Stat(filepath.Join(store.Dir, "forgotten")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("forgotten/ was made: %v", err)
	}
}

// TestForgetPending: a first obtain that failed leaves a pending key and
// order (list shows it pending); forget keeps the key, and the address
// can start again.
func TestForgetPending(t *testing.T) {
	store := testStore(t)
	const email = "bob@example.org"
	if _, err := store.CertKey(email, keystore.KeyP256); err != nil {
		t.Fatal(err)
	}
	if err := store.WriteOrderState(email, []byte(`{"order_url":"https://ca.example.test/order/1"}`)); err != nil {
		t.Fatal(err)
	}
	res, err := Forget(context.Background(), store, email, ForgetOptions{})
	if err != nil {
		t.Fatalf("Forget = %v", err)
	}
	if res.State != StatePending || !slices.Equal(res.Keys, []string{"pending-key.pem"}) {
		t.Errorf("Forget = %+v, want the pending key kept", res)
	}
	if c, err := store.Contents(email); err != nil || c != keystore.NoCertificateFiles {
		t.Errorf("Contents after Forget = %v, %v", c, err)
	}
}

// TestForgetBroken: an address whose certificate files are damaged (list:
// broken) is forgotten like any other, its key kept.
func TestForgetBroken(t *testing.T) {
	store := testStore(t)
	const email = "carol@example.org"
	saveTestCert(t, store, Profile{Email: email}, "both")
	if err := os.WriteFile(filepath.Join(store.Dir, "certificates", email, "chain.pem"), []byte("torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Forget(context.Background(), store, email, ForgetOptions{})
	if err != nil {
		t.Fatalf("Forget = %v", err)
	}
	if res.State != StateBroken || !slices.Equal(res.Keys, []string{"key.pem"}) {
		t.Errorf("Forget = %+v, want the broken address with its key kept", res)
	}
	if list, err := Statuses(store, time.Now()); err != nil || len(list) != 0 {
		t.Errorf("Statuses after Forget = %+v, %v", list, err)
	}
}
