package sandbox

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newToken returns a fresh token part of the given length from crypto/rand:
// 22 and 43 characters are unpadded base64url of 16 and 32 random octets
// (CASTLE, secsy-pki), 32 characters are drawn uniformly from [A-Za-z0-9]
// (acme2certifier's format, about 190 bits).
func newToken(length int) (string, error) {
	switch length {
	case 22, 43:
		b := make([]byte, length*6/8)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		return base64.RawURLEncoding.EncodeToString(b), nil
	case 32:
		out := make([]byte, 0, length)
		buf := make([]byte, 2*length)
		for len(out) < length {
			if _, err := rand.Read(buf); err != nil {
				return "", err
			}
			for _, c := range buf {
				// 248 = 4*62: reject the tail so every character is equally likely.
				if c < 248 && len(out) < length {
					out = append(out, alnum[c%62])
				}
			}
		}
		return string(out), nil
	}
	return "", fmt.Errorf("token length %d: must be 22, 32 or 43", length)
}

// joinMode is how the CA concatenates token-part1 and token-part2.
type joinMode int

const (
	joinString joinMode = iota // the two strings, as sent
	joinOctet                  // decode both, join the octets, re-encode unpadded
)

// responseDigest computes base64url(SHA-256(token "." thumbprint)), the
// value the reply must carry (RFC 8823 §3.1 step 6, RFC 8555 §8.1).
func responseDigest(tp1, tp2, thumbprint string, mode joinMode) (string, error) {
	token := tp1 + tp2
	if mode == joinOctet {
		a, err := base64.RawURLEncoding.DecodeString(tp1)
		if err != nil {
			return "", fmt.Errorf("decode token-part1: %w", err)
		}
		b, err := base64.RawURLEncoding.DecodeString(tp2)
		if err != nil {
			return "", fmt.Errorf("decode token-part2: %w", err)
		}
		token = base64.RawURLEncoding.EncodeToString(append(a, b...))
	}
	sum := sha256.Sum256([]byte(token + "." + thumbprint))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}
