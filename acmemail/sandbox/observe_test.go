package sandbox

import (
	"slices"
	"testing"
)

// commandsOf feeds the client side of a session to a commandConn in the
// given chunks and returns the commands it reported.
func commandsOf(t *testing.T, smtp bool, chunks ...string) []string {
	t.Helper()
	var got []string
	w := &World{opt: Options{Observe: func(o Observation) { got = append(got, o.Detail) }}}
	kind := ObserveIMAP
	if smtp {
		kind = ObserveSMTP
	}
	c := &commandConn{l: &commandListener{smtp: smtp, kind: kind, w: w}}
	for _, ch := range chunks {
		c.scan([]byte(ch))
	}
	return got
}

func TestCommandConnIMAP(t *testing.T) {
	got := commandsOf(t, false,
		"T1 LOGIN alice@example.test {6}\r\n", "secret\r\n",
		"T2 SELECT INBOX\r\nT3 ID", "LE\r\n", "DONE\r\n",
		"T4 UID FETCH 1:* (UID RFC822.SIZE)\r\n",
		"T5 AUTHENTICATE PLAIN\r\n", "AGFsaWNlAHNlY3JldA==\r\n",
		"T6 APPEND INBOX {9+}\r\nT7 NOOP\r\n\r\n", // the literal looks like a command
		"T8 LOGOUT\r\n")
	want := []string{"LOGIN", "SELECT", "IDLE", "UID FETCH", "AUTHENTICATE", "APPEND", "LOGOUT"}
	if !slices.Equal(got, want) {
		t.Errorf("IMAP commands = %q, want %q", got, want)
	}
}

func TestCommandConnSMTP(t *testing.T) {
	got := commandsOf(t, true,
		"EHLO localhost\r\n", "AUTH LOGIN\r\n", "YWxpY2U=\r\n", "c2VjcmV0\r\n",
		"MAIL FROM:<alice@example.test>\r\nRCPT TO:<ca@example.test>\r\n", "DATA\r\n",
		"Subject: Re: ACME: x\r\n\r\nQUIT\r\nRSET\r\n.\r\n", // content, not commands
		"QUIT\r\n")
	want := []string{"EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"}
	if !slices.Equal(got, want) {
		t.Errorf("SMTP commands = %q, want %q", got, want)
	}
}

func TestACMEResource(t *testing.T) {
	for path, want := range map[string]string{
		pathDirectory:               "directory",
		pathNewNonce:                "newNonce",
		pathOrder + "abc":           "order",
		pathOrder + "abc/finalize":  "finalize",
		pathAuthz + "abc":           "authz",
		pathChallenge + "abc":       "challenge",
		pathCert + "abc":            "cert",
		pathRenewalInfo + "abc.def": "renewalInfo",
		"/elsewhere":                "unknown",
	} {
		if got := acmeResource(path); got != want {
			t.Errorf("acmeResource(%q) = %q, want %q", path, got, want)
		}
	}
}
