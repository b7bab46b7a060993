package keystore

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"unicode/utf16"
)

// P12Entry is one key and its certificate chain (leaf first) for
// [EncodePKCS12Bundle].
type P12Entry struct {
	Key   crypto.Signer
	Chain []*x509.Certificate
}

// EncodePKCS12Bundle encodes several keys, each with its certificate
// chain, as one PKCS #12 file with the algorithms of profile: what a mail
// client needs to read old mail encrypted to earlier certificates. Each
// key is tied to its leaf by a localKeyId attribute (the SHA-1 of the
// leaf), as in a single-key file; CA certificates shared by several
// chains are stored once, and so is a key certified more than once (its
// other certificates are stored without a localKeyId).
//
// go-pkcs12 writes one key per file, so each entry is encoded with it and
// the SafeContents of all of them are joined into one AuthenticatedSafe
// under a new MAC (same algorithm and iteration count as go-pkcs12's, an
// 8-byte salt, with the RFC 7292 appendix B key derivation). The
// encrypted parts are kept as go-pkcs12 wrote them.
func EncodePKCS12Bundle(entries []P12Entry, password string, profile P12Profile) ([]byte, error) {
	if len(entries) == 0 {
		return nil, errors.New("encode PKCS #12: no key")
	}
	if len(entries) == 1 {
		return EncodePKCS12(entries[0].Key, entries[0].Chain, password, profile)
	}
	enc, err := profile.encoder()
	if err != nil {
		return nil, fmt.Errorf("encode PKCS #12: %w", err)
	}
	if password == "" {
		return nil, errors.New("encode PKCS #12: empty password")
	}
	// One key bag per distinct key: a key certified more than once (a
	// renewal that kept the key) is stored once, with its first leaf, and
	// its other leaves go along as plain certificates (importers link
	// certificates to keys by the public key).
	type unique struct {
		key    crypto.Signer
		leaf   *x509.Certificate
		others []*x509.Certificate
	}
	var keys []*unique
	byKey := map[string]*unique{}
	seenCA := map[string]bool{}
	for i, e := range entries {
		switch {
		case e.Key == nil:
			return nil, fmt.Errorf("encode PKCS #12: entry %d has no key", i+1)
		case len(e.Chain) == 0:
			return nil, fmt.Errorf("encode PKCS #12: entry %d has no certificate", i+1)
		case !publicKeysEqual(e.Key.Public(), e.Chain[0].PublicKey):
			return nil, fmt.Errorf("encode PKCS #12: the key of entry %d is not its certificate's key", i+1)
		}
		pub, err := x509.MarshalPKIXPublicKey(e.Key.Public())
		if err != nil {
			return nil, fmt.Errorf("encode PKCS #12: entry %d: %w", i+1, err)
		}
		u := byKey[string(pub)]
		if u == nil {
			u = &unique{key: e.Key, leaf: e.Chain[0]}
			byKey[string(pub)] = u
			keys = append(keys, u)
		} else if !u.leaf.Equal(e.Chain[0]) {
			u.others = append(u.others, e.Chain[0])
		}
		for _, c := range e.Chain[1:] {
			if !seenCA[string(c.Raw)] {
				seenCA[string(c.Raw)] = true
				u.others = append(u.others, c)
			}
		}
	}
	var contents []asn1.RawValue
	var first p12PFX
	for i, u := range keys {
		key := u.key
		if k, ok := key.(*ed25519.PrivateKey); ok {
			key = *k
		}
		data, err := enc.Encode(key, u.leaf, u.others, password)
		if err != nil {
			return nil, fmt.Errorf("encode PKCS #12: key %d: %w", i+1, err)
		}
		pfx, safe, err := p12Split(data)
		if err != nil {
			return nil, fmt.Errorf("encode PKCS #12: key %d: %w", i+1, err)
		}
		if i == 0 {
			first = pfx
		}
		contents = append(contents, safe...)
	}
	authSafe, err := asn1.Marshal(contents)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS #12: %w", err)
	}
	mac := first.MacData
	mac.MacSalt = make([]byte, p12MACSaltLen)
	if _, err := rand.Read(mac.MacSalt); err != nil {
		return nil, fmt.Errorf("encode PKCS #12: %w", err)
	}
	h, err := p12MACHash(mac.Mac.Algorithm.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS #12: %w", err)
	}
	mac.Mac.Digest, err = p12MAC(h, password, mac.MacSalt, mac.Iterations, authSafe)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS #12: %w", err)
	}
	octets, err := asn1.Marshal(authSafe)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS #12: %w", err)
	}
	out := p12PFX{
		Version:  3,
		AuthSafe: p12ContentInfo{ContentType: first.AuthSafe.ContentType, Content: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: octets}},
		MacData:  mac,
	}
	data, err := asn1.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS #12: %w", err)
	}
	return data, nil
}

// The PKCS #12 structures of RFC 7292 that the bundle needs.
type p12PFX struct {
	Version  int
	AuthSafe p12ContentInfo
	MacData  p12MacData `asn1:"optional"`
}

type p12ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
}

type p12MacData struct {
	Mac struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}
	MacSalt    []byte
	Iterations int `asn1:"optional,default:1"`
}

var (
	oidP12Data   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidP12SHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidP12SHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

// p12Split returns a PFX and the ContentInfos of its AuthenticatedSafe.
func p12Split(data []byte) (p12PFX, []asn1.RawValue, error) {
	pfx, safe, _, err := p12SplitRaw(data)
	return pfx, safe, err
}

// p12SplitRaw is p12Split that also returns the AuthenticatedSafe's DER,
// the octets the MAC covers.
func p12SplitRaw(data []byte) (p12PFX, []asn1.RawValue, []byte, error) {
	var pfx p12PFX
	if rest, err := asn1.Unmarshal(data, &pfx); err != nil || len(rest) > 0 {
		return pfx, nil, nil, fmt.Errorf("re-read the PKCS #12 encoding: %v", err)
	}
	if !pfx.AuthSafe.ContentType.Equal(oidP12Data) {
		return pfx, nil, nil, errors.New("re-read the PKCS #12 encoding: the AuthenticatedSafe is not data")
	}
	var octets []byte
	if rest, err := asn1.Unmarshal(pfx.AuthSafe.Content.Bytes, &octets); err != nil || len(rest) > 0 {
		return pfx, nil, nil, fmt.Errorf("re-read the PKCS #12 encoding: %v", err)
	}
	var safe []asn1.RawValue
	if rest, err := asn1.Unmarshal(octets, &safe); err != nil || len(rest) > 0 {
		return pfx, nil, nil, fmt.Errorf("re-read the PKCS #12 encoding: %v", err)
	}
	return pfx, safe, octets, nil
}

// p12MACSaltLen is the length of the MAC salt acmemail writes: 8 bytes,
// as OpenSSL 3's pkcs12 -export does. go-pkcs12's Modern2023 uses 16,
// which macOS Keychain has been reported to refuse.
const p12MACSaltLen = 8

// p12Resalt gives a PKCS #12 file a new MAC with a fresh salt of
// p12MACSaltLen bytes (same algorithm and iteration count); the
// encrypted contents stay as they are.
func p12Resalt(data []byte, password string) ([]byte, error) {
	pfx, _, authSafe, err := p12SplitRaw(data)
	if err != nil {
		return nil, err
	}
	if len(pfx.MacData.MacSalt) == p12MACSaltLen {
		return data, nil
	}
	h, err := p12MACHash(pfx.MacData.Mac.Algorithm.Algorithm)
	if err != nil {
		return nil, err
	}
	salt := make([]byte, p12MACSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	pfx.MacData.MacSalt = salt
	if pfx.MacData.Mac.Digest, err = p12MAC(h, password, salt, pfx.MacData.Iterations, authSafe); err != nil {
		return nil, err
	}
	return asn1.Marshal(pfx)
}

func p12MACHash(oid asn1.ObjectIdentifier) (func() hash.Hash, error) {
	switch {
	case oid.Equal(oidP12SHA1):
		return sha1.New, nil
	case oid.Equal(oidP12SHA256):
		return sha256.New, nil
	}
	return nil, fmt.Errorf("unsupported PKCS #12 MAC algorithm %s", oid)
}

// p12MAC computes the PKCS #12 MAC of data: HMAC with a key derived from
// the password by the RFC 7292 appendix B.2 function (ID 3).
func p12MAC(h func() hash.Hash, password string, salt []byte, iterations int, data []byte) ([]byte, error) {
	pw, err := p12BMPString(password)
	if err != nil {
		return nil, err
	}
	key := p12KDF(h, salt, pw, iterations, 3, h().Size())
	m := hmac.New(h, key)
	m.Write(data)
	return m.Sum(nil), nil
}

// p12BMPString encodes s as a zero-terminated BMPString (UTF-16BE), the
// form RFC 7292 appendix B.1 feeds to the key derivation.
func p12BMPString(s string) ([]byte, error) {
	out := make([]byte, 0, 2*len(s)+2)
	for _, r := range s {
		if r > 0xFFFF || utf16.IsSurrogate(r) {
			return nil, errors.New("the PKCS #12 password holds a character outside the Basic Multilingual Plane")
		}
		out = append(out, byte(r>>8), byte(r))
	}
	return append(out, 0, 0), nil
}

// p12KDF is the key derivation of RFC 7292 appendix B.2 with hash h
// (block size v = 64 bytes for SHA-1 and SHA-256).
func p12KDF(h func() hash.Hash, salt, password []byte, iterations int, id byte, size int) []byte {
	const v = 64
	u := h().Size()
	fill := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		n := v * ((len(b) + v - 1) / v)
		out := make([]byte, n)
		for i := range out {
			out[i] = b[i%len(b)]
		}
		return out
	}
	d := make([]byte, v)
	for i := range d {
		d[i] = id
	}
	in := append(fill(salt), fill(password)...)
	var out []byte
	// One hash, reset and summed into the same buffer: the iterations are
	// the whole cost, and a new hash and digest per iteration was about
	// half of it.
	hh := h()
	a := make([]byte, 0, u)
	for len(out) < size {
		hh.Reset()
		hh.Write(d)
		hh.Write(in)
		a = hh.Sum(a[:0])
		for j := 1; j < iterations; j++ {
			hh.Reset()
			hh.Write(a)
			a = hh.Sum(a[:0])
		}
		out = append(out, a...)
		if len(out) >= size {
			break
		}
		b := make([]byte, v)
		for i := range b {
			b[i] = a[i%u]
		}
		for j := 0; j < len(in); j += v {
			// in[j:j+v] = (in[j:j+v] + b + 1) mod 2^(8v)
			carry := 1
			for k := v - 1; k >= 0; k-- {
				x := int(in[j+k]) + int(b[k]) + carry
				in[j+k] = byte(x)
				carry = x >> 8
			}
		}
	}
	return out[:size]
}
