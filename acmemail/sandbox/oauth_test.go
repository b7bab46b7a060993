package sandbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// xoauth2Client is a minimal XOAUTH2 client, written from Google's
// description, to check the server against something other than
// acmemail's own client.
type xoauth2Client struct{ user, token string }

func (c xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}
func (c xoauth2Client) Next([]byte) ([]byte, error) { return []byte{}, nil }

func bearer(user, token string) sasl.Client {
	return sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: user, Token: token})
}

func TestOAuthLogins(t *testing.T) {
	t.Parallel()
	const alice, token = "alice@example.org", "sandbox-token-alice-42"
	for _, mode := range []OAuthMode{OAuthOff, OAuthAlso, OAuthOnly} {
		t.Run(mode.String(), func(t *testing.T) {
			e := newEnv(t, Options{OAuth: mode}, alice)
			if err := e.w.AddOAuthToken(alice, token); err != nil {
				t.Fatal(err)
			}
			if err := e.w.AddOAuthToken("nobody@example.org", token); err == nil {
				t.Errorf("AddOAuthToken for an unknown user succeeded")
			}

			imapLogin := func(t *testing.T, client sasl.Client, withPassword bool) error {
				c, err := imapclient.DialTLS(hostOf(e.w.IMAPURL), &imapclient.Options{TLSConfig: e.tls})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if withPassword {
					return c.Login(alice, password(alice)).Wait()
				}
				return c.Authenticate(client)
			}
			smtpLogin := func(t *testing.T, client sasl.Client) error {
				c, err := smtp.DialTLS(hostOf(e.w.SMTPURL), e.tls)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				return c.Auth(client)
			}

			oauthOK, passOK := mode != OAuthOff, mode != OAuthOnly
			check := func(name string, err error, wantOK bool) {
				t.Helper()
				if (err == nil) != wantOK {
					t.Errorf("%s: err = %v, want success %v", name, err, wantOK)
				}
			}
			check("imap LOGIN", imapLogin(t, nil, true), passOK)
			check("imap PLAIN", imapLogin(t, sasl.NewPlainClient("", alice, password(alice)), false), passOK)
			check("smtp PLAIN", smtpLogin(t, sasl.NewPlainClient("", alice, password(alice))), passOK)
			check("imap OAUTHBEARER", imapLogin(t, bearer(alice, token), false), oauthOK)
			check("imap XOAUTH2", imapLogin(t, xoauth2Client{alice, token}, false), oauthOK)
			check("smtp OAUTHBEARER", smtpLogin(t, bearer(alice, token)), oauthOK)
			check("smtp XOAUTH2", smtpLogin(t, xoauth2Client{alice, token}), oauthOK)

			// Wrong tokens and the wrong user are refused in every mode.
			check("imap XOAUTH2, wrong token", imapLogin(t, xoauth2Client{alice, "wrong-token"}, false), false)
			check("imap XOAUTH2, token of another user", imapLogin(t, xoauth2Client{"bob@example.org", token}, false), false)
			err := smtpLogin(t, xoauth2Client{alice, "wrong-token"})
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != 535 {
				if mode != OAuthOff || err == nil {
					t.Errorf("smtp XOAUTH2 with a wrong token: err = %v, want 535", err)
				}
			}

			st := e.w.Stats()
			if mode == OAuthOnly && (st.Logins["imap LOGIN"] != 0 || st.Logins["smtp PLAIN"] != 0) {
				t.Errorf("password logins succeeded in OAuthOnly mode: %v", st.Logins)
			}
			if oauthOK && (st.Logins["imap OAUTHBEARER"] != 1 || st.Logins["smtp XOAUTH2"] != 1) {
				t.Errorf("Logins = %v, want one imap OAUTHBEARER and one smtp XOAUTH2", st.Logins)
			}
		})
	}
}

// TestOAuthCapabilities: the mechanisms a client can choose from are
// advertised per mode.
func TestOAuthCapabilities(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{OAuth: OAuthOnly}, "alice@example.org")
	c, err := imapclient.DialTLS(hostOf(e.w.IMAPURL), &imapclient.Options{TLSConfig: e.tls})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has(imap.AuthCap("OAUTHBEARER")) || !caps.Has(imap.AuthCap("XOAUTH2")) || caps.Has(imap.AuthCap("PLAIN")) {
		t.Errorf("IMAP capabilities %v: want AUTH=OAUTHBEARER and AUTH=XOAUTH2, not AUTH=PLAIN", caps)
	}
	s, err := smtp.DialTLS(hostOf(e.w.SMTPURL), e.tls)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Hello("test"); err != nil {
		t.Fatal(err)
	}
	_, mechs := s.Extension("AUTH")
	if mechs != "OAUTHBEARER XOAUTH2" {
		t.Errorf("SMTP AUTH = %q, want %q", mechs, "OAUTHBEARER XOAUTH2")
	}
}

func TestParseOAuthResponse(t *testing.T) {
	tests := []struct {
		mech, in    string
		user, token string
		ok          bool
	}{
		{"OAUTHBEARER", "n,a=alice@example.org,\x01auth=Bearer abc\x01\x01", "alice@example.org", "abc", true},
		{"OAUTHBEARER", "n,a=a=2Cb=3Dc@x,\x01host=h\x01port=993\x01auth=bearer abc\x01\x01", "a,b=c@x", "abc", true},
		{"OAUTHBEARER", "y,a=alice@example.org,\x01auth=Bearer abc\x01\x01", "", "", false},
		{"OAUTHBEARER", "n,,\x01auth=Bearer abc\x01\x01", "", "", false},
		{"OAUTHBEARER", "n,a=alice@example.org,\x01auth=Basic abc\x01\x01", "", "", false},
		{"OAUTHBEARER", "n,a=alice@example.org,\x01auth=Bearer abc", "", "", false},
		{"XOAUTH2", "user=alice@example.org\x01auth=Bearer abc\x01\x01", "alice@example.org", "abc", true},
		{"XOAUTH2", "user=alice@example.org\x01\x01", "", "", false},
		{"XOAUTH2", "", "", "", false},
	}
	for _, tt := range tests {
		user, token, err := parseOAuthResponse(tt.mech, []byte(tt.in))
		if (err == nil) != tt.ok || user != tt.user || token != tt.token {
			t.Errorf("parseOAuthResponse(%s, %q) = %q, %q, %v; want %q, %q, ok %v", tt.mech, tt.in, user, token, err, tt.user, tt.token, tt.ok)
		}
	}
}

func FuzzParseOAuthResponse(f *testing.F) {
	f.Add("OAUTHBEARER", []byte("n,a=alice@example.org,\x01auth=Bearer abc\x01\x01"))
	f.Add("XOAUTH2", []byte("user=alice@example.org\x01auth=Bearer abc\x01\x01"))
	f.Fuzz(func(t *testing.T, mech string, in []byte) {
		user, token, err := parseOAuthResponse(mech, in)
		if err == nil && (user == "" || token == "" || !strings.Contains(string(in), token)) {
			t.Errorf("parseOAuthResponse(%q) = %q, %q without error", in, user, token)
		}
	})
}
