package sandbox

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

// eabJWS builds an external account binding by hand (RFC 8555 §7.3.4),
// independently of acmez, so that each field can be got wrong on purpose.
func eabJWS(t testing.TB, header map[string]any, pub *ecdsa.PublicKey, macKey []byte) json.RawMessage {
	t.Helper()
	prot, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	point, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	jwk := fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":%q,"y":%q}`, enc(point[1:33]), enc(point[33:]))
	input := enc(prot) + "." + enc([]byte(jwk))
	mac := hmac.New(sha256.New, macKey)
	mac.Write([]byte(input))
	out, _ := json.Marshal(map[string]string{"protected": enc(prot), "payload": enc([]byte(jwk)), "signature": enc(mac.Sum(nil))})
	return out
}

func TestExternalAccountBinding(t *testing.T) {
	t.Parallel()
	w := startWorld(t, Options{ExternalAccountRequired: true})
	if w.EABKeyID == "" || w.EABHMACKey == "" {
		t.Fatalf("World.EABKeyID = %q, EABHMACKey = %q; want a generated key", w.EABKeyID, w.EABHMACKey)
	}
	macKey, err := base64.RawURLEncoding.DecodeString(w.EABHMACKey)
	if err != nil || len(macKey) != eabKeyLength {
		t.Fatalf("EABHMACKey %q does not decode to %d octets: %v", w.EABHMACKey, eabKeyLength, err)
	}
	client := &acme.Client{
		Directory:  w.DirectoryURL,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfigFor(t, w.TLSRootsPEM)}, Timeout: 10 * time.Second},
	}
	dir, err := client.GetDirectory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if dir.Meta == nil || !dir.Meta.ExternalAccountRequired {
		t.Fatalf("directory meta = %+v, want externalAccountRequired", dir.Meta)
	}
	newAcct := w.DirectoryURL[:len(w.DirectoryURL)-len(pathDirectory)] + pathNewAccount
	register := func(key *ecdsa.PrivateKey, eab json.RawMessage) error {
		_, err := client.NewAccount(t.Context(), acme.Account{TermsOfServiceAgreed: true, PrivateKey: key, ExternalAccountBinding: eab})
		return err
	}
	good := map[string]any{"alg": "HS256", "kid": w.EABKeyID, "url": newAcct}
	with := func(k string, v any) map[string]any {
		h := map[string]any{}
		for k, v := range good {
			h[k] = v
		}
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	key := mustKey(t, "p256").(*ecdsa.PrivateKey)
	other := mustKey(t, "p256").(*ecdsa.PrivateKey)
	wrongMAC := append([]byte(nil), macKey...)
	wrongMAC[0] ^= 1
	refused := []struct {
		name     string
		eab      json.RawMessage
		wantType string
	}{
		{"none", nil, acme.ProblemTypeExternalAccountRequired},
		{"wrong-hmac-key", eabJWS(t, good, &key.PublicKey, wrongMAC), acme.ProblemTypeUnauthorized},
		{"unknown-kid", eabJWS(t, with("kid", "kid-nobody"), &key.PublicKey, macKey), acme.ProblemTypeUnauthorized},
		{"no-kid", eabJWS(t, with("kid", nil), &key.PublicKey, macKey), acme.ProblemTypeMalformed},
		{"wrong-url", eabJWS(t, with("url", w.DirectoryURL), &key.PublicKey, macKey), acme.ProblemTypeMalformed},
		{"nonce", eabJWS(t, with("nonce", "abc"), &key.PublicKey, macKey), acme.ProblemTypeMalformed},
		{"not-a-mac", eabJWS(t, with("alg", "ES256"), &key.PublicKey, macKey), acme.ProblemTypeMalformed},
		{"other-key", eabJWS(t, good, &other.PublicKey, macKey), acme.ProblemTypeUnauthorized},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			err := register(key, tt.eab)
			if p := problemOf(t, err); p.Type != tt.wantType {
				t.Errorf("NewAccount(EAB %s) = %v, want %s", tt.name, err, tt.wantType)
			}
		})
	}
	if n := w.Stats().Accounts; n != 0 {
		t.Fatalf("Stats().Accounts = %d after refused registrations, want 0", n)
	}

	// The hand-made binding and acmez's both work.
	if err := register(key, eabJWS(t, good, &key.PublicKey, macKey)); err != nil {
		t.Fatalf("NewAccount(valid EAB) = %v", err)
	}
	acct := acme.Account{TermsOfServiceAgreed: true, PrivateKey: other}
	if err := acct.SetExternalAccountBinding(t.Context(), client, acme.EAB{KeyID: w.EABKeyID, MACKey: w.EABHMACKey}); err != nil {
		t.Fatal(err)
	}
	got, err := client.NewAccount(t.Context(), acct)
	if err != nil || got.Location == "" {
		t.Fatalf("NewAccount(acmez EAB) = %+v, %v", got, err)
	}
	if n := w.Stats().Accounts; n != 2 {
		t.Errorf("Stats().Accounts = %d, want 2", n)
	}
}

// FuzzVerifyEAB: whatever a client sends as externalAccountBinding, the
// check never panics, and it accepts only a binding MACed with the key of
// the kid it names, over the requester's own key.
func FuzzVerifyEAB(f *testing.F) {
	macKey := []byte("0123456789abcdef0123456789abcdef")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	const url = "https://127.0.0.1:1/acme/new-account"
	good := map[string]any{"alg": "HS256", "kid": "kid-1", "url": url}
	f.Add([]byte(eabJWS(f, good, &key.PublicKey, macKey)))
	f.Add([]byte(eabJWS(f, map[string]any{"alg": "HS512", "kid": "kid-1", "url": url}, &key.PublicKey, macKey)))
	f.Add([]byte(`{"protected":"","payload":"","signature":""}`))
	f.Add([]byte(`{}`))
	ca := &authority{opt: Options{EABKeys: map[string][]byte{"kid-1": macKey}}}
	point, _ := key.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	pub, prob := parseJWK([]byte(fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":%q,"y":%q}`, enc(point[1:33]), enc(point[33:]))))
	if prob != nil {
		f.Fatal(prob)
	}
	req := &request{url: url, key: pub}
	f.Fuzz(func(t *testing.T, raw []byte) {
		kid, prob := ca.verifyEAB(raw, req)
		if prob != nil {
			if kid != "" {
				t.Errorf("refused with %v but returned kid %q", prob, kid)
			}
			return
		}
		j, p := parseJWS(raw)
		if p != nil {
			t.Fatalf("accepted a binding that does not parse: %v", p)
		}
		if kid != "kid-1" || j.header.Kid != kid || j.header.URL != url || j.header.Nonce != "" {
			t.Errorf("accepted kid %q with header %+v", kid, j.header)
		}
		if !strings.HasPrefix(j.header.Alg, "HS") {
			t.Errorf("accepted alg %q", j.header.Alg)
		}
		bound, p := parseJWK(j.payload)
		if p != nil || bound.thumbprint != pub.thumbprint {
			t.Errorf("accepted a payload that is not the requester's key")
		}
	})
}
