package issuer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail"
)

// TestRevocations: an address's certificate, or both of a split pair (the
// signing one first), or the one of the pair asked for; a certificate
// given as such is found in either slot.
func TestRevocations(t *testing.T) {
	store := testStore(t)
	const email = "alice@example.test"
	p := NewProfile(email)
	p.Server = testCA
	if _, err := Revocations(store, email, ""); !errors.Is(err, ErrNotManaged) {
		t.Fatalf("nothing managed: %v", err)
	}
	sign := saveTestCert(t, store, p, "both")
	rs, err := Revocations(store, email, "")
	if err != nil || len(rs) != 1 || rs[0].Role != "" || !rs[0].Leaf.Equal(sign) || rs[0].Key == nil || rs[0].Directory != testCA || rs[0].What() != "the certificate" {
		t.Fatalf("one certificate: %+v, %v", rs, err)
	}
	if _, err := Revocations(store, email, RoleEncryption); !errors.Is(err, ErrNotPair) {
		t.Errorf("only one of a single certificate: %v", err)
	}

	enc := saveTestCert(t, encSlot(t, store), p, "encrypt")
	rs, err = Revocations(store, email, "")
	if err != nil || len(rs) != 2 || rs[0].Role != RoleSigning || rs[1].Role != RoleEncryption || !rs[1].Leaf.Equal(enc) || rs[1].Usage != "encrypt" {
		t.Fatalf("a pair: %+v, %v", rs, err)
	}
	if got := rs[1].Named(); got != "the encryption certificate "+acmemail.FormatSerial(enc.SerialNumber) {
		t.Errorf("Named = %q", got)
	}
	rs, err = Revocations(store, email, RoleEncryption)
	if err != nil || len(rs) != 1 || !rs[0].Leaf.Equal(enc) {
		t.Fatalf("only the encryption certificate: %+v, %v", rs, err)
	}

	// An unreadable certificate of the pair is returned with its error, so
	// that the other one is still revoked; asked for alone, it fails.
	if err := os.Remove(filepath.Join(store.Dir, "certificates", email, EncryptSlot, "key.pem")); err != nil {
		t.Fatal(err)
	}
	rs, err = Revocations(store, email, "")
	if err != nil || len(rs) != 2 || rs[1].LoadErr == nil || !strings.HasPrefix(rs[1].LoadErr.Error(), "read the encryption certificate: ") || rs[1].Email != email {
		t.Fatalf("an unreadable encryption certificate: %+v, %v", rs, err)
	}
	if _, err := Revocations(store, email, RoleEncryption); err == nil {
		t.Error("the unreadable one alone: no error")
	}

	r := RevocationOf(store, sign)
	if r.Email != email || r.Role != "" || r.Key == nil || r.Directory != testCA {
		t.Errorf("RevocationOf a managed certificate: %+v", r)
	}
	other := saveTestCert(t, testStore(t), NewProfile("bob@example.test"), "both")
	if r := RevocationOf(store, other); r.Email != "" || r.Key != nil || r.Directory != "" || r.store != nil {
		t.Errorf("RevocationOf a certificate not managed here: %+v", r)
	}
}

// TestRevocationsSandbox: a certificate from the in-process sandbox,
// recorded in the profile, has no CA left to revoke it at.
func TestRevocationsSandbox(t *testing.T) {
	store := testStore(t)
	p := NewProfile("alice@example.test")
	p.Server = "sandbox"
	saveTestCert(t, store, p, "both")
	if _, err := Revocations(store, p.Email, ""); err == nil || !strings.Contains(err.Error(), "in-process sandbox") {
		t.Errorf("in-process sandbox: %v", err)
	}
}

// TestRevokeRecord: a revocation is recorded in the renewal state of the
// managed certificate; one the CA found already revoked keeps an earlier
// record, and gets one without a reason when there is none.
func TestRevokeRecord(t *testing.T) {
	store := testStore(t)
	const email = "alice@example.test"
	leaf := saveTestCert(t, store, NewProfile(email), "both")
	serial := leaf.SerialNumber.Text(16)
	rs, err := Revocations(store, email, "")
	if err != nil {
		t.Fatal(err)
	}
	r := rs[0]
	r.record(quiet{}, acmemail.ReasonSuperseded, true)
	if st := LoadRenewalState(store, email, serial); st.Revoked == nil || st.RevocationReason != "" {
		t.Fatalf("already revoked, nothing recorded before: %+v", st)
	}
	if err := store.WriteRenewalState(email, nil); err != nil {
		t.Fatal(err)
	}
	r.record(quiet{}, acmemail.ReasonKeyCompromise, false)
	r.record(quiet{}, acmemail.ReasonSuperseded, true)
	if st := LoadRenewalState(store, email, serial); st.Revoked == nil || st.RevocationReason != "keyCompromise" {
		t.Fatalf("revoked, then found already revoked: %+v", st)
	}
	if s, _ := StatusOf(store, email, leaf.NotBefore); s.State != "revoked" || s.Renew.Skip == "" {
		t.Errorf("status of a revoked certificate: %s, plan %+v", s.State, s.Renew)
	}
	// Not the managed certificate any more: nothing is recorded.
	saveTestCert(t, store, NewProfile(email), "both")
	r.record(quiet{}, acmemail.ReasonKeyCompromise, false)
	if _, err := store.ReadRenewalState(email); err == nil {
		t.Error("a revocation of a replaced certificate was recorded for the new one")
	}
}

// TestRevokeNoAccount: without an account at the CA and without the
// certificate's key nothing can sign the request; the result says so, and
// the CA is not asked.
func TestRevokeNoAccount(t *testing.T) {
	store := testStore(t)
	leaf := saveTestCert(t, testStore(t), NewProfile("alice@example.test"), "both")
	is := &Issuer{Store: store}
	res, err := is.Revoke(context.Background(), []*Revocation{{Leaf: leaf, Directory: "https://127.0.0.1:1/dir"}}, RevokeOptions{Reason: acmemail.ReasonKeyCompromise})
	var ne *RevokeNoAccountError
	if !errors.As(err, &ne) || ne.Directory != "https://127.0.0.1:1/dir" {
		t.Fatalf("error %v", err)
	}
	if res.Revoked || res.Reason != "keyCompromise" || res.Email != "alice@example.test" || res.Serial != acmemail.FormatSerial(leaf.SerialNumber) ||
		len(res.Certificates) != 1 || res.Certificates[0].Revoked || res.Certificates[0].Error != err.Error() {
		t.Errorf("result %+v", res)
	}
}

// TestRevokeOutcome: one certificate fails with its own error; a pair
// fails unless both are revoked and one of them now.
func TestRevokeOutcome(t *testing.T) {
	refused := &RevocationError{errors.New("refused")}
	already := &RevocationError{&acmemail.ProblemError{Type: "urn:ietf:params:acme:error:alreadyRevoked"}}
	ok := func() *Revocation { return &Revocation{Revoked: true} }
	was := func() *Revocation { return &Revocation{Revoked: true, AlreadyRevoked: true, Err: already} }
	failed := func() *Revocation { return &Revocation{Err: refused} }
	if err := revokeOutcome([]*Revocation{failed()}); err != refused {
		t.Errorf("one: %v", err)
	}
	if err := revokeOutcome([]*Revocation{was()}); err != already {
		t.Errorf("one already revoked: %v", err)
	}
	for _, rs := range [][]*Revocation{{ok(), ok()}, {ok(), was()}, {was(), ok()}} {
		if err := revokeOutcome(rs); err != nil {
			t.Errorf("revoked: %v", err)
		}
	}
	for _, rs := range [][]*Revocation{{was(), was()}, {ok(), failed()}, {failed(), was()}, {failed(), failed()}} {
		err := revokeOutcome(rs)
		var pe *PairRevokeError
		if !errors.As(err, &pe) || len(pe.Pair) != 2 {
			t.Errorf("not revoked as a whole: %v", err)
			continue
		}
		want := error(already)
		if !rs[0].Revoked || !rs[1].Revoked {
			want = refused
		}
		if !errors.Is(err, want) {
			t.Errorf("%v does not wrap %v", err, want)
		}
	}
}
