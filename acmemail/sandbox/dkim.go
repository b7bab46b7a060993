package sandbox

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/emersion/go-msgauth/dkim"
)

// dkimSelector is the selector of every key the sandbox signs with.
const dkimSelector = "sandbox"

// dkimRegistry holds one RSA-2048 signing key per domain, created on first
// use, and the TXT records that publish them.
type dkimRegistry struct {
	mu      sync.Mutex
	domains map[string]*domainKey
	txt     map[string]string // "<selector>._domainkey.<domain>" -> record
}

type domainKey struct {
	once sync.Once
	key  *rsa.PrivateKey
	err  error
}

func newDKIMRegistry() *dkimRegistry {
	return &dkimRegistry{domains: map[string]*domainKey{}, txt: map[string]string{}}
}

// key returns the signing key of domain, creating and publishing it on
// first use.
func (r *dkimRegistry) key(domain string) (*rsa.PrivateKey, error) {
	domain = strings.ToLower(domain)
	r.mu.Lock()
	dk := r.domains[domain]
	if dk == nil {
		dk = &domainKey{}
		r.domains[domain] = dk
	}
	r.mu.Unlock()
	dk.once.Do(func() {
		dk.key, dk.err = processKey(domain)
		if dk.err != nil {
			return
		}
		der, err := x509.MarshalPKIXPublicKey(&dk.key.PublicKey)
		if err != nil {
			dk.err = err
			return
		}
		rec := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
		r.mu.Lock()
		r.txt[dkimSelector+"._domainkey."+domain] = rec
		r.mu.Unlock()
	})
	if dk.err != nil {
		return nil, fmt.Errorf("dkim key for %s: %w", domain, dk.err)
	}
	return dk.key, nil
}

// processKeys are the DKIM keys of this process, one per domain: a
// world publishes its own records, but the worlds of one process (tests
// start hundreds) share the RSA keys, each of which costs a fraction of a
// second of CPU to make. They sign test mail only.
var processKeys struct {
	mu   sync.Mutex
	keys map[string]*domainKey
}

func processKey(domain string) (*rsa.PrivateKey, error) {
	processKeys.mu.Lock()
	if processKeys.keys == nil {
		processKeys.keys = map[string]*domainKey{}
	}
	dk := processKeys.keys[domain]
	if dk == nil {
		dk = &domainKey{}
		processKeys.keys[domain] = dk
	}
	processKeys.mu.Unlock()
	dk.once.Do(func() { dk.key, dk.err = rsa.GenerateKey(rand.Reader, 2048) })
	return dk.key, dk.err
}

// lookup returns the TXT record published at name (lowercase, no final dot).
func (r *dkimRegistry) lookup(name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.txt[name]
	return rec, ok
}

// sign adds a DKIM-Signature for domain to raw (relaxed/relaxed, rsa-sha256,
// h= listing the present fields of dkimHeaders).
func (r *dkimRegistry) sign(domain string, raw []byte) ([]byte, error) {
	key, err := r.key(domain)
	if err != nil {
		return nil, err
	}
	fields, _, err := splitMessage(raw)
	if err != nil {
		return nil, fmt.Errorf("dkim sign: %w", err)
	}
	keys := signedHeaderKeys(fields)
	if len(fieldsNamed(fields, "From")) == 0 {
		return nil, errors.New("dkim sign: message has no From field")
	}
	var out bytes.Buffer
	err = dkim.Sign(&out, bytes.NewReader(raw), &dkim.SignOptions{
		Domain:                 strings.ToLower(domain),
		Selector:               dkimSelector,
		Signer:                 key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		return nil, fmt.Errorf("dkim sign: %w", err)
	}
	return out.Bytes(), nil
}

// dkimResult is the outcome of checking a message's DKIM signatures against
// an expected signing domain.
type dkimResult struct {
	pass   bool
	domain string   // d= of the passing signature, or of the first signature
	keys   []string // h= of the passing signature
	reason string   // why none passed
}

// verifyDKIM looks for a valid signature whose d= equals domain exactly
// (case-insensitive, RFC 8823 §3.1 item 6) and whose h= covers every field
// of required that the message has.
func verifyDKIM(raw []byte, domain string, required []string, lookup func(string) ([]string, error)) dkimResult {
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: lookup, MaxVerifications: 8})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return dkimResult{reason: "cannot check the DKIM signature: " + err.Error()}
	}
	if len(verifs) == 0 {
		return dkimResult{reason: "the message has no DKIM signature"}
	}
	fields, _, _ := splitMessage(raw)
	res := dkimResult{domain: verifs[0].Domain}
	var reasons []string
	for _, v := range verifs {
		if v.Err != nil {
			reasons = append(reasons, fmt.Sprintf("the DKIM signature of d=%s does not verify: %v", v.Domain, v.Err))
			continue
		}
		if !strings.EqualFold(v.Domain, domain) {
			reasons = append(reasons, fmt.Sprintf("the DKIM signature is from d=%s, not from the From domain %s", v.Domain, domain))
			continue
		}
		if missing := uncovered(fields, v.HeaderKeys, required); missing != "" {
			reasons = append(reasons, fmt.Sprintf("the DKIM signature of d=%s does not cover the %s field", v.Domain, missing))
			continue
		}
		return dkimResult{pass: true, domain: v.Domain, keys: v.HeaderKeys}
	}
	res.reason = strings.Join(reasons, "; ")
	return res
}

// uncovered returns the first field of required that the message has more
// often than h= names it, or "".
func uncovered(fields []headerField, keys, required []string) string {
	for _, name := range required {
		n := len(fieldsNamed(fields, name))
		if n == 0 {
			continue
		}
		signed := 0
		for _, k := range keys {
			if strings.EqualFold(strings.TrimSpace(k), name) {
				signed++
			}
		}
		if signed < n {
			return name
		}
	}
	return ""
}
