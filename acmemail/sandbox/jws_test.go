package sandbox

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
)

// rawClient speaks ACME with hand-made JWS, to send what acmez would not.
type rawClient struct {
	t    *testing.T
	w    *World
	http *http.Client
	dir  map[string]any
}

func newRawClient(t *testing.T, w *World) *rawClient {
	c := &rawClient{t: t, w: w, http: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfigFor(t, w.TLSRootsPEM)}}}
	resp, body := c.do(http.MethodGet, w.DirectoryURL, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET directory = %d", resp.StatusCode)
	}
	if err := json.Unmarshal(body, &c.dir); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *rawClient) url(name string) string { return c.dir[name].(string) }

func (c *rawClient) do(method, url, contentType string, body []byte) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Replay-Nonce") == "" {
		c.t.Errorf("%s %s: response %d has no Replay-Nonce", method, url, resp.StatusCode)
	}
	return resp, b
}

func (c *rawClient) nonce() string {
	c.t.Helper()
	resp, _ := c.do(http.MethodHead, c.url("newNonce"), "", nil)
	return resp.Header.Get("Replay-Nonce")
}

// jwsKey is a test account key with its JWK and JWS algorithm.
type jwsKey struct {
	signer crypto.Signer
	alg    string
	jwk    string
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newJWSKey(t *testing.T, kind string) jwsKey {
	t.Helper()
	switch kind {
	case "ES256", "ES384":
		curve, size := elliptic.P256(), 32
		if kind == "ES384" {
			curve, size = elliptic.P384(), 48
		}
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pt, _ := k.PublicKey.Bytes()
		return jwsKey{k, kind, fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, curve.Params().Name, b64u(pt[1:1+size]), b64u(pt[1+size:]))}
	case "RS256", "RS256-1024":
		bits := 2048
		if kind == "RS256-1024" {
			bits = 1024
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		return jwsKey{k, "RS256", fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, b64u(big.NewInt(int64(k.E)).Bytes()), b64u(k.N.Bytes()))}
	case "EdDSA":
		pub, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return jwsKey{k, "EdDSA", fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":%q}`, b64u(pub))}
	}
	t.Fatalf("unknown key kind %s", kind)
	return jwsKey{}
}

// sign makes a flattened JWS. kid == "" puts the jwk in the header;
// payload nil means POST-as-GET. alg overrides the key's algorithm.
func (k jwsKey) sign(t *testing.T, alg, kid, nonce, url string, payload []byte) []byte {
	t.Helper()
	if alg == "" {
		alg = k.alg
	}
	h := map[string]any{"alg": alg, "url": url}
	if nonce != "" {
		h["nonce"] = nonce
	}
	if kid != "" {
		h["kid"] = kid
	} else {
		h["jwk"] = json.RawMessage(k.jwk)
	}
	hj, _ := json.Marshal(h)
	prot := b64u(hj)
	pl := ""
	if payload != nil {
		pl = b64u(payload)
	}
	input := []byte(prot + "." + pl)
	var sig []byte
	switch alg {
	case "none":
	case "HS256":
		m := hmac.New(sha256.New, []byte("secret"))
		m.Write(input)
		sig = m.Sum(nil)
	default:
		switch key := k.signer.(type) {
		case *ecdsa.PrivateKey:
			hf := crypto.SHA256
			if key.Curve == elliptic.P384() {
				hf = crypto.SHA384
			}
			hh := hf.New()
			hh.Write(input)
			r, s, err := ecdsa.Sign(rand.Reader, key, hh.Sum(nil))
			if err != nil {
				t.Fatal(err)
			}
			size := (key.Curve.Params().BitSize + 7) / 8
			sig = append(r.FillBytes(make([]byte, size)), s.FillBytes(make([]byte, size))...)
		case *rsa.PrivateKey:
			sum := sha256.Sum256(input)
			var err error
			if sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:]); err != nil {
				t.Fatal(err)
			}
		case ed25519.PrivateKey:
			sig = ed25519.Sign(key, input)
		}
	}
	out, _ := json.Marshal(map[string]string{"protected": prot, "payload": pl, "signature": b64u(sig)})
	return out
}

type problemDoc struct {
	Type       string   `json:"type"`
	Detail     string   `json:"detail"`
	Status     int      `json:"status"`
	Algorithms []string `json:"algorithms"`
}

func (c *rawClient) post(url string, body []byte) (*http.Response, problemDoc) {
	c.t.Helper()
	resp, b := c.do(http.MethodPost, url, "application/jose+json", body)
	var p problemDoc
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		if err := json.Unmarshal(b, &p); err != nil {
			c.t.Fatalf("problem document: %v", err)
		}
		if p.Status != resp.StatusCode {
			c.t.Errorf("problem status %d, HTTP status %d", p.Status, resp.StatusCode)
		}
	}
	return resp, p
}

func (c *rawClient) newAccount(k jwsKey) string {
	c.t.Helper()
	resp, p := c.post(c.url("newAccount"), k.sign(c.t, "", "", c.nonce(), c.url("newAccount"), []byte(`{"termsOfServiceAgreed":true}`)))
	if resp.StatusCode != http.StatusCreated {
		c.t.Fatalf("newAccount = %d %+v, want 201", resp.StatusCode, p)
	}
	return resp.Header.Get("Location")
}

// TestJWSAlgorithms creates accounts and orders with every supported
// algorithm.
func TestJWSAlgorithms(t *testing.T) {
	t.Parallel()
	w := startWorld(t, Options{})
	if err := w.AddUser("alice@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	c := newRawClient(t, w)
	for _, kind := range []string{"ES256", "ES384", "RS256", "EdDSA"} {
		t.Run(kind, func(t *testing.T) {
			c.t = t
			k := newJWSKey(t, kind)
			kid := c.newAccount(k)
			order := []byte(`{"identifiers":[{"type":"email","value":"alice@example.org"}]}`)
			resp, p := c.post(c.url("newOrder"), k.sign(t, "", kid, c.nonce(), c.url("newOrder"), order))
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("newOrder = %d %+v, want 201", resp.StatusCode, p)
			}
			resp, body := c.do(http.MethodPost, kid+"/orders", "application/jose+json", k.sign(t, "", kid, c.nonce(), kid+"/orders", nil))
			var list struct{ Orders []string }
			if err := json.Unmarshal(body, &list); resp.StatusCode != http.StatusOK || err != nil || len(list.Orders) != 1 {
				t.Errorf("orders list = %d %s, want one order", resp.StatusCode, body)
			}
			// The same key again finds the same account.
			resp, _ = c.post(c.url("newAccount"), k.sign(t, "", "", c.nonce(), c.url("newAccount"), []byte(`{"onlyReturnExisting":true}`)))
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != kid {
				t.Errorf("onlyReturnExisting = %d %q, want 200 %q", resp.StatusCode, resp.Header.Get("Location"), kid)
			}
		})
	}
}

// TestJWSRejected sends malformed, forged and replayed requests.
func TestJWSRejected(t *testing.T) {
	t.Parallel()
	w := startWorld(t, Options{})
	if err := w.AddUser("alice@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	c := newRawClient(t, w)
	k := newJWSKey(t, "ES256")
	kid := c.newAccount(k)
	newOrder := c.url("newOrder")
	order := []byte(`{"identifiers":[{"type":"email","value":"alice@example.org"}]}`)

	tests := []struct {
		name       string
		url        string
		body       func() []byte
		wantStatus int
		wantType   string
		wantDetail string
	}{
		{"bad signature", newOrder, func() []byte {
			var m map[string]string
			json.Unmarshal(k.sign(t, "", kid, c.nonce(), newOrder, order), &m)
			sig, _ := base64.RawURLEncoding.DecodeString(m["signature"])
			sig[5] ^= 1
			m["signature"] = b64u(sig)
			b, _ := json.Marshal(m)
			return b
		}, 400, probMalformed, "signature"},
		{"payload changed", newOrder, func() []byte {
			var m map[string]string
			json.Unmarshal(k.sign(t, "", kid, c.nonce(), newOrder, order), &m)
			m["payload"] = b64u([]byte(`{"identifiers":[{"type":"email","value":"bob@example.org"}]}`))
			b, _ := json.Marshal(m)
			return b
		}, 400, probMalformed, "signature"},
		{"alg none", newOrder, func() []byte { return k.sign(t, "none", kid, c.nonce(), newOrder, order) }, 400, probBadSignatureAlgorithm, "alg none"},
		{"HS256", newOrder, func() []byte { return k.sign(t, "HS256", kid, c.nonce(), newOrder, order) }, 400, probBadSignatureAlgorithm, "MAC"},
		{"alg does not fit key", newOrder, func() []byte { return k.sign(t, "ES384", kid, c.nonce(), newOrder, order) }, 400, probBadSignatureAlgorithm, "does not fit"},
		{"url mismatch", newOrder, func() []byte { return k.sign(t, "", kid, c.nonce(), c.url("newAccount"), order) }, 403, probUnauthorized, "does not match the request URL"},
		{"no nonce", newOrder, func() []byte { return k.sign(t, "", kid, "", newOrder, order) }, 400, probBadNonce, "no nonce"},
		{"made-up nonce", newOrder, func() []byte { return k.sign(t, "", kid, "AAAAAAAAAAAAAAAAAAAAAA", newOrder, order) }, 400, probBadNonce, "unknown or was already used"},
		{"kid for newAccount", c.url("newAccount"), func() []byte {
			return k.sign(t, "", kid, c.nonce(), c.url("newAccount"), []byte(`{"termsOfServiceAgreed":true}`))
		}, 400, probMalformed, "jwk, not a kid"},
		{"jwk for newOrder", newOrder, func() []byte { return k.sign(t, "", "", c.nonce(), newOrder, order) }, 400, probMalformed, "not a jwk"},
		{"unknown kid", newOrder, func() []byte { return k.sign(t, "", kid+"x", c.nonce(), newOrder, order) }, 400, probAccountDoesNotExist, "no account"},
		{"unprotected header", newOrder, func() []byte {
			var m map[string]any
			json.Unmarshal(k.sign(t, "", kid, c.nonce(), newOrder, order), &m)
			m["header"] = map[string]string{"kid": kid}
			b, _ := json.Marshal(m)
			return b
		}, 400, probMalformed, "unprotected header"},
		{"not JSON", newOrder, func() []byte { return []byte("hello") }, 400, probMalformed, "not a JSON object"},
		{"small RSA key", c.url("newAccount"), func() []byte {
			return newJWSKey(t, "RS256-1024").sign(t, "", "", c.nonce(), c.url("newAccount"), []byte(`{"termsOfServiceAgreed":true}`))
		}, 400, probBadPublicKey, "1024 bits"},
		{"terms not agreed", c.url("newAccount"), func() []byte {
			return newJWSKey(t, "ES256").sign(t, "", "", c.nonce(), c.url("newAccount"), []byte(`{}`))
		}, 400, probMalformed, "terms of service"},
		{"onlyReturnExisting unknown", c.url("newAccount"), func() []byte {
			return newJWSKey(t, "ES256").sign(t, "", "", c.nonce(), c.url("newAccount"), []byte(`{"onlyReturnExisting":true}`))
		}, 400, probAccountDoesNotExist, "no account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.t = t
			resp, p := c.post(tt.url, tt.body())
			if resp.StatusCode != tt.wantStatus || p.Type != tt.wantType || !strings.Contains(p.Detail, tt.wantDetail) {
				t.Errorf("POST = %d %+v, want %d %s containing %q", resp.StatusCode, p, tt.wantStatus, tt.wantType, tt.wantDetail)
			}
			if tt.wantType == probBadSignatureAlgorithm && len(p.Algorithms) == 0 {
				t.Errorf("badSignatureAlgorithm without algorithms")
			}
		})
	}

	t.Run("reused nonce", func(t *testing.T) {
		c.t = t
		body := k.sign(t, "", kid, c.nonce(), newOrder, order)
		if resp, p := c.post(newOrder, body); resp.StatusCode != http.StatusCreated {
			t.Fatalf("first POST = %d %+v, want 201", resp.StatusCode, p)
		}
		resp, p := c.post(newOrder, body)
		if resp.StatusCode != http.StatusBadRequest || p.Type != probBadNonce {
			t.Fatalf("replayed POST = %d %+v, want 400 badNonce", resp.StatusCode, p)
		}
		// The nonce of the error response is good for a retry.
		retry := k.sign(t, "", kid, resp.Header.Get("Replay-Nonce"), newOrder, order)
		if resp, p := c.post(newOrder, retry); resp.StatusCode != http.StatusCreated {
			t.Errorf("retry = %d %+v, want 201", resp.StatusCode, p)
		}
		if n := w.Stats().BadNonces; n < 1 {
			t.Errorf("BadNonces = %d", n)
		}
	})

	t.Run("methods and media types", func(t *testing.T) {
		c.t = t
		if resp, _ := c.do(http.MethodGet, c.url("newNonce"), "", nil); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET newNonce = %d %q, want 204 no-store", resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
		if resp, _ := c.do(http.MethodGet, newOrder, "", nil); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET newOrder = %d, want 405", resp.StatusCode)
		}
		if resp, _ := c.do(http.MethodPost, newOrder, "application/json", k.sign(t, "", kid, c.nonce(), newOrder, order)); resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("POST application/json = %d, want 415", resp.StatusCode)
		}
		if resp, _ := c.do(http.MethodGet, strings.Replace(c.url("newOrder"), "new-order", "nothing", 1), "", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET unknown path = %d, want 404", resp.StatusCode)
		}
	})
}

func FuzzParseJWS(f *testing.F) {
	f.Add([]byte(`{"protected":"eyJhbGciOiJFUzI1NiJ9","payload":"","signature":"AA"}`))
	f.Add([]byte(`{"protected":"eyJhbGciOiJFUzI1NiIsImp3ayI6eyJrdHkiOiJFQyIsImNydiI6IlAtMjU2IiwieCI6IkEiLCJ5IjoiQiJ9fQ","payload":"e30","signature":"AA"}`))
	f.Add([]byte(`{"kty":"RSA","n":"AQAB","e":"AQAB"}`))
	f.Add([]byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if j, prob := parseJWS(data); prob == nil {
			if len(j.header.JWK) > 0 {
				if key, prob := parseJWK(j.header.JWK); prob == nil {
					_ = verifyJWS(j, key.pub)
				}
			}
		}
		if key, prob := parseJWK(data); prob == nil && (key.thumbprint == "" || key.pub == nil) {
			t.Fatalf("parseJWK(%q) returned an empty key", data)
		}
	})
}
