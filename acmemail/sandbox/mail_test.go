package sandbox

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestSubmission(t *testing.T) {
	t.Parallel()
	const alice, bob = "alice@example.org", "bob@example.net"
	e := newEnv(t, Options{}, alice, bob)
	msg := []byte("From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nhello\r\n")

	dialTLS := func(t *testing.T) *smtp.Client {
		c, err := smtp.DialTLS(hostOf(e.w.SMTPURL), e.tls)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("MAIL before AUTH", func(t *testing.T) {
		c := dialTLS(t)
		if err := c.Mail(alice, nil); smtpCode(err) != 530 {
			t.Errorf("Mail() = %v, want 530", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		c := dialTLS(t)
		if err := c.Auth(sasl.NewPlainClient("", alice, "nope")); smtpCode(err) != 535 {
			t.Errorf("Auth() = %v, want 535", err)
		}
	})
	t.Run("sender is not the login", func(t *testing.T) {
		c := dialTLS(t)
		if err := c.Auth(sasl.NewPlainClient("", alice, password(alice))); err != nil {
			t.Fatal(err)
		}
		err := c.Mail(bob, nil)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 553 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
			t.Errorf("Mail(%s) = %v, want 553 5.7.1", bob, err)
		}
	})
	t.Run("unknown recipient", func(t *testing.T) {
		c := dialTLS(t)
		if err := c.Auth(sasl.NewLoginClient(alice, password(alice))); err != nil {
			t.Fatalf("AUTH LOGIN: %v", err)
		}
		if err := c.Mail(alice, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("nobody@example.org", nil); smtpCode(err) != 550 {
			t.Errorf("Rcpt() = %v, want 550", err)
		}
	})
	t.Run("From header of someone else", func(t *testing.T) {
		c := dialTLS(t)
		if err := c.Auth(sasl.NewPlainClient("", alice, password(alice))); err != nil {
			t.Fatal(err)
		}
		forged := []byte("From: bob@example.net\r\nTo: bob@example.net\r\n\r\nx\r\n")
		if err := c.SendMail(alice, []string{bob}, bytes.NewReader(forged)); smtpCode(err) != 550 {
			t.Errorf("SendMail() = %v, want 550", err)
		}
	})
	t.Run("STARTTLS listener", func(t *testing.T) {
		c, err := smtp.Dial(hostOf(e.w.SMTPStartTLSURL))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("client.example"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.Extension("AUTH"); ok {
			t.Errorf("AUTH offered before STARTTLS")
		}
		if err := c.Auth(sasl.NewPlainClient("", alice, password(alice))); err == nil {
			t.Errorf("AUTH before STARTTLS succeeded")
		}
		c2, err := smtp.DialStartTLS(hostOf(e.w.SMTPStartTLSURL), e.tls)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		if err := c2.Auth(sasl.NewPlainClient("", alice, password(alice))); err != nil {
			t.Fatalf("AUTH after STARTTLS: %v", err)
		}
		if err := c2.SendMail(alice, []string{bob}, bytes.NewReader(msg)); err != nil {
			t.Fatalf("SendMail() = %v", err)
		}
	})

	// The message bob got is DKIM-signed by example.org, carries the fields
	// the MSA adds, and passed the delivery-side DKIM check.
	raw := e.fetchMail(bob, 1)
	fields, _, err := splitMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Return-Path", "Received", "Authentication-Results", "DKIM-Signature", "Date", "Message-ID"} {
		if len(fieldsNamed(fields, name)) != 1 {
			t.Errorf("delivered message has %d %s fields, want 1", len(fieldsNamed(fields, name)), name)
		}
	}
	if ar := fieldsNamed(fields, "Authentication-Results")[0].value(); !strings.Contains(ar, "dkim=pass header.d=example.org") {
		t.Errorf("Authentication-Results = %q", ar)
	}
	res := verifyDKIM(raw, "example.org", rfc8823Required, func(n string) ([]string, error) { return e.w.LookupTXT(t.Context(), n) })
	if !res.pass {
		t.Errorf("DKIM of the delivered message: %s", res.reason)
	}
	if st := e.w.Stats(); st.MessagesSubmitted != 1 || st.MessagesDelivered != 1 {
		t.Errorf("Stats() = %+v", st)
	}
}

// TestAuthResultsSpoof: an Authentication-Results field with the sandbox's
// authserv-id is dropped on delivery; a foreign one is kept.
func TestAuthResultsSpoof(t *testing.T) {
	const alice = "alice@example.org"
	e := newEnv(t, Options{}, alice)
	msg := []byte("Authentication-Results: mx.sandbox.test; dkim=pass header.d=bank.example\r\n" +
		"Authentication-Results: other.example; dkim=none\r\n" +
		"From: alice@example.org\r\nTo: alice@example.org\r\nSubject: x\r\n\r\nx\r\n")
	if err := e.submit(alice, []string{alice}, msg); err != nil {
		t.Fatal(err)
	}
	fields, _, _ := splitMessage(e.fetchMail(alice, 1))
	var got []string
	for _, f := range fieldsNamed(fields, "Authentication-Results") {
		got = append(got, f.value())
	}
	if len(got) != 2 || strings.Contains(got[0], "bank.example") || !strings.HasPrefix(got[1], "other.example") {
		t.Errorf("Authentication-Results = %q, want ours and the foreign one", got)
	}
}

func TestIMAP(t *testing.T) {
	t.Parallel()
	const alice = "alice@example.org"
	e := newEnv(t, Options{}, alice)

	t.Run("STARTTLS", func(t *testing.T) {
		c, err := imapclient.DialStartTLS(hostOf(e.w.IMAPStartTLSURL), &imapclient.Options{TLSConfig: e.tls})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Login(alice, "wrong").Wait(); err == nil {
			t.Errorf("login with a wrong password succeeded")
		}
		if err := c.Login(alice, password(alice)).Wait(); err != nil {
			t.Fatalf("Login() = %v", err)
		}
	})
	t.Run("no login without TLS", func(t *testing.T) {
		c, err := imapclient.DialInsecure(hostOf(e.w.IMAPStartTLSURL), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Login(alice, password(alice)).Wait(); err == nil {
			t.Errorf("plaintext login succeeded")
		}
	})
	t.Run("IDLE sees delivery", func(t *testing.T) {
		exists := make(chan uint32, 4)
		c, err := imapclient.DialTLS(hostOf(e.w.IMAPURL), &imapclient.Options{
			TLSConfig: e.tls,
			UnilateralDataHandler: &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Login(alice, password(alice)).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		idle, err := c.Idle()
		if err != nil {
			t.Fatal(err)
		}
		if err := e.w.Deliver(alice, []byte("From: x@example.com\r\nSubject: hi\r\n\r\nhi\r\n")); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-exists:
			if n != 1 {
				t.Errorf("EXISTS %d, want 1", n)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("no EXISTS during IDLE")
		}
		if err := idle.Close(); err != nil {
			t.Fatal(err)
		}
		if err := idle.Wait(); err != nil {
			t.Fatal(err)
		}
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("Fetch() = %v, %v", msgs, err)
		}
		if got := string(msgs[0].FindBodySection(&imap.FetchItemBodySection{})); !strings.HasPrefix(got, "From: x@example.com") {
			t.Errorf("Deliver changed the message: %q", got)
		}
	})
}

func TestAddUser(t *testing.T) {
	t.Parallel()
	w := startWorld(t, Options{})
	tests := []struct {
		email, password, err string
	}{
		{"alice@example.org", "pw", ""},
		{"alice@example.org", "pw", "exists"},
		{"not-an-address", "pw", "no @"},
		{"carol@example.org", "", "empty password"},
		{"x@ca.sandbox.test", "pw", "CA's own domain"},
	}
	for _, tt := range tests {
		err := w.AddUser(tt.email, tt.password)
		if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("AddUser(%q) = %v, want %q", tt.email, err, tt.err)
		}
	}
	if err := w.Deliver("nobody@example.org", []byte("x")); err == nil {
		t.Errorf("Deliver to an unknown user succeeded")
	}
}

func TestStartOptions(t *testing.T) {
	for _, opt := range []Options{
		{TokenLength: 16},
		{Join: "bytes"},
		{MailTiming: 7},
		{CertLifetime: time.Minute},
		{ValidationWindow: -time.Second},
	} {
		if w, err := Start(t.Context(), opt); err == nil {
			w.Close()
			t.Errorf("Start(%+v) succeeded", opt)
		}
	}
}

// TestContextCancel: cancelling the context given to Start closes the world.
func TestContextCancel(t *testing.T) {
	ctx, cancel := contextWithCancel(t)
	w, err := Start(ctx, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := smtp.DialTLS(hostOf(w.SMTPURL), tlsConfigFor(t, w.TLSRootsPEM))
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the world still accepts connections after its context was cancelled")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close() after cancel = %v", err)
	}
}

// TestQuietByDefault: with no Logger, nothing reaches stderr, even when
// clients misbehave.
func TestQuietByDefault(t *testing.T) {
	r, wpipe, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	orig := os.Stderr
	os.Stderr = wpipe
	defer func() { os.Stderr = orig }()

	w, err := Start(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{w.DirectoryURL, w.IMAPURL, w.SMTPURL, w.SMTPStartTLSURL} {
		addr := hostOf(u)
		if i := strings.IndexByte(addr, '/'); i >= 0 {
			addr = addr[:i]
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("\x16\x03\x01garbage that is not TLS\r\nQUIT\r\n"))
		io.Copy(io.Discard, io.LimitReader(c, 512))
		c.Close()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	os.Stderr = orig
	wpipe.Close()
	out, _ := io.ReadAll(r)
	if len(out) > 0 {
		t.Errorf("stderr got %q", out)
	}
}

// TestNoDKIMSign: with Options.NoDKIMSign the submission server delivers
// unsigned mail, the receiving side says dkim=none, and World.Inbox and
// WaitInbox return what was delivered.
func TestNoDKIMSign(t *testing.T) {
	t.Parallel()
	const alice = "alice@example.org"
	for _, noSign := range []bool{false, true} {
		e := newEnv(t, Options{NoDKIMSign: noSign}, alice)
		if got := e.w.Inbox(alice); len(got) != 0 {
			t.Fatalf("Inbox before any delivery = %d messages, want 0", len(got))
		}
		msg := []byte("From: alice@example.org\r\nTo: alice@example.org\r\nSubject: self\r\n\r\nhello\r\n")
		if err := e.submit(alice, []string{alice}, msg); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := contextWithCancel(t)
		msgs, err := e.w.WaitInbox(ctx, alice, 1)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 {
			t.Fatalf("WaitInbox = %d messages, want 1", len(msgs))
		}
		signed := bytes.Contains(msgs[0], []byte("DKIM-Signature:"))
		if signed == noSign {
			t.Errorf("NoDKIMSign=%v: delivered message signed=%v:\n%s", noSign, signed, msgs[0])
		}
		wantRes := "dkim=pass header.d=example.org"
		if noSign {
			wantRes = "dkim=none"
		}
		if !bytes.Contains(msgs[0], []byte(wantRes)) {
			t.Errorf("NoDKIMSign=%v: no %q in:\n%s", noSign, wantRes, msgs[0])
		}
		if !bytes.Equal(e.fetchMail(alice, 1), msgs[0]) {
			t.Errorf("Inbox and IMAP disagree on the message")
		}
	}
}
