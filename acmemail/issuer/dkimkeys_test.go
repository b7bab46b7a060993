package issuer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/acmemail/acmemail/acmemail"
)

// keyZone is a DNS zone of DKIM key records that counts its lookups.
type keyZone struct {
	mu      sync.Mutex
	records map[string]string
	lookups atomic.Int32
	fail    atomic.Int32  // the next fail lookups fail
	gate    chan struct{} // if not nil, lookups wait for it
}

func (z *keyZone) lookup(ctx context.Context, name string) ([]string, error) {
	z.lookups.Add(1)
	if z.gate != nil {
		select {
		case <-z.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if z.fail.Add(-1) >= 0 {
		return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	}
	z.fail.Store(0)
	z.mu.Lock()
	defer z.mu.Unlock()
	if r, ok := z.records[strings.TrimSuffix(strings.ToLower(name), ".")]; ok {
		return []string{r}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (z *keyZone) publish(selector, domain string, key ed25519.PrivateKey) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.records == nil {
		z.records = map[string]string{}
	}
	z.records[selector+"._domainkey."+domain] = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
}

func newDKIMKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// keyTestMail is a challenge-like mail from ca@ca.test, DKIM-signed with
// key under selector s1.
func keyTestMail(t *testing.T, key ed25519.PrivateKey, n int) []byte {
	t.Helper()
	raw := fmt.Sprintf("From: ca@ca.test\r\nTo: user%d@example.test\r\nSubject: ACME: token%d\r\nDate: Sun, 06 Dec 2026 21:00:00 +0000\r\nMessage-ID: <m%d@ca.test>\r\n\r\nbody\r\n", n, n, n)
	var b bytes.Buffer
	err := dkim.Sign(&b, strings.NewReader(raw), &dkim.SignOptions{
		Domain: "ca.test", Selector: "s1", Signer: key,
		HeaderKeys:             []string{"From", "To", "Subject", "Date", "Message-ID"},
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func newKeyVerifier(z *keyZone, keys *dkimKeys) *keyVerifier {
	return &keyVerifier{v: acmemail.MailVerifier{LookupTXT: z.lookup}, keys: keys}
}

// TestKeyVerifierOneLookup: mails verified at the same time and after
// share one lookup of the key.
func TestKeyVerifierOneLookup(t *testing.T) {
	key := newDKIMKey(t)
	z := &keyZone{gate: make(chan struct{})}
	z.publish("s1", "ca.test", key)
	v := newKeyVerifier(z, &dkimKeys{})
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = v.Verify(t.Context(), keyTestMail(t, key, i), "ca@ca.test")
		})
	}
	time.Sleep(10 * time.Millisecond) // let them pile up on the first lookup
	close(z.gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("mail %d: %v", i, err)
		}
	}
	if _, err := v.Verify(t.Context(), keyTestMail(t, key, 99), "ca@ca.test"); err != nil {
		t.Fatal(err)
	}
	if n := z.lookups.Load(); n != 1 {
		t.Errorf("%d lookups for 21 mails signed with one key, want 1", n)
	}
}

// TestKeyVerifierReplacedKey: a CA that replaced its key under the same
// selector is not refused because the old record was kept.
func TestKeyVerifierReplacedKey(t *testing.T) {
	oldKey, newKey := newDKIMKey(t), newDKIMKey(t)
	z := &keyZone{}
	z.publish("s1", "ca.test", oldKey)
	v := newKeyVerifier(z, &dkimKeys{})
	if _, err := v.Verify(t.Context(), keyTestMail(t, oldKey, 1), "ca@ca.test"); err != nil {
		t.Fatal(err)
	}
	z.publish("s1", "ca.test", newKey)
	if _, err := v.Verify(t.Context(), keyTestMail(t, newKey, 2), "ca@ca.test"); err != nil {
		t.Fatalf("mail signed with the new key: %v", err)
	}
	if n := z.lookups.Load(); n != 2 {
		t.Errorf("%d lookups, want 2 (the first mail's, and the new key's)", n)
	}
	// The new record is kept now.
	if _, err := v.Verify(t.Context(), keyTestMail(t, newKey, 3), "ca@ca.test"); err != nil {
		t.Fatal(err)
	}
	if n := z.lookups.Load(); n != 2 {
		t.Errorf("%d lookups after a third mail, want still 2", n)
	}
}

// TestKeyVerifierRefusesForgery: a mail signed with another key than the
// published one is refused, with the kept record and with a fresh one.
func TestKeyVerifierRefusesForgery(t *testing.T) {
	key, forger := newDKIMKey(t), newDKIMKey(t)
	z := &keyZone{}
	z.publish("s1", "ca.test", key)
	v := newKeyVerifier(z, &dkimKeys{})
	if _, err := v.Verify(t.Context(), keyTestMail(t, key, 1), "ca@ca.test"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := v.Verify(t.Context(), keyTestMail(t, forger, 2+i), "ca@ca.test"); err == nil {
			t.Fatal("a mail signed with a key the CA did not publish was accepted")
		}
	}
	// Tampered after signing: refused too.
	raw := bytes.Replace(keyTestMail(t, key, 9), []byte("token9"), []byte("tokenX"), 1)
	if _, err := v.Verify(t.Context(), raw, "ca@ca.test"); err == nil {
		t.Fatal("a mail changed after signing was accepted")
	}
	// Each refusal with the kept record asked once more.
	if n := z.lookups.Load(); n != 5 {
		t.Errorf("%d lookups, want 5 (one, then one per refused mail)", n)
	}
}

// TestDKIMKeysFailuresNotKept: a failed lookup, NXDOMAIN among them, is
// made again next time.
func TestDKIMKeysFailuresNotKept(t *testing.T) {
	key := newDKIMKey(t)
	z := &keyZone{}
	z.fail.Store(1)
	z.publish("s1", "ca.test", key)
	v := newKeyVerifier(z, &dkimKeys{})
	if _, err := v.Verify(t.Context(), keyTestMail(t, key, 1), "ca@ca.test"); err == nil {
		t.Fatal("accepted although the key could not be looked up")
	}
	if _, err := v.Verify(t.Context(), keyTestMail(t, key, 2), "ca@ca.test"); err != nil {
		t.Fatalf("after a failed lookup: %v", err)
	}
	c := &dkimKeys{}
	for range 2 {
		if _, _, err := c.get(t.Context(), "", "none._domainkey.ca.test", z.lookup, false); err == nil {
			t.Fatal("no error for a name without records")
		}
	}
	if n := z.lookups.Load(); n != 4 {
		t.Errorf("%d lookups, want 4 (nothing kept but an answer)", n)
	}
}

// TestDKIMKeysExpire: a record is used for dkimKeyTTL, then asked again.
func TestDKIMKeysExpire(t *testing.T) {
	z := &keyZone{}
	z.publish("s1", "ca.test", newDKIMKey(t))
	now := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	c := &dkimKeys{now: func() time.Time { return now }}
	get := func() bool {
		t.Helper()
		txt, cached, err := c.get(t.Context(), "", "S1._domainkey.ca.test.", z.lookup, false)
		if err != nil || len(txt) != 1 {
			t.Fatalf("%q, %v", txt, err)
		}
		return cached
	}
	if get() {
		t.Error("the first lookup said cached")
	}
	now = now.Add(dkimKeyTTL - time.Second)
	if !get() {
		t.Error("not kept within dkimKeyTTL (the name differs only in case and the final dot)")
	}
	now = now.Add(time.Second)
	if get() {
		t.Error("kept beyond dkimKeyTTL")
	}
	if n := z.lookups.Load(); n != 2 {
		t.Errorf("%d lookups, want 2", n)
	}
}

// TestDKIMKeysBounded: names from hostile signatures do not grow the
// cache beyond maxDKIMKeys; old entries make room.
func TestDKIMKeysBounded(t *testing.T) {
	z := &keyZone{}
	now := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	c := &dkimKeys{now: func() time.Time { return now }}
	for i := range 3 * maxDKIMKeys {
		name := fmt.Sprintf("s%d._domainkey.ca.test", i)
		z.publish(fmt.Sprintf("s%d", i), "ca.test", newDKIMKey(t))
		if _, _, err := c.get(t.Context(), "", name, z.lookup, false); err != nil {
			t.Fatal(err)
		}
		if len(c.entries) > maxDKIMKeys {
			t.Fatalf("%d entries kept", len(c.entries))
		}
	}
	now = now.Add(dkimKeyTTL)
	if _, _, err := c.get(t.Context(), "", "s0._domainkey.ca.test", z.lookup, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.entries[dkimKeyName{"", "s0._domainkey.ca.test"}]; !ok || len(c.entries) != 1 {
		t.Errorf("after the others expired: %d entries, s0 kept %v; want the new one alone", len(c.entries), ok)
	}
}

// TestDKIMKeysWaiterCanceled: a renewal waiting for another's lookup
// gives up with its own context.
func TestDKIMKeysWaiterCanceled(t *testing.T) {
	z := &keyZone{gate: make(chan struct{})}
	z.publish("s1", "ca.test", newDKIMKey(t))
	c := &dkimKeys{}
	first := make(chan error, 1)
	go func() {
		_, _, err := c.get(context.Background(), "", "s1._domainkey.ca.test", z.lookup, false)
		first <- err
	}()
	for z.lookups.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := c.get(ctx, "", "s1._domainkey.ca.test", z.lookup, false); !errors.Is(err, context.Canceled) {
		t.Errorf("waiter: %v, want context.Canceled", err)
	}
	close(z.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// TestDKIMKeysPerResolver: what one profile's resolver said is not used
// for a profile that asks another.
func TestDKIMKeysPerResolver(t *testing.T) {
	key, other := newDKIMKey(t), newDKIMKey(t)
	a, b := &keyZone{}, &keyZone{}
	a.publish("s1", "ca.test", other)
	b.publish("s1", "ca.test", key)
	keys := &dkimKeys{}
	va := &keyVerifier{v: acmemail.MailVerifier{LookupTXT: a.lookup}, resolver: "192.0.2.1:53", keys: keys}
	vb := &keyVerifier{v: acmemail.MailVerifier{LookupTXT: b.lookup}, keys: keys}
	if _, err := va.Verify(t.Context(), keyTestMail(t, other, 1), "ca@ca.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := vb.Verify(t.Context(), keyTestMail(t, other, 2), "ca@ca.test"); err == nil {
		t.Fatal("a key from another resolver was used")
	}
	if _, err := vb.Verify(t.Context(), keyTestMail(t, key, 3), "ca@ca.test"); err != nil {
		t.Fatal(err)
	}
	if na, nb := a.lookups.Load(), b.lookups.Load(); na != 1 || nb != 1 {
		t.Errorf("lookups: %d of the first resolver, %d of the second; want 1 each", na, nb)
	}
}
