package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestObtainInternationalized obtains certificates from the sandbox for
// RFC 6531 addresses: a non-ASCII local part (the certificate names it in
// an SmtpUTF8Mailbox otherName, the mail goes with SMTPUTF8), a non-ASCII
// domain (sent as A-labels, an rfc822Name), and both.
func TestObtainInternationalized(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		arg     string // as typed
		mailbox string // the sandbox user
		want    string // the certificate's address, normalized
		otherNm bool   // in an SmtpUTF8Mailbox
	}{
		{"local part", "jörg@example.test", "jörg@example.test", "jörg@example.test", true},
		{"domain", "alice@bücher.example", "alice@xn--bcher-kva.example", "alice@xn--bcher-kva.example", false},
		{"both", "用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v", "用户@xn--fsqu00a.xn--4rr70v", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, env := world(t, sandbox.Options{})
			if err := w.AddUser(tc.mailbox, "intl-secret-pw"); err != nil {
				t.Fatal(err)
			}
			env["ACMEMAIL_PASSWORD"] = "intl-secret-pw"
			args := obtainArgs(w, "--json")
			args[len(args)-1] = tc.arg
			r := runCLI(t, env, args...)
			if r.code != 0 {
				t.Fatalf("obtain %s: exit %d\nstderr:\n%s", tc.arg, r.code, r.stderr)
			}
			var res issuer.CertResult
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
			}
			if res.Email != tc.want {
				t.Errorf("result email = %q, want %q", res.Email, tc.want)
			}
			data, err := os.ReadFile(res.PKCS12)
			if err != nil {
				t.Fatal(err)
			}
			_, leaf, _, err := pkcs12.DecodeChain(data, "test")
			if err != nil {
				t.Fatal(err)
			}
			sans, err := acmemail.CertificateEmails(leaf)
			if err != nil || len(sans.Emails) != 1 || sans.Emails[0] != tc.want || len(sans.Others) != 0 {
				t.Errorf("certificate SAN = %+v, %v; want exactly %q", sans, err, tc.want)
			}
			if got := len(leaf.EmailAddresses) == 0; got != tc.otherNm {
				t.Errorf("rfc822Names %q: want the address in an SmtpUTF8Mailbox: %v", leaf.EmailAddresses, tc.otherNm)
			}
			st := w.Stats()
			if st.RepliesReceived != 1 || st.CertificatesIssued != 1 {
				t.Errorf("sandbox saw %d replies, issued %d certificates, want 1 and 1 (rejected: %v)", st.RepliesReceived, st.CertificatesIssued, st.RejectedReasons)
			}
			if strings.Contains(r.stderr, "intl-secret-pw") {
				t.Error("the password appears in stderr")
			}
		})
	}
}
