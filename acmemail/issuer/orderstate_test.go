package issuer

import (
	"crypto/x509"
	"encoding/json"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// TestOrderSaverWrites: the order is recorded when it is created and
// a reply sent is recorded; changes resuming does not need (authorizations
// fetched, challenge POSTed, order finalized) are not written again, and a
// new order is.
func TestOrderSaverWrites(t *testing.T) {
	store, err := keystore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const email = "alice@example.test"
	s := &orderSaver{store: store, email: email}
	onDisk := func() acmemail.OrderState {
		t.Helper()
		data, err := store.ReadOrderState(email)
		if err != nil {
			t.Fatal(err)
		}
		var st acmemail.OrderState
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := acmemail.OrderState{Directory: "https://ca.test/dir", OrderURL: "https://ca.test/order/1", Emails: []string{email}, Created: created}
	save := func() {
		t.Helper()
		if err := s.save(st); err != nil {
			t.Fatal(err)
		}
	}
	save()
	if got := onDisk(); got.OrderURL != st.OrderURL || len(got.Authorizations) != 0 {
		t.Fatalf("after creation: %+v", got)
	}
	st.Authorizations = []acmemail.AuthzState{{URL: "https://ca.test/authz/1", Email: email, ChallengeURL: "https://ca.test/chall/1"}}
	save()
	if got := onDisk(); len(got.Authorizations) != 0 {
		t.Errorf("the fetched authorizations were written: %+v", got)
	}
	st.Authorizations[0].ReplySent = true
	save()
	if got := onDisk(); len(got.Authorizations) != 1 || !got.Authorizations[0].ReplySent {
		t.Errorf("the reply sent was not recorded: %+v", got)
	}
	st.Authorizations[0].Posted, st.Authorizations[0].Valid, st.Finalized = true, true, true
	save()
	if got := onDisk(); got.Authorizations[0].Posted || got.Finalized {
		t.Errorf("a change resuming does not need was written: %+v", got)
	}
	st = acmemail.OrderState{Directory: st.Directory, OrderURL: "https://ca.test/order/2", Emails: []string{email}, Created: created.Add(time.Hour)}
	save()
	if got := onDisk(); got.OrderURL != st.OrderURL {
		t.Errorf("a new order was not recorded: %+v", got)
	}

	// A later run that reads the state back writes only what changed.
	s2 := &orderSaver{store: store, email: email}
	if s2.load(quiet{}) == nil {
		t.Fatal("the recorded order was not read back")
	}
	st.Finalized = true
	if err := s2.save(st); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(); got.Finalized {
		t.Errorf("the resumed run rewrote the order for a change resuming does not need: %+v", got)
	}
}

// TestMailTLSSessionCaches: the mail sessions share a TLS session cache
// only with sessions of the same protocol that trust the same roots.
func TestMailTLSSessionCaches(t *testing.T) {
	a, b := x509.NewCertPool(), x509.NewCertPool()
	if MailTLSConfig(a, "imap").ClientSessionCache != MailTLSConfig(a, "imap").ClientSessionCache {
		t.Error("two IMAP sessions with the same roots do not share a cache")
	}
	if MailTLSConfig(a, "imap").ClientSessionCache == MailTLSConfig(a, "smtp").ClientSessionCache {
		t.Error("IMAP and SMTP share a cache")
	}
	if MailTLSConfig(a, "imap").ClientSessionCache == MailTLSConfig(b, "imap").ClientSessionCache {
		t.Error("sessions with different roots share a cache")
	}
	if TLSConfig(a).ClientSessionCache != nil {
		t.Error("TLSConfig has a session cache")
	}
}

// TestOrderSaverNext: what the next run does with the order a run
// stopped with follows acmemail.Client's rule for continuing one: every
// challenge not yet valid has its reply sent, or was claimed and POSTed.
func TestOrderSaverNext(t *testing.T) {
	const ch = "https://ca.example/chall/1"
	claimedCh := func(u string) bool { return u == ch }
	none := func(string) bool { return false }
	for _, tc := range []struct {
		name    string
		st      *acmemail.OrderState
		claimed func(string) bool
		want    Resumption
	}{
		{"nothing recorded", nil, none, Resumption{}},
		{"no order URL", &acmemail.OrderState{}, none, Resumption{}},
		{"not answered", &acmemail.OrderState{OrderURL: "o", Authorizations: []acmemail.AuthzState{{ChallengeURL: ch}}}, none, Resumption{Ordered: true}},
		{"claimed, not sent, not posted", &acmemail.OrderState{OrderURL: "o", Authorizations: []acmemail.AuthzState{{ChallengeURL: ch}}}, claimedCh, Resumption{Ordered: true}},
		{"posted, not claimed", &acmemail.OrderState{OrderURL: "o", Authorizations: []acmemail.AuthzState{{ChallengeURL: ch, Posted: true}}}, none, Resumption{Ordered: true}},
		{"claimed and posted", &acmemail.OrderState{OrderURL: "o", Authorizations: []acmemail.AuthzState{{ChallengeURL: ch, Posted: true}}}, claimedCh, Resumption{Ordered: true, Answered: true}},
		{"sent", &acmemail.OrderState{OrderURL: "o", Authorizations: []acmemail.AuthzState{{ChallengeURL: ch, ReplySent: true}}}, none, Resumption{Ordered: true, Answered: true}},
		{"one valid, one not answered", &acmemail.OrderState{OrderURL: "o", Authorizations: []acmemail.AuthzState{{Valid: true}, {ChallengeURL: "x"}}}, claimedCh, Resumption{Ordered: true}},
		{"finalized", &acmemail.OrderState{OrderURL: "o", Finalized: true}, none, Resumption{Ordered: true, Answered: true}},
	} {
		o := &orderSaver{last: tc.st}
		if got := o.next(tc.claimed); got != tc.want {
			t.Errorf("%s: next = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
