package sandbox_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// Start a world that behaves like acme2certifier: the challenge email is
// sent when the authorization is fetched, token parts are 32 alphanumeric
// characters, there is no Auto-Submitted field, and the CA looks for the
// response only briefly after the challenge POST.
func ExampleStart() {
	ctx := context.Background()
	w, err := sandbox.Start(ctx, sandbox.Options{
		MailTiming:        sandbox.MailAtAuthorization,
		TokenLength:       32,
		Join:              "string",
		OmitAutoSubmitted: true,
		ValidationWindow:  2 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	if err := w.AddUser("alice@example.org", "secret"); err != nil {
		log.Fatal(err)
	}
	// Point an ACME client at w.DirectoryURL, trusting w.TLSRootsPEM, and
	// let it read w.IMAPURL and send through w.SMTPURL as
	// alice@example.org / secret.
	fmt.Println(strings.HasSuffix(w.DirectoryURL, "/acme/directory"), w.CAFrom)
	// Output: true acme-challenge@ca.sandbox.test
}
