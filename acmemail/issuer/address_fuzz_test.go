package issuer

import (
	"testing"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// FuzzAddressForms: the address the command line normalizes
// (acmemail.NormalizeAddress) names its state directory as it is: the
// keystore's own normalization keeps it unchanged (or refuses it, as a
// name that cannot be a directory); the keystore, given the address as
// typed (an ASCII domain: it does not do IDNA), finds the same directory;
// and the did-you-mean never names an address in place of itself.
func FuzzAddressForms(f *testing.F) {
	for _, s := range []string{"alice@example.com", "Carol@Example.TEST", "jo\u0308se\u0301@example.test", "a/b@example.test", "用户@例子.广告"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := acmemail.NormalizeAddress(s)
		if err != nil {
			return
		}
		if k, err := keystore.NormalizeEmail(n); err == nil && k != n {
			t.Fatalf("NormalizeAddress(%+q) = %+q, which the keystore stores as %+q", s, n, k)
		}
		if k, err := keystore.NormalizeEmail(s); err == nil && k != n && !hasNonASCIIDomain(s) {
			t.Fatalf("the keystore stores %+q as %+q, the command line as %+q", s, k, n)
		}
		if acmemail.SimilarAddress(n, []string{s}) != "" {
			t.Fatalf("SimilarAddress(%+q, [%+q]) names the address itself", n, s)
		}
	})
}

// hasNonASCIIDomain reports whether the domain of s (after its last @)
// has a non-ASCII byte.
func hasNonASCIIDomain(s string) bool {
	for i := len(s) - 1; i >= 0 && s[i] != '@'; i-- {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}
