package server

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSayStartTLS: the STARTTLS exchanges of SMTP, IMAP and POP3 succeed
// against servers that agree, fail against ones that refuse, and a server
// that sends endless or overlong lines is given up on.
func TestSayStartTLS(t *testing.T) {
	t.Parallel()
	type step struct{ expect, reply string } // expect "" : send reply at once
	cases := []struct {
		name, protocol string
		steps          []step
		ok             bool
	}{
		{"smtp", "smtp", []step{{"", "220-hi\r\n220 there\r\n"}, {"EHLO", "250-x\r\n250-starttls\r\n250 8BITMIME\r\n"}, {"STARTTLS", "220 go\r\n"}}, true},
		{"smtp without STARTTLS", "smtp", []step{{"", "220 hi\r\n"}, {"EHLO", "250-x\r\n250 8BITMIME\r\n"}}, false},
		{"smtp refused", "smtp", []step{{"", "220 hi\r\n"}, {"EHLO", "250 STARTTLS\r\n"}, {"STARTTLS", "454 not now\r\n"}}, false},
		{"imap", "imap", []step{{"", "* OK ready\r\n"}, {"a1 STARTTLS", "* BYE-ish noise\r\na1 OK begin\r\n"}}, true},
		{"imap refused", "imap", []step{{"", "* OK ready\r\n"}, {"a1 STARTTLS", "a1 NO nope\r\n"}}, false},
		{"pop3", "pop3", []step{{"", "+OK hi\r\n"}, {"STLS", "+OK begin\r\n"}}, true},
		{"pop3 refused", "pop3", []step{{"", "+OK hi\r\n"}, {"STLS", "-ERR no\r\n"}}, false},
		{"endless lines", "smtp", []step{{"", strings.Repeat("220-x\r\n", maxLines+5)}}, false},
		{"overlong line", "imap", []step{{"", "* OK " + strings.Repeat("x", maxLine+10) + "\r\n"}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			client, srv := net.Pipe()
			defer client.Close()
			client.SetDeadline(time.Now().Add(5 * time.Second))
			go func() {
				defer srv.Close()
				r := bufio.NewReader(srv)
				for _, s := range c.steps {
					if s.expect != "" {
						l, err := r.ReadString('\n')
						if err != nil || !strings.HasPrefix(l, s.expect) {
							return
						}
					}
					if _, err := srv.Write([]byte(s.reply)); err != nil {
						return
					}
				}
			}()
			err := sayStartTLS(client, c.protocol)
			if (err == nil) != c.ok {
				t.Errorf("sayStartTLS: %v, want ok=%t", err, c.ok)
			}
		})
	}
}
