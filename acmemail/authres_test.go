package acmemail

import (
	"strings"
	"testing"
)

func TestVerifyAuthenticationResults(t *testing.T) {
	// The signer's key is not published, so local DKIM verification fails
	// (as when DNS is unreachable); only the provider's word can help.
	k := newAuthTestKeys(t)
	base := authTestMessage(authTestFields(authTestFrom), authTestBody)
	signed := k.sign(t, base, "ca.test", nil)
	const mx = "mx.example.org"
	ar := func(v string) string { return "Authentication-Results: " + v }
	tests := []struct {
		name       string
		raw        []byte
		trust      string
		from       string // "" = authTestFrom
		dns        bool   // publish the key, so that local DKIM succeeds
		wantErr    string
		wantMethod string
		wantWarn   string
	}{
		{
			name: "trusted pass", trust: mx,
			raw:        authTestPrepend(signed, ar(mx+"; dkim=pass header.d=ca.test header.s=test")),
			wantMethod: "authentication-results",
			wantWarn:   "local DKIM verification failed (DKIM signature by ca.test: its key cannot be found in DNS",
		},
		{
			name: "trusted pass by header.i", trust: mx,
			raw:        authTestPrepend(signed, ar(mx+";\r\n\tdkim=pass (2048-bit key; secure) header.i=@ca.test")),
			wantMethod: "authentication-results",
			wantWarn:   "accepted on the word of the Authentication-Results of mx.example.org",
		},
		{
			name: "trusted pass with version and quoted domain", trust: mx,
			raw:        authTestPrepend(signed, ar(mx+" 1; spf=pass smtp.mailfrom=ca.test; dkim=pass header.d=\"ca.test\"")),
			wantMethod: "authentication-results",
			wantWarn:   "local DKIM verification failed",
		},
		{
			name: "local DKIM first", trust: mx, dns: true,
			raw:        authTestPrepend(signed, ar(mx+"; dkim=fail header.d=ca.test")),
			wantMethod: "dkim",
		},
		{
			name: "other authserv-id ignored", trust: mx,
			raw:     authTestPrepend(signed, ar("mx.evil.test; dkim=pass header.d=ca.test"), ar("MX.example.org; dkim=pass header.d=ca.test")),
			wantErr: "its key cannot be found in DNS (no key for signature: lookup test._domainkey.ca.test: no such host); no Authentication-Results header field by mx.example.org",
		},
		{
			name:    "ignored when not trusted",
			raw:     authTestPrepend(signed, ar(mx+"; dkim=pass header.d=ca.test")),
			wantErr: "DKIM signature by ca.test: its key cannot be found in DNS",
		},
		{
			name: "forged below the genuine one", trust: mx,
			raw:     authTestPrepend(signed, ar(mx+"; dkim=fail reason=\"bad signature\" header.d=ca.test"), "Received: from evil.test by mx.example.org", ar(mx+"; dkim=pass header.d=ca.test")),
			wantErr: "the Authentication-Results of mx.example.org report dkim=fail for ca.test, not dkim=pass for ca.test",
		},
		{
			name: "topmost has no DKIM result", trust: mx,
			raw:     authTestPrepend(signed, ar(mx+"; spf=pass smtp.mailfrom=ca.test"), ar(mx+"; dkim=pass header.d=ca.test")),
			wantErr: "the Authentication-Results of mx.example.org report no DKIM result",
		},
		{
			name: "pass for another domain", trust: mx,
			raw:     authTestPrepend(signed, ar(mx+"; dkim=pass header.d=evil.test; dkim=pass header.d=test")),
			wantErr: "report dkim=pass for evil.test and dkim=pass for test, not dkim=pass for ca.test",
		},
		{
			name: "pass for the parent domain", trust: mx, from: "acme@mail.ca.test",
			raw:     authTestPrepend(k.sign(t, authTestMessage(authTestFields("acme@mail.ca.test"), authTestBody), "ca.test", nil), ar(mx+"; dkim=pass header.d=ca.test")),
			wantErr: "not dkim=pass for mail.ca.test",
		},
		{
			name: "quoted injection", trust: mx,
			raw:     authTestPrepend(signed, ar(mx+"; spf=pass smtp.mailfrom=\"x; dkim=pass header.d=ca.test\"@evil.test; dkim=fail header.d=ca.test")),
			wantErr: "report dkim=fail for ca.test",
		},
		{
			name: "comment injection", trust: mx,
			raw:     authTestPrepend(signed, ar(mx+"; dkim=fail (good; dkim=pass header.d=ca.test ) header.d=ca.test")),
			wantErr: "report dkim=fail for ca.test",
		},
		{
			name: "unreadable trusted field", trust: mx,
			raw:     authTestPrepend(signed, ar(mx+"; dkim=fail (unterminated"), ar(mx+"; dkim=pass header.d=ca.test")),
			wantErr: "the Authentication-Results of mx.example.org cannot be read: unterminated comment",
		},
		{
			name: "unsupported version", trust: mx,
			raw:     authTestPrepend(signed, ar(mx+" 2; dkim=none"), ar(mx+"; dkim=pass header.d=ca.test")),
			wantErr: "the Authentication-Results of mx.example.org cannot be read",
		},
		{
			name: "pass but no signature", trust: mx,
			raw:     authTestPrepend(base, ar(mx+"; dkim=pass header.d=ca.test")),
			wantErr: "no DKIM signature; the Authentication-Results of mx.example.org report dkim=pass for ca.test, but the mail has no DKIM-Signature by ca.test",
		},
		{
			name: "pass but h= misses To", trust: mx,
			raw:     authTestPrepend(k.sign(t, base, "ca.test", []string{"From", "Subject"}), ar(mx+"; dkim=pass header.d=ca.test")),
			wantErr: "report dkim=pass for ca.test, but DKIM signature by ca.test does not sign To",
		},
		{
			name: "pass but unsigned copy", trust: mx,
			raw:     authTestPrepend(signed, ar(mx+"; dkim=pass header.d=ca.test"), "To: mallory@example.org"),
			wantErr: "the mail has 2 To header fields but the DKIM signature by ca.test signs only 1",
		},
		{
			name: "pass but l=", trust: mx,
			raw:     authTestPrepend(authTestReplace(t, signed, "DKIM-Signature: ", "DKIM-Signature: l=10; "), ar(mx+"; dkim=pass header.d=ca.test")),
			wantErr: "but DKIM signature by ca.test uses the l= body length tag",
		},
		{
			name: "pass but duplicated From", trust: mx,
			raw:     authTestPrepend(signed, ar(mx+"; dkim=pass header.d=ca.test"), "From: "+authTestFrom),
			wantErr: "the mail has 2 From header fields",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &MailVerifier{LookupTXT: authTestDNS{}.lookup, TrustAuthservID: tt.trust}
			if tt.dns {
				v.LookupTXT = authTestDNS{"test._domainkey.ca.test": k.dnsRecord()}.lookup
			}
			from := tt.from
			if from == "" {
				from = authTestFrom
			}
			res, err := v.Verify(t.Context(), tt.raw, from)
			authTestCheck(t, res, err, tt.wantErr, tt.wantMethod, tt.wantWarn)
		})
	}
}

func TestAuthresClean(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "mx.example.org; dkim=pass header.d=ca.test", want: "mx.example.org; dkim=pass header.d=ca.test"},
		{in: "(comment) mx; dkim=pass (a (nested) one; x=y) header.d=ca.test", want: "  mx; dkim=pass   header.d=ca.test"},
		{in: `mx; dkim=pass reason="a; b" header.d="ca.test"`, want: "mx; dkim=pass reason=x header.d=ca.test"},
		{in: `mx; spf=pass smtp.mailfrom="x\"; dkim=pass"@evil.test`, want: "mx; spf=pass smtp.mailfrom=x@evil.test"},
		{in: `mx; dkim=pass (a \) b) header.d=c`, want: "mx; dkim=pass   header.d=c"},
		{in: `mx; dkim=pass reason=""`, want: "mx; dkim=pass reason=x"},
		{in: "mx; dkim=pass (open", wantErr: "unterminated comment"},
		{in: "mx; dkim=pass )", wantErr: "unbalanced"},
		{in: `mx; dkim=pass reason="open`, wantErr: "unterminated quoted string"},
	}
	for _, tt := range tests {
		got, err := authresClean(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("authresClean(%q) = %q, %v, want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("authresClean(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestAuthresID(t *testing.T) {
	for in, want := range map[string]string{
		"mx.example.org; dkim=pass": "mx.example.org",
		"  mx.example.org 1 ; none": "mx.example.org",
		"mx.example.org":            "mx.example.org",
		"; dkim=pass":               "",
		"":                          "",
	} {
		if got := authresID(in); got != want {
			t.Errorf("authresID(%q) = %q, want %q", in, got, want)
		}
	}
}
