package sandbox

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"math/big"
	"strings"
)

// supportedAlgs are the JWS algorithms this server verifies.
var supportedAlgs = []string{"ES256", "ES384", "ES512", "RS256", "EdDSA"}

// flatJWS is a JWS in flattened JSON serialization (RFC 7515 §7.2.2).
type flatJWS struct {
	Protected  string          `json:"protected"`
	Payload    *string         `json:"payload"`
	Signature  *string         `json:"signature"`
	Header     json.RawMessage `json:"header"`
	Signatures json.RawMessage `json:"signatures"`
}

type jwsHeader struct {
	Alg   string          `json:"alg"`
	Nonce string          `json:"nonce"`
	URL   string          `json:"url"`
	Kid   string          `json:"kid"`
	JWK   json.RawMessage `json:"jwk"`
	Crit  json.RawMessage `json:"crit"`
	B64   *bool           `json:"b64"`
}

// parsedJWS is a structurally valid JWS whose signature is not yet checked.
type parsedJWS struct {
	header       jwsHeader
	payload      []byte // decoded; empty for POST-as-GET
	postAsGet    bool
	signingInput []byte
	signature    []byte
}

// parseJWS decodes a flattened JWS. It checks structure only.
func parseJWS(body []byte) (*parsedJWS, *problem) {
	var f flatJWS
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, newProblem(probMalformed, "the request body is not a JSON object: %v", err)
	}
	if len(f.Signatures) > 0 {
		return nil, newProblem(probMalformed, "the request uses the general JWS JSON serialization; ACME requires the flattened serialization (RFC 8555 §6.2)")
	}
	if len(f.Header) > 0 {
		return nil, newProblem(probMalformed, "the JWS has an unprotected header; ACME forbids it (RFC 8555 §6.2)")
	}
	if f.Protected == "" || f.Payload == nil || f.Signature == nil {
		return nil, newProblem(probMalformed, "the JWS must have protected, payload and signature members")
	}
	prot, err := base64.RawURLEncoding.DecodeString(f.Protected)
	if err != nil {
		return nil, newProblem(probMalformed, "the JWS protected header is not unpadded base64url: %v", err)
	}
	var h jwsHeader
	if err := json.Unmarshal(prot, &h); err != nil {
		return nil, newProblem(probMalformed, "the JWS protected header is not a JSON object: %v", err)
	}
	if len(h.Crit) > 0 || h.B64 != nil {
		return nil, newProblem(probMalformed, "the JWS uses crit or b64, which this server does not support")
	}
	payload, err := base64.RawURLEncoding.DecodeString(*f.Payload)
	if err != nil {
		return nil, newProblem(probMalformed, "the JWS payload is not unpadded base64url: %v", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(*f.Signature)
	if err != nil {
		return nil, newProblem(probMalformed, "the JWS signature is not unpadded base64url: %v", err)
	}
	return &parsedJWS{
		header:       h,
		payload:      payload,
		postAsGet:    *f.Payload == "",
		signingInput: []byte(f.Protected + "." + *f.Payload),
		signature:    sig,
	}, nil
}

// checkAlg rejects algorithms this server does not verify.
func checkAlg(alg string) *problem {
	switch {
	case alg == "":
		return newProblem(probMalformed, "the JWS protected header has no alg")
	case strings.EqualFold(alg, "none"):
		return &problem{Type: probBadSignatureAlgorithm, Status: 400, Detail: "unsigned JWS (alg none) is not allowed", Algorithms: supportedAlgs}
	case strings.HasPrefix(alg, "HS"):
		return &problem{Type: probBadSignatureAlgorithm, Status: 400, Detail: "MAC algorithms such as " + alg + " are not allowed for ACME requests", Algorithms: supportedAlgs}
	}
	for _, a := range supportedAlgs {
		if a == alg {
			return nil
		}
	}
	return &problem{Type: probBadSignatureAlgorithm, Status: 400, Detail: fmt.Sprintf("unsupported JWS algorithm %q", alg), Algorithms: supportedAlgs}
}

// jwk is a parsed account public key.
type jwk struct {
	pub        crypto.PublicKey
	thumbprint string // RFC 7638, base64url SHA-256
	canonical  []byte // the RFC 7638 member set, for storage
}

type rawJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
	D   string `json:"d"`
}

// parseJWK parses a public JWK (EC P-256/384/521, RSA >= 2048 bits, OKP
// Ed25519).
func parseJWK(data []byte) (*jwk, *problem) {
	var r rawJWK
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, newProblem(probMalformed, "the jwk is not a JSON object: %v", err)
	}
	bad := func(format string, args ...any) (*jwk, *problem) {
		return nil, newProblem(probBadPublicKey, format, args...)
	}
	if r.D != "" {
		return bad("the jwk contains private key material (d); send only the public key")
	}
	dec := base64.RawURLEncoding.DecodeString
	switch r.Kty {
	case "EC":
		var curve elliptic.Curve
		switch r.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return bad("unsupported EC curve %q; use P-256, P-384 or P-521", r.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err1 := dec(r.X)
		y, err2 := dec(r.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return bad("the EC jwk coordinates must be %d-byte unpadded base64url values", size)
		}
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return bad("the EC jwk is not a valid point: %v", err)
		}
		canon := fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, r.Crv, b64(x), b64(y))
		return newJWK(pub, canon), nil
	case "RSA":
		n, err1 := dec(r.N)
		e, err2 := dec(r.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 {
			return bad("the RSA jwk needs unpadded base64url n and e")
		}
		if n[0] == 0 || e[0] == 0 {
			return bad("the RSA jwk n and e must not have leading zero octets (RFC 7518 §6.3.1)")
		}
		N := new(big.Int).SetBytes(n)
		if bits := N.BitLen(); bits < 2048 || bits > 8192 {
			return bad("the RSA account key has %d bits; this server accepts 2048 to 8192", bits)
		}
		if len(e) > 4 {
			return bad("the RSA public exponent is too large")
		}
		E := int(new(big.Int).SetBytes(e).Int64())
		if E < 3 || E%2 == 0 {
			return bad("the RSA public exponent must be odd and at least 3")
		}
		canon := fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, b64(e), b64(n))
		return newJWK(&rsa.PublicKey{N: N, E: E}, canon), nil
	case "OKP":
		if r.Crv != "Ed25519" {
			return bad("unsupported OKP curve %q; use Ed25519", r.Crv)
		}
		x, err := dec(r.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return bad("the Ed25519 jwk x must be a 32-byte unpadded base64url value")
		}
		canon := fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":%q}`, b64(x))
		return newJWK(ed25519.PublicKey(x), canon), nil
	case "":
		return bad("the jwk has no kty")
	}
	return bad("unsupported key type %q; use EC, RSA or OKP", r.Kty)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newJWK(pub crypto.PublicKey, canonical string) *jwk {
	sum := sha256.Sum256([]byte(canonical))
	return &jwk{pub: pub, thumbprint: base64.RawURLEncoding.EncodeToString(sum[:]), canonical: []byte(canonical)}
}

// verifyJWS checks the signature of j with pub under the header's alg.
func verifyJWS(j *parsedJWS, pub crypto.PublicKey) *problem {
	alg := j.header.Alg
	mismatch := func(kind string) *problem {
		return &problem{Type: probBadSignatureAlgorithm, Status: 400, Detail: fmt.Sprintf("alg %s does not fit the account's %s key", alg, kind), Algorithms: supportedAlgs}
	}
	invalid := newProblem(probMalformed, "JWS verification error: the signature does not verify with the account key")
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		var h hash.Hash
		want := ""
		switch pub.Curve {
		case elliptic.P256():
			h, want = sha256.New(), "ES256"
		case elliptic.P384():
			h, want = sha512.New384(), "ES384"
		case elliptic.P521():
			h, want = sha512.New(), "ES512"
		}
		if alg != want {
			return mismatch(pub.Curve.Params().Name)
		}
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(j.signature) != 2*size {
			return newProblem(probMalformed, "JWS verification error: an %s signature is %d bytes (r||s), not %d", alg, 2*size, len(j.signature))
		}
		h.Write(j.signingInput)
		r := new(big.Int).SetBytes(j.signature[:size])
		s := new(big.Int).SetBytes(j.signature[size:])
		if !ecdsa.Verify(pub, h.Sum(nil), r, s) {
			return invalid
		}
	case *rsa.PublicKey:
		if alg != "RS256" {
			return mismatch("RSA")
		}
		sum := sha256.Sum256(j.signingInput)
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], j.signature) != nil {
			return invalid
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return mismatch("Ed25519")
		}
		if !ed25519.Verify(pub, j.signingInput, j.signature) {
			return invalid
		}
	default:
		return newProblem(probServerInternal, "unsupported stored key type %T", pub)
	}
	return nil
}
