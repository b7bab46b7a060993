package main

import (
	"testing"

	"github.com/acmemail/acmemail/keystore"
)

// TestRenewCred: what renew was given wins over what obtain recorded,
// the mail login and the separate submission password each on its own,
// and a recorded mechanism that does not fit the given kind of secret is
// dropped.
func TestRenewCred(t *testing.T) {
	recorded := &keystore.Settings{
		PasswordCommand: "pass show mail", SMTPPasswordFile: "/etc/acmemail/smtp.pw",
		SMTPUser: "alice-smtp", AuthMech: "plain",
	}
	tests := []struct {
		name  string
		given credFlags
		env   map[string]string
		want  credFlags
	}{
		{"nothing given", credFlags{authMech: "auto"}, nil,
			credFlags{passwordCommand: "pass show mail", smtpPasswordFile: "/etc/acmemail/smtp.pw", smtpUser: "alice-smtp", authMech: "plain", recordedMail: true, recordedSMTP: true}},
		{"a password file given", credFlags{passwordFile: "/x", authMech: "auto"}, nil,
			credFlags{passwordFile: "/x", smtpPasswordFile: "/etc/acmemail/smtp.pw", smtpUser: "alice-smtp", authMech: "plain", recordedSMTP: true}},
		{"ACMEMAIL_PASSWORD given", credFlags{authMech: "auto"}, map[string]string{"ACMEMAIL_PASSWORD": "pw"},
			credFlags{smtpPasswordFile: "/etc/acmemail/smtp.pw", smtpUser: "alice-smtp", authMech: "plain", recordedSMTP: true}},
		{"ACMEMAIL_SMTP_PASSWORD given", credFlags{authMech: "auto"}, map[string]string{"ACMEMAIL_SMTP_PASSWORD": "pw"},
			credFlags{passwordCommand: "pass show mail", smtpUser: "alice-smtp", authMech: "plain", recordedMail: true}},
		{"a token given instead of the recorded password", credFlags{oauthTokenCommand: "oama access", authMech: "auto"}, nil,
			credFlags{oauthTokenCommand: "oama access", smtpPasswordFile: "/etc/acmemail/smtp.pw", smtpUser: "alice-smtp", authMech: "auto", recordedSMTP: true}},
		{"a mechanism given", credFlags{authMech: "login"}, nil,
			credFlags{passwordCommand: "pass show mail", smtpPasswordFile: "/etc/acmemail/smtp.pw", smtpUser: "alice-smtp", authMech: "login", recordedMail: true, recordedSMTP: true}},
		{"another submission login given", credFlags{authMech: "auto", smtpUser: "other"}, nil,
			credFlags{passwordCommand: "pass show mail", smtpUser: "other", authMech: "plain", recordedMail: true}},
		{"the same submission login given", credFlags{authMech: "auto", smtpUser: "alice-smtp"}, nil,
			credFlags{passwordCommand: "pass show mail", smtpPasswordFile: "/etc/acmemail/smtp.pw", smtpUser: "alice-smtp", authMech: "plain", recordedMail: true, recordedSMTP: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := identityFromMeta(keystore.CertMeta{Email: "alice@example.com", Usage: "both", Settings: recorded})
			if err != nil {
				t.Fatal(err)
			}
			got := id.renewCred(tt.given, func(k string) string { return tt.env[k] })
			if got != tt.want {
				t.Errorf("renewCred(%+v) =\n %+v, want\n %+v", tt.given, got, tt.want)
			}
			// What the renewal records for the next one.
			id.cred = got
			var st keystore.Settings
			id.recordLogin(&st)
			wantSMTP := tt.want.smtpPasswordFile
			if tt.given.smtpUser == "" && tt.env["ACMEMAIL_SMTP_PASSWORD"] != "" {
				wantSMTP = "/etc/acmemail/smtp.pw" // kept: the variable is not recorded
			}
			if st.SMTPPasswordFile != wantSMTP {
				t.Errorf("then recorded the SMTP password file %q, want %q", st.SMTPPasswordFile, wantSMTP)
			}
		})
	}

	// A recorded token mechanism is dropped for a password given to renew,
	// kept when nothing is given (the error then asks for a token).
	tok := &keystore.Settings{OAuthTokenCommand: "oama access", AuthMech: "xoauth2"}
	id, err := identityFromMeta(keystore.CertMeta{Email: "alice@example.com", Usage: "both", Settings: tok})
	if err != nil {
		t.Fatal(err)
	}
	if got := id.renewCred(credFlags{authMech: "auto"}, func(k string) string { return map[string]string{"ACMEMAIL_PASSWORD": "pw"}[k] }); got.authMech != "auto" || got.oauthTokenCommand != "" {
		t.Errorf("with ACMEMAIL_PASSWORD: %+v, want auto and no token command", got)
	}
	if got := id.renewCred(credFlags{authMech: "auto"}, func(string) string { return "" }); got.authMech != "xoauth2" || got.oauthTokenCommand != "oama access" {
		t.Errorf("with nothing given: %+v, want the recorded token command and mechanism", got)
	}
}

// TestRecordLogin: the sources are recorded by absolute path, and a run
// whose secret came from where nothing can be recorded keeps the recorded
// sources.
func TestRecordLogin(t *testing.T) {
	id := &identity{cred: credFlags{passwordFile: "rel/pw", smtpPasswordCommand: "pass smtp"}}
	var st keystore.Settings
	id.recordLogin(&st)
	if st.PasswordFile != absPath("rel/pw") || st.PasswordFile == "rel/pw" || st.SMTPPasswordCommand != "pass smtp" {
		t.Errorf("recorded %+v", st)
	}
	id = &identity{keptLogin: loginSources{oauthTokenCommand: "oama", smtpPasswordFile: "/s"}}
	st = keystore.Settings{}
	id.recordLogin(&st)
	if st.OAuthTokenCommand != "oama" || st.SMTPPasswordFile != "/s" {
		t.Errorf("a run without sources recorded %+v, want the kept ones", st)
	}
}
