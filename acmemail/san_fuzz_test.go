package acmemail

import (
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// FuzzParseSANEmails: the subjectAltName of a certificate comes from the
// CA. Whatever it holds, ParseSANEmails must not panic, and every email it
// returns must be a normalized address that encodes and parses back.
func FuzzParseSANEmails(f *testing.F) {
	for _, in := range [][]string{{"alice@example.com"}, {"jörg@xn--bcher-kva.example", "a@b.example"}, {"用户@example.com"}} {
		der, err := marshalEmailSAN(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x06, 0x82, 0x04, 'a', '.', 'b', 'c'})
	f.Add([]byte{0x30, 0x05, 0xa0, 0x03, 0x06, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		got, err := ParseSANEmails(der)
		if err != nil {
			return
		}
		for _, e := range got.Emails {
			n, err := NormalizeAddress(e)
			if err != nil || n != e {
				t.Fatalf("ParseSANEmails returned %q, which normalizes to %q, %v", e, n, err)
			}
		}
		if len(got.Emails) == 0 {
			return
		}
		again, err := marshalEmailSAN(got.Emails)
		if err != nil {
			t.Fatalf("marshalEmailSAN(%q): %v", got.Emails, err)
		}
		back, err := ParseSANEmails(again)
		if err != nil || len(back.Emails) != len(got.Emails) {
			t.Fatalf("round trip of %q: %+v, %v", got.Emails, back, err)
		}
		for i := range back.Emails {
			if back.Emails[i] != got.Emails[i] {
				t.Fatalf("round trip of %q gave %q", got.Emails, back.Emails)
			}
		}
	})
}

// FuzzNormalizeAddress: addresses come from the command line, the
// configuration file, challenge mails and certificates. A normalized
// address normalizes to itself (idempotence), is in Unicode NFC, has a
// lowercase ASCII domain, and keeps the local part (in NFC, case kept); it
// folds to the same key as the address it came from.
func FuzzNormalizeAddress(f *testing.F) {
	for _, s := range []string{"alice@example.com", "jörg@bücher.example", "用户@例子.广告", "a@XN--BCHER-KVA.example", "\"q\"@x.y", "a@b@c.d", "a@",
		"jo\u0308se\u0301@example.test", "Carol@Example.TEST", "a@bu\u0308cher.example", "a@xn--zz.example", "\u212a@\u212a.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeAddress(s)
		if err != nil {
			return
		}
		again, err := NormalizeAddress(n)
		if err != nil || again != n {
			t.Fatalf("NormalizeAddress(%q) = %q, which normalizes to %q, %v", s, n, again, err)
		}
		if !norm.NFC.IsNormalString(n) {
			t.Fatalf("NormalizeAddress(%q) = %q is not in NFC", s, n)
		}
		at := strings.LastIndexByte(n, '@')
		nfc := norm.NFC.String(s)
		if at < 0 || n[:at] != nfc[:strings.LastIndexByte(nfc, '@')] {
			t.Fatalf("NormalizeAddress(%q) = %q changed the local part", s, n)
		}
		if d := n[at+1:]; addrHasNonASCII(d) || strings.ToLower(d) != d {
			t.Fatalf("NormalizeAddress(%q) = %q: the domain is not lowercase A-labels", s, n)
		}
		if AddressFold(s) != AddressFold(n) || SimilarAddress(s, []string{n}) != "" {
			t.Fatalf("%q and its normalized form %q are taken for two addresses", s, n)
		}
	})
}
