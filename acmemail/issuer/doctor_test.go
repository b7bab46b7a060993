package issuer

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/mailbox"
)

// mailOnly gives a mail login and nothing else.
type mailOnly struct{ creds mailbox.Credentials }

func (m mailOnly) MailLogin(context.Context, *Profile) (mailbox.Credentials, mailbox.Credentials, error) {
	return m.creds, m.creds, nil
}
func (mailOnly) AlsoPassword(context.Context, *Profile, Also) (string, error) {
	return "", errors.New("not asked for")
}
func (mailOnly) P12Password(context.Context, *Profile) (string, error) {
	return "", errors.New("not asked for")
}

func sandboxDoctor(t *testing.T, opts sandbox.Options, password string) (*Doctor, *sandbox.World) {
	t.Helper()
	w, err := sandbox.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	const email = "alice@example.test"
	if err := w.AddUser(email, "right-password"); err != nil {
		t.Fatal(err)
	}
	p := NewProfile(email)
	p.Server, p.IMAP, p.SMTP = "sandbox", w.IMAPURL, w.SMTPURL
	p = p.WithDefaults()
	return &Doctor{Profile: p, World: w, Secrets: mailOnly{mailbox.Credentials{Username: email, Password: password}},
		MailTimeout: 30 * time.Second, TermsNote: "agree to them"}, w
}

func byName(r *Report) map[string]Check {
	m := map[string]Check{}
	for _, c := range r.Checks {
		m[c.Name] = c
	}
	return m
}

// TestDoctorSandbox: against the sandbox every check passes, the terms
// note follows the terms' URL, the test message is deleted, and no
// account or order is made.
func TestDoctorSandbox(t *testing.T) {
	t.Parallel()
	d, w := sandboxDoctor(t, sandbox.Options{}, "right-password")
	r, err := d.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range r.Checks {
		names = append(names, c.Name)
		if c.Status != CheckPass || !c.OK() || c.Cause != "" || c.Err != nil {
			t.Errorf("%s: %+v, want a pass", c.Name, c)
		}
	}
	if got := strings.Join(names, " "); got != "imap-login imap-idle smtp-login dkim ca-directory ca-email" {
		t.Errorf("checks = %s", got)
	}
	c := byName(r)
	if d := c["dkim"].Detail; !strings.Contains(d, "d=example.test") || !strings.HasSuffix(d, "; the test message was deleted") {
		t.Errorf("dkim detail = %q", d)
	}
	if d := c["ca-directory"].Detail; !strings.Contains(d, "; terms of service: https://") || !strings.Contains(d, " (agree to them)") {
		t.Errorf("ca-directory detail = %q", d)
	}
	if st := w.Stats(); st.Accounts != 0 || st.Orders != 0 || st.MessagesSubmitted != 1 {
		t.Errorf("sandbox stats %+v", st)
	}
	if len(r.Names(CheckFail)) != 0 || len(r.Names(CheckWarn)) != 0 {
		t.Errorf("failed %v, warned %v", r.Names(CheckFail), r.Names(CheckWarn))
	}
}

// TestDoctorCauses: a wrong password fails both logins with the mail
// server's error and skips what needs them; a submission server that does
// not sign fails dkim as unsigned.
func TestDoctorCauses(t *testing.T) {
	t.Parallel()
	t.Run("wrong-password", func(t *testing.T) {
		t.Parallel()
		d, _ := sandboxDoctor(t, sandbox.Options{}, "wrong")
		r, err := d.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		c := byName(r)
		for name, cause := range map[string]Cause{"imap-login": CauseIMAPLogin, "smtp-login": CauseSMTPLogin} {
			if c[name].Status != CheckFail || c[name].Cause != cause || !errors.Is(c[name].Err, mailbox.ErrAuthFailed) {
				t.Errorf("%s = %+v", name, c[name])
			}
		}
		if c["imap-idle"].Status != CheckSkip || c["dkim"].Status != CheckSkip || c["dkim"].OK() {
			t.Errorf("imap-idle %+v, dkim %+v: want skipped", c["imap-idle"], c["dkim"])
		}
		if got := strings.Join(r.Names(CheckFail), " "); got != "imap-login smtp-login" {
			t.Errorf("failed = %s", got)
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		t.Parallel()
		d, _ := sandboxDoctor(t, sandbox.Options{NoDKIMSign: true}, "right-password")
		r, err := d.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if c := byName(r)["dkim"]; c.Status != CheckFail || c.Cause != CauseUnsigned || c.Err == nil {
			t.Errorf("dkim = %+v, want unsigned", c)
		}
	})
}

// TestDoctorStopped: a context that ends during the checks returns the
// checks done so far with its error.
func TestDoctorStopped(t *testing.T) {
	t.Parallel()
	d, _ := sandboxDoctor(t, sandbox.Options{}, "right-password")
	d.Profile.Mailbox = "Junk" // the test message never arrives there
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	r, err := d.Run(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || r == nil {
		t.Fatalf("Run = %v, %v; want the report so far and DeadlineExceeded", r, err)
	}
	if got := len(r.Checks); got != 3 {
		t.Errorf("%d checks done, want 3 (the logins)", got)
	}
}

func TestDKIMCause(t *testing.T) {
	for reason, want := range map[string]Cause{
		"no DKIM signature": CauseUnsigned,
		"DKIM signature by mail.example, not by the From domain example.test":              CauseForeignSigner,
		"DKIM signature by example.test: its key cannot be found in DNS (no such host)":    CauseKeyNotInDNS,
		"DKIM signature by example.test: its key cannot be looked up now (timeout)":        CauseKeyNotInDNS,
		"DKIM signature by example.test does not sign Subject (h= must list From, To ...)": CauseFieldsUnsigned,
		"DKIM signature by example.test: body hash does not match":                         CauseNotVerified,
	} {
		if got := dkimCause(reason, "example.test"); got != want {
			t.Errorf("%q: %s, want %s", reason, got, want)
		}
	}
}

func TestFetchDirectory(t *testing.T) {
	var body string
	status := http.StatusOK
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.Header().Set("Replay-Nonce", "n")
			return
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	defer srv.Close()
	hc := srv.Client()
	ctx := t.Context()

	body = `{"newNonce":"https://ca/nonce","newAccount":"https://ca/acct","newOrder":"https://ca/order","meta":{"termsOfService":"https://ca/tos","externalAccountRequired":true}}`
	dir, err := fetchDirectory(ctx, hc, srv.URL)
	if err != nil || dir.Meta.TermsOfService != "https://ca/tos" || !dir.Meta.ExternalAccountRequired {
		t.Fatalf("fetchDirectory = %+v, %v", dir, err)
	}
	if err := checkNonce(ctx, hc, srv.URL); err != nil {
		t.Errorf("checkNonce = %v", err)
	}
	for _, tc := range []struct {
		status     int
		body, want string
	}{
		{http.StatusNotFound, "", "HTTP 404"},
		{http.StatusOK, "<html>", "is not an ACME directory (not JSON"},
		{http.StatusOK, `{"newNonce":"https://ca/nonce","newOrder":"http://ca/order"}`, "no HTTPS URL for newAccount, newOrder"},
	} {
		status, body = tc.status, tc.body
		if _, err := fetchDirectory(ctx, hc, srv.URL); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("status %d, %q: %v, want %q", tc.status, tc.body, err, tc.want)
		}
	}
}
