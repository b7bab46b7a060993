package sandbox

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"hash"
)

// External account binding (RFC 8555 §7.3.4). A CA that requires it hands
// out a key identifier and an HMAC key outside ACME; the client proves it
// holds them by MACing its account key into the newAccount request.

// eabKeyLength is the size of generated HMAC keys: 32 octets, as HS256
// wants at least the hash's output size (RFC 7518 §3.2).
const eabKeyLength = 32

// newEABKey makes a random key identifier and HMAC key.
func newEABKey() (kid string, key []byte, err error) {
	key = make([]byte, eabKeyLength)
	if _, err := rand.Read(key); err != nil {
		return "", nil, err
	}
	return "kid-" + newID(), key, nil
}

// verifyEAB checks the externalAccountBinding member of a newAccount
// request: a flattened JWS, MACed with a known key, for the newAccount URL,
// without a nonce, whose payload is the account's own public key. It
// returns the key identifier the account is bound to.
func (ca *authority) verifyEAB(raw json.RawMessage, req *request) (string, *problem) {
	unauthorized := func(format string, args ...any) (string, *problem) {
		return "", newProblem(probUnauthorized, "externalAccountBinding: "+format, args...)
	}
	malformed := func(format string, args ...any) (string, *problem) {
		return "", newProblem(probMalformed, "externalAccountBinding: "+format, args...)
	}
	j, prob := parseJWS(raw)
	if prob != nil {
		return malformed("%s", prob.Detail)
	}
	var h func() hash.Hash
	switch j.header.Alg {
	case "HS256":
		h = sha256.New
	case "HS384":
		h = sha512.New384
	case "HS512":
		h = sha512.New
	default:
		// RFC 8555 §7.3.4: "The 'alg' field MUST indicate a MAC-based algorithm".
		return malformed("alg %q is not a MAC algorithm (use HS256)", j.header.Alg)
	}
	if j.header.Nonce != "" {
		return malformed("the protected header must not carry a nonce (RFC 8555 §7.3.4)")
	}
	if len(j.header.JWK) > 0 {
		return malformed("the protected header must carry kid, not jwk")
	}
	if j.header.URL != req.url {
		return malformed("url %q must be the newAccount URL %q", j.header.URL, req.url)
	}
	if j.header.Kid == "" {
		return malformed("the protected header has no kid (the key identifier the CA gave you)")
	}
	key, ok := ca.opt.EABKeys[j.header.Kid]
	if !ok {
		return unauthorized("unknown key identifier %q", j.header.Kid)
	}
	mac := hmac.New(h, key)
	mac.Write(j.signingInput)
	if !hmac.Equal(mac.Sum(nil), j.signature) {
		return unauthorized("the MAC does not verify with the HMAC key of %q", j.header.Kid)
	}
	bound, prob := parseJWK(j.payload)
	if prob != nil {
		return malformed("the payload is not a public JWK: %s", prob.Detail)
	}
	if bound.thumbprint != req.key.thumbprint {
		return unauthorized("the payload is not the key that signed this request")
	}
	return j.header.Kid, nil
}

// EABKeyString formats an HMAC key the way CAs hand it out: unpadded
// base64url (RFC 8555 §7.3.4).
func EABKeyString(key []byte) string { return b64(key) }
