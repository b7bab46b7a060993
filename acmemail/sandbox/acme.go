package sandbox

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
)

// URL paths of the ACME server.
const (
	pathDirectory  = "/acme/directory"
	pathNewNonce   = "/acme/new-nonce"
	pathNewAccount = "/acme/new-account"
	pathNewOrder   = "/acme/new-order"
	pathRevoke     = "/acme/revoke-cert"
	pathKeyChange  = "/acme/key-change"
	pathTerms      = "/acme/terms"
	pathAccount    = "/acme/acct/"
	pathOrder      = "/acme/order/"
	pathAuthz      = "/acme/authz/"
	pathChallenge  = "/acme/chall/"
	pathCert       = "/acme/cert/"

	maxRequestBody = 1 << 20
	maxIdentifiers = 100
)

const termsText = `acmemail sandbox: terms of service

This certificate authority runs inside the acmemail sandbox for testing.
Its certificates chain to a root that exists only in this sandbox and
are worthless outside it. There are no other terms.
`

func (ca *authority) url(path string) string { return ca.baseURL + path }

// ServeHTTP routes ACME requests and reports each one to the observer.
func (ca *authority) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ca.observe == nil {
		ca.serve(w, r)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	ca.serve(sw, r)
	ca.observe(Observation{Kind: ObserveACME, At: start, Took: time.Since(start), Detail: r.Method + " " + acmeResource(r.URL.Path), Status: sw.status})
}

// serve routes ACME requests. Every response carries a fresh nonce.
func (ca *authority) serve(w http.ResponseWriter, r *http.Request) {
	ca.stats.update(func(s *Stats) { s.Requests++ })
	h := w.Header()
	h.Set("Replay-Nonce", ca.nonces.make())
	h.Set("Cache-Control", "no-store")
	h.Add("Link", link(ca.url(pathDirectory), "index"))

	p := r.URL.Path
	switch p {
	case pathDirectory:
		ca.get(w, r, ca.handleDirectory)
		return
	case pathNewNonce:
		switch r.Method {
		case http.MethodHead:
			w.WriteHeader(http.StatusOK)
		case http.MethodGet:
			w.WriteHeader(http.StatusNoContent)
		default:
			h.Set("Allow", "GET, HEAD")
			ca.writeProblem(w, r.URL.Path, newProblem(probMalformed, "use HEAD or GET for newNonce").withStatus(http.StatusMethodNotAllowed))
		}
		return
	case pathTerms:
		ca.get(w, r, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, termsText)
		})
		return
	case pathNewAccount:
		ca.post(w, r, authJWK, ca.handleNewAccount)
		return
	case pathNewOrder:
		ca.post(w, r, authKid, ca.handleNewOrder)
		return
	case pathRevoke:
		ca.post(w, r, authEither, ca.handleRevoke)
		return
	case pathKeyChange:
		ca.post(w, r, authKid, ca.handleKeyChange)
		return
	}
	if id, ok := strings.CutPrefix(p, pathRenewalInfo); ok && id != "" && !ca.opt.NoRenewalInfo {
		ca.handleRenewalInfo(w, r, id)
		return
	}
	if serial, ok := strings.CutPrefix(p, pathStatus); ok && serial != "" {
		ca.handleStatus(w, r, serial)
		return
	}
	type route struct {
		prefix string
		fn     func(w http.ResponseWriter, req *request, id, sub string)
	}
	for _, rt := range []route{
		{pathAccount, ca.handleAccount},
		{pathOrder, ca.handleOrder},
		{pathAuthz, ca.handleAuthz},
		{pathChallenge, ca.handleChallenge},
		{pathCert, ca.handleCert},
	} {
		rest, ok := strings.CutPrefix(p, rt.prefix)
		if !ok || rest == "" {
			continue
		}
		id, sub, _ := strings.Cut(rest, "/")
		ca.post(w, r, authKid, func(w http.ResponseWriter, req *request) { rt.fn(w, req, id, sub) })
		return
	}
	ca.writeProblem(w, r.URL.Path, newProblem(probMalformed, "no such resource: %s", p).withStatus(http.StatusNotFound))
}

func link(url, rel string) string { return fmt.Sprintf("<%s>;rel=%q", url, rel) }

func (ca *authority) get(w http.ResponseWriter, r *http.Request, fn http.HandlerFunc) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		ca.writeProblem(w, r.URL.Path, newProblem(probMalformed, "use GET for %s", r.URL.Path).withStatus(http.StatusMethodNotAllowed))
		return
	}
	fn(w, r)
}

type authMode int

const (
	authKid    authMode = iota // kid (account URL) only
	authJWK                    // jwk only (newAccount)
	authEither                 // revokeCert: account key or certificate key
)

// request is an authenticated ACME POST.
type request struct {
	jws  *parsedJWS
	acct *account // set for kid requests
	key  *jwk     // set for jwk requests
	url  string
}

func (ca *authority) post(w http.ResponseWriter, r *http.Request, mode authMode, fn func(http.ResponseWriter, *request)) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		ca.writeProblem(w, r.URL.Path, newProblem(probMalformed, "use POST for %s; ACME fetches resources with POST-as-GET (RFC 8555 §6.3)", r.URL.Path).withStatus(http.StatusMethodNotAllowed))
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/jose+json" {
		ca.writeProblem(w, r.URL.Path, newProblem(probMalformed, "the Content-Type must be application/jose+json, not %q", r.Header.Get("Content-Type")).withStatus(http.StatusUnsupportedMediaType))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		ca.writeProblem(w, r.URL.Path, newProblem(probMalformed, "cannot read the request body: %v", err))
		return
	}
	req, prob := ca.authenticate(r, body, mode)
	if prob != nil {
		ca.writeProblem(w, r.URL.Path, prob)
		return
	}
	fn(w, req)
}

// authenticate verifies the JWS of a POST: structure, algorithm, key, signature,
// url and nonce, in that order.
func (ca *authority) authenticate(r *http.Request, body []byte, mode authMode) (*request, *problem) {
	j, prob := parseJWS(body)
	if prob != nil {
		return nil, prob
	}
	if prob := checkAlg(j.header.Alg); prob != nil {
		return nil, prob
	}
	hasJWK := len(j.header.JWK) > 0 && string(j.header.JWK) != "null"
	hasKid := j.header.Kid != ""
	switch {
	case hasJWK == hasKid:
		return nil, newProblem(probMalformed, "the JWS protected header must have exactly one of jwk and kid")
	case mode == authJWK && hasKid:
		return nil, newProblem(probMalformed, "newAccount requests must carry the account key as jwk, not a kid (RFC 8555 §6.2)")
	case mode == authKid && hasJWK:
		return nil, newProblem(probMalformed, "this request must carry a kid (the account URL), not a jwk (RFC 8555 §6.2)")
	}
	req := &request{jws: j, url: requestURL(r)}
	var pub crypto.PublicKey
	if hasJWK {
		key, prob := parseJWK(j.header.JWK)
		if prob != nil {
			return nil, prob
		}
		req.key, pub = key, key.pub
	} else {
		ca.mu.Lock()
		acct := ca.accounts[j.header.Kid]
		var status string
		if acct != nil {
			pub, status = acct.key.pub, acct.status
		}
		ca.mu.Unlock()
		if acct == nil {
			return nil, newProblem(probAccountDoesNotExist, "no account exists at kid %q", j.header.Kid)
		}
		if status != statusValid {
			return nil, newProblem(probUnauthorized, "the account is %s", status)
		}
		req.acct = acct
	}
	if prob := verifyJWS(j, pub); prob != nil {
		return nil, prob
	}
	if j.header.URL != req.url {
		return nil, newProblem(probUnauthorized, "the JWS url %q does not match the request URL %q", j.header.URL, req.url)
	}
	if j.header.Nonce == "" {
		ca.stats.update(func(s *Stats) { s.BadNonces++ })
		return nil, newProblem(probBadNonce, "the JWS has no nonce; get one from newNonce or from the Replay-Nonce of any response")
	}
	if !ca.nonces.use(j.header.Nonce) {
		ca.stats.update(func(s *Stats) { s.BadNonces++ })
		return nil, newProblem(probBadNonce, "the JWS nonce is unknown or was already used; retry with the Replay-Nonce of this response")
	}
	return req, nil
}

// requestURL is the URL the client asked for, as it sent it (RequestURI
// still holds the world's path prefix that routing strips).
func requestURL(r *http.Request) string {
	if r.RequestURI != "" {
		return "https://" + r.Host + r.RequestURI
	}
	u := "https://" + r.Host + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return u
}

func (ca *authority) writeProblem(w http.ResponseWriter, where string, p *problem) {
	if p.Status == 0 {
		p.Status = defaultStatus(p.Type)
	}
	if p.location != "" {
		w.Header().Set("Location", p.location)
	}
	ca.log.Debug("acme problem", "url", where, "type", strings.TrimPrefix(p.Type, probPrefix), "detail", p.Detail)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// decodePayload parses a JSON payload; POST-as-GET is refused.
func decodePayload(req *request, v any) *problem {
	if req.jws.postAsGet {
		return newProblem(probMalformed, "this request needs a JSON payload, not POST-as-GET")
	}
	if err := json.Unmarshal(req.jws.payload, v); err != nil {
		return newProblem(probMalformed, "the JWS payload is not valid JSON for this request: %v", err)
	}
	return nil
}

func (ca *authority) handleDirectory(w http.ResponseWriter, _ *http.Request) {
	dir := map[string]any{
		"newNonce":   ca.url(pathNewNonce),
		"newAccount": ca.url(pathNewAccount),
		"newOrder":   ca.url(pathNewOrder),
		"revokeCert": ca.url(pathRevoke),
		"keyChange":  ca.url(pathKeyChange),
		"meta": map[string]any{
			"termsOfService":          ca.url(pathTerms),
			"caaIdentities":           []string{ca.caDomain},
			"externalAccountRequired": ca.opt.ExternalAccountRequired,
		},
	}
	if !ca.opt.NoRenewalInfo {
		dir["renewalInfo"] = strings.TrimSuffix(ca.url(pathRenewalInfo), "/")
	}
	writeJSON(w, http.StatusOK, dir)
}

// --- accounts ---

type accountJSON struct {
	Status  string          `json:"status"`
	Contact []string        `json:"contact,omitempty"`
	Orders  string          `json:"orders"`
	Key     json.RawMessage `json:"key,omitempty"`
}

func (ca *authority) accountJSONLocked(a *account) accountJSON {
	return accountJSON{Status: a.status, Contact: a.contact, Orders: a.url + "/orders", Key: a.key.canonical}
}

func checkContacts(contacts []string) *problem {
	for _, c := range contacts {
		addr, ok := strings.CutPrefix(c, "mailto:")
		if !ok {
			return newProblem(probUnsupportedContact, "contact %q is not supported; use mailto: URLs", c)
		}
		if strings.ContainsAny(addr, "?,") {
			return newProblem(probInvalidContact, "contact %q must hold exactly one address and no hfields", c)
		}
		if _, p := canonicalAddress(addr); p != nil {
			return newProblem(probInvalidContact, "contact %q is not a valid address: %s", c, p.Detail)
		}
	}
	return nil
}

func (ca *authority) handleNewAccount(w http.ResponseWriter, req *request) {
	var p struct {
		Contact                []string        `json:"contact"`
		TermsOfServiceAgreed   bool            `json:"termsOfServiceAgreed"`
		OnlyReturnExisting     bool            `json:"onlyReturnExisting"`
		ExternalAccountBinding json.RawMessage `json:"externalAccountBinding"`
	}
	if prob := decodePayload(req, &p); prob != nil {
		ca.writeProblem(w, req.url, prob)
		return
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if a := ca.byThumb[req.key.thumbprint]; a != nil {
		if a.status != statusValid {
			ca.writeProblem(w, req.url, newProblem(probUnauthorized, "the account for this key is %s", a.status))
			return
		}
		w.Header().Set("Location", a.url)
		writeJSON(w, http.StatusOK, ca.accountJSONLocked(a))
		return
	}
	if p.OnlyReturnExisting {
		ca.writeProblem(w, req.url, newProblem(probAccountDoesNotExist, "no account exists for this key"))
		return
	}
	if !p.TermsOfServiceAgreed {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "you must agree to the terms of service at %s (termsOfServiceAgreed: true)", ca.url(pathTerms)))
		return
	}
	if prob := checkContacts(p.Contact); prob != nil {
		ca.writeProblem(w, req.url, prob)
		return
	}
	if ca.opt.RequireContact && len(p.Contact) == 0 {
		// acme2certifier's default.
		ca.writeProblem(w, req.url, newProblem(probMalformed, "Contact information is missing"))
		return
	}
	var eabKid string
	switch {
	case len(p.ExternalAccountBinding) > 0 && string(p.ExternalAccountBinding) != "null":
		var prob *problem
		if eabKid, prob = ca.verifyEAB(p.ExternalAccountBinding, req); prob != nil {
			ca.writeProblem(w, req.url, prob)
			return
		}
	case ca.opt.ExternalAccountRequired:
		ca.writeProblem(w, req.url, newProblem(probExternalAccountRequired,
			"this CA requires an external account binding (RFC 8555 §7.3.4): ask the CA for a key identifier and HMAC key"))
		return
	}
	id := newID()
	a := &account{id: id, url: ca.url(pathAccount + id), key: req.key, status: statusValid, contact: p.Contact, eabKid: eabKid}
	ca.accounts[a.url] = a
	ca.byThumb[a.key.thumbprint] = a
	ca.stats.update(func(s *Stats) { s.Accounts++ })
	ca.log.Info("account created", "account", a.url, "eab_kid", eabKid)
	w.Header().Set("Location", a.url)
	writeJSON(w, http.StatusCreated, ca.accountJSONLocked(a))
}

func (ca *authority) handleAccount(w http.ResponseWriter, req *request, id, sub string) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	a := req.acct
	if a.id != id {
		ca.writeProblem(w, req.url, newProblem(probUnauthorized, "the request is signed for another account"))
		return
	}
	switch sub {
	case "orders":
		if !req.jws.postAsGet {
			ca.writeProblem(w, req.url, newProblem(probMalformed, "fetch the orders list with POST-as-GET"))
			return
		}
		urls := []string{}
		for _, o := range a.orders {
			urls = append(urls, o.url)
		}
		writeJSON(w, http.StatusOK, map[string][]string{"orders": urls})
		return
	case "":
	default:
		ca.writeProblem(w, req.url, newProblem(probMalformed, "no such resource").withStatus(http.StatusNotFound))
		return
	}
	if !req.jws.postAsGet {
		var p struct {
			Contact *[]string `json:"contact"`
			Status  string    `json:"status"`
		}
		if err := json.Unmarshal(req.jws.payload, &p); err != nil {
			ca.writeProblem(w, req.url, newProblem(probMalformed, "the account update is not valid JSON: %v", err))
			return
		}
		switch p.Status {
		case "":
		case statusDeactivated:
			a.status = statusDeactivated
			ca.log.Info("account deactivated", "account", a.url)
		default:
			ca.writeProblem(w, req.url, newProblem(probMalformed, "an account can only be updated to status deactivated"))
			return
		}
		if p.Contact != nil {
			if prob := checkContacts(*p.Contact); prob != nil {
				ca.writeProblem(w, req.url, prob)
				return
			}
			a.contact = *p.Contact
		}
	}
	writeJSON(w, http.StatusOK, ca.accountJSONLocked(a))
}

func (ca *authority) handleKeyChange(w http.ResponseWriter, req *request) {
	if req.jws.postAsGet {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "keyChange needs an inner JWS as payload"))
		return
	}
	inner, prob := parseJWS(req.jws.payload)
	if prob != nil {
		prob.Detail = "inner JWS: " + prob.Detail
		ca.writeProblem(w, req.url, prob)
		return
	}
	if prob := checkAlg(inner.header.Alg); prob != nil {
		ca.writeProblem(w, req.url, prob)
		return
	}
	if len(inner.header.JWK) == 0 || inner.header.Kid != "" {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "the inner JWS of keyChange must carry the new key as jwk and no kid (RFC 8555 §7.3.5)"))
		return
	}
	if inner.header.URL != req.url {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "the inner JWS url must equal the outer url"))
		return
	}
	newKey, prob := parseJWK(inner.header.JWK)
	if prob != nil {
		ca.writeProblem(w, req.url, prob)
		return
	}
	if prob := verifyJWS(inner, newKey.pub); prob != nil {
		prob.Detail = "inner JWS: " + prob.Detail
		ca.writeProblem(w, req.url, prob)
		return
	}
	var p struct {
		Account string          `json:"account"`
		OldKey  json.RawMessage `json:"oldKey"`
	}
	if err := json.Unmarshal(inner.payload, &p); err != nil {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "the keyChange payload is not valid JSON: %v", err))
		return
	}
	oldKey, prob := parseJWK(p.OldKey)
	if prob != nil {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "oldKey: %s", prob.Detail))
		return
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	a := req.acct
	if p.Account != a.url {
		ca.writeProblem(w, req.url, newProblem(probUnauthorized, "the keyChange account does not match the kid"))
		return
	}
	if oldKey.thumbprint != a.key.thumbprint {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "oldKey is not the account's current key"))
		return
	}
	if other := ca.byThumb[newKey.thumbprint]; other != nil {
		prob := newProblem(probMalformed, "the new key already belongs to an account").withStatus(http.StatusConflict)
		prob.location = other.url
		ca.writeProblem(w, req.url, prob)
		return
	}
	delete(ca.byThumb, a.key.thumbprint)
	a.key = newKey
	ca.byThumb[newKey.thumbprint] = a
	ca.log.Info("account key changed", "account", a.url)
	writeJSON(w, http.StatusOK, ca.accountJSONLocked(a))
}

// --- orders ---

type orderJSON struct {
	Status         string       `json:"status"`
	Expires        string       `json:"expires"`
	Identifiers    []identifier `json:"identifiers"`
	Authorizations []string     `json:"authorizations"`
	Finalize       string       `json:"finalize"`
	Certificate    string       `json:"certificate,omitempty"`
	Error          *problem     `json:"error,omitempty"`
	Profile        string       `json:"profile,omitempty"`
}

func (ca *authority) orderJSONLocked(o *order) orderJSON {
	ca.expireLocked(o)
	j := orderJSON{
		Status:         o.status,
		Expires:        o.expires.UTC().Format(time.RFC3339),
		Identifiers:    o.identifiers,
		Authorizations: []string{},
		Finalize:       o.url + "/finalize",
		Error:          o.err,
	}
	if ca.opt.BadCert == BadCertKeyUsage {
		j.Profile = KeyUsageProfile
	}
	for _, a := range o.authzs {
		j.Authorizations = append(j.Authorizations, a.url)
		if ca.opt.RepeatAuthorizations {
			j.Authorizations = append(j.Authorizations, a.url)
		}
	}
	if o.cert != nil {
		j.Certificate = o.cert.url
	}
	return j
}

// expireLocked moves resources past their expiry time to their final state.
func (ca *authority) expireLocked(o *order) {
	now := time.Now()
	for _, a := range o.authzs {
		if a.status == statusPending && now.After(a.expires) {
			a.status = statusExpired
			if a.chall.timer != nil {
				a.chall.timer.Stop()
			}
		}
	}
	if (o.status == statusPending || o.status == statusReady) && now.After(o.expires) {
		o.status = statusInvalid
		o.err = newProblem(probMalformed, "the order expired")
	}
}

func (ca *authority) handleNewOrder(w http.ResponseWriter, req *request) {
	var p struct {
		Identifiers []identifier    `json:"identifiers"`
		NotBefore   json.RawMessage `json:"notBefore"`
		NotAfter    json.RawMessage `json:"notAfter"`
		Replaces    *string         `json:"replaces"`
	}
	if prob := decodePayload(req, &p); prob != nil {
		ca.writeProblem(w, req.url, prob)
		return
	}
	if len(p.Identifiers) == 0 {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "the order has no identifiers"))
		return
	}
	if len(p.Identifiers) > maxIdentifiers {
		ca.writeProblem(w, req.url, newProblem(probRejectedIdentifier, "the order has %d identifiers; this CA allows at most %d", len(p.Identifiers), maxIdentifiers))
		return
	}
	if len(p.NotBefore) > 0 || len(p.NotAfter) > 0 {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "this CA does not support notBefore or notAfter in orders"))
		return
	}
	var idents []identifier
	var subs []*problem
	server := slices.ContainsFunc(p.Identifiers, func(id identifier) bool { return isServerIdentifier(id.Type) })
	emailIdents := p.Identifiers
	if server {
		idents, subs = ca.serverIdentifiers(p.Identifiers)
		emailIdents = nil
	}
	seen := map[string]bool{}
	for _, id := range emailIdents {
		var prob *problem
		var addr string
		switch {
		case id.Type != "email":
			prob = newProblem(probUnsupportedIdentifier, "identifier type %q is not supported; this CA issues S/MIME certificates for \"email\" identifiers (RFC 8823)", id.Type)
		default:
			addr, prob = canonicalAddress(id.Value)
			if prob == nil && ca.opt.ASCIIOnly && isInternational(id.Value) {
				prob = newProblem(probRejectedIdentifier, "%q is an internationalized address; this CA supports only ASCII addresses", id.Value)
			}
			if prob == nil && ca.opt.External == nil && !ca.mail.hasUser(addr) {
				prob = newProblem(probRejectedIdentifier, "the sandbox has no mailbox for %s, so the challenge email could not be delivered; add the user to the sandbox first", addr)
			}
		}
		if prob != nil {
			prob.Identifier = &id
			subs = append(subs, prob)
			continue
		}
		if !seen[addr] {
			seen[addr] = true
			idents = append(idents, identifier{Type: "email", Value: addr})
		}
	}
	if len(subs) == 1 {
		ca.writeProblem(w, req.url, subs[0])
		return
	}
	if len(subs) > 1 {
		typ := subs[0].Type
		var details []string
		for _, s := range subs {
			if s.Type != typ {
				typ = probCompound
			}
			details = append(details, s.Detail)
		}
		ca.writeProblem(w, req.url, &problem{Type: typ, Status: http.StatusBadRequest,
			Detail: fmt.Sprintf("%d identifiers were refused: %s", len(subs), strings.Join(details, "; ")), Subproblems: subs})
		return
	}

	now := time.Now()
	ca.mu.Lock()
	defer ca.mu.Unlock()
	var replaced *certificate
	if p.Replaces != nil {
		if ca.opt.NoRenewalInfo {
			ca.writeProblem(w, req.url, newProblem(probMalformed, "this CA does not offer renewalInfo, so orders must not carry \"replaces\""))
			return
		}
		c, prob := ca.replacedLocked(*p.Replaces, idents)
		if prob != nil {
			ca.writeProblem(w, req.url, prob)
			return
		}
		replaced = c
	}
	oid := newID()
	o := &order{id: oid, url: ca.url(pathOrder + oid), acct: req.acct, status: statusPending,
		expires: now.Add(authzLifetime), identifiers: idents, replaces: replaced, server: server}
	if replaced != nil {
		replaced.replacing = o
		ca.stats.update(func(s *Stats) { s.OrdersReplacing++ })
	}
	fresh := 0
	for _, id := range idents {
		if a := ca.reusableAuthzLocked(req.acct, id, now); a != nil {
			o.authzs = append(o.authzs, a)
			continue
		}
		fresh++
		var ch *challenge
		var err error
		if server {
			ch, err = ca.newServerChallenge(id)
		} else {
			ch = &challenge{typ: challengeType, from: ca.caLocal + "+" + newID()[:12] + "@" + ca.caDomain}
			ch.tp2, err = newToken(ca.opt.TokenLength)
		}
		if err != nil {
			ca.writeProblem(w, req.url, newProblem(probServerInternal, "cannot create a token: %v", err))
			return
		}
		aid, cid := newID(), newID()
		a := &authz{id: aid, url: ca.url(pathAuthz + aid), acct: req.acct, order: o, ident: id, status: statusPending, expires: o.expires}
		ch.id, ch.url, ch.authz, ch.status = cid, ca.url(pathChallenge+cid), a, statusPending
		a.chall = ch
		o.authzs = append(o.authzs, a)
		ca.authzs[aid] = a
		ca.challs[cid] = ch
		if !server {
			ca.byFrom[strings.ToLower(ch.from)] = ch
		}
	}
	if fresh == 0 {
		o.status = statusReady // every authorization was reused
	}
	ca.orders[oid] = o
	req.acct.orders = append(req.acct.orders, o)
	ca.stats.update(func(s *Stats) { s.Orders++; s.Authorizations += fresh; s.AuthorizationsReused += len(idents) - fresh })
	ca.log.Info("order created", "order", o.url, "identifiers", len(idents))
	w.Header().Set("Location", o.url)
	w.Header().Set("Retry-After", retryAfter)
	writeJSON(w, http.StatusCreated, ca.orderJSONLocked(o))
}

func (ca *authority) handleOrder(w http.ResponseWriter, req *request, id, sub string) {
	ca.mu.Lock()
	o := ca.orders[id]
	ca.mu.Unlock()
	if o == nil || o.acct != req.acct {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "no such order for this account").withStatus(http.StatusNotFound))
		return
	}
	switch sub {
	case "finalize":
		ca.finalize(w, req, o)
		return
	case "":
	default:
		ca.writeProblem(w, req.url, newProblem(probMalformed, "no such resource").withStatus(http.StatusNotFound))
		return
	}
	if !req.jws.postAsGet {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "fetch the order with POST-as-GET (empty payload)"))
		return
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	j := ca.orderJSONLocked(o)
	if j.Status == statusPending || j.Status == statusProcessing {
		w.Header().Set("Retry-After", retryAfter)
	}
	writeJSON(w, http.StatusOK, j)
}

func (ca *authority) finalize(w http.ResponseWriter, req *request, o *order) {
	var p struct {
		CSR string `json:"csr"`
	}
	if prob := decodePayload(req, &p); prob != nil {
		ca.writeProblem(w, req.url, prob)
		return
	}
	der, err := base64.RawURLEncoding.DecodeString(p.CSR)
	if err != nil || len(der) == 0 {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "csr must be the DER CSR in unpadded base64url"))
		return
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.expireLocked(o)
	if o.status != statusReady {
		detail := fmt.Sprintf("the order is %s, not ready", o.status)
		if o.status == statusPending {
			detail += "; complete its authorizations first"
		}
		ca.writeProblem(w, req.url, newProblem(probOrderNotReady, "%s", detail))
		return
	}
	var emails []string
	for _, id := range o.identifiers {
		emails = append(emails, id.Value)
	}
	var cr *certRequest
	var prob *problem
	if o.server {
		cr, prob = checkServerCSR(der, o.identifiers, req.acct.key.pub)
	} else {
		cr, prob = checkCSR(der, emails, req.acct.key.pub)
	}
	if prob != nil {
		ca.writeProblem(w, req.url, prob)
		return
	}
	o.status = statusProcessing
	chain, leaf, err := ca.pki.issue(cr, ca.opt.CertLifetime, ca.opt.BadCert)
	if err != nil {
		o.status = statusInvalid
		o.err = newProblem(probServerInternal, "issuance failed: %v", err)
		ca.log.Error("issuance failed", "order", o.url, "error", err)
		ca.writeProblem(w, req.url, o.err)
		return
	}
	cid := newID()
	c := &certificate{id: cid, url: ca.url(pathCert + cid), acct: req.acct, chain: chain, leaf: leaf}
	ca.certs[cid] = c
	ca.bySerial[leaf.SerialNumber.String()] = c
	o.cert = c
	o.status = statusValid
	if o.replaces != nil {
		c.replaces = o.replaces
		o.replaces.replacedBy = c
	}
	ca.stats.update(func(s *Stats) { s.CertificatesIssued++ })
	ca.log.Info("certificate issued", "order", o.url, "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
	w.Header().Set("Location", o.url)
	writeJSON(w, http.StatusOK, ca.orderJSONLocked(o))
}

// --- authorizations and challenges ---

type challengeJSON struct {
	Type      string   `json:"type"`
	URL       string   `json:"url"`
	Status    string   `json:"status"`
	Token     string   `json:"token"`
	From      string   `json:"from,omitempty"` // email-reply-00
	Port      int      `json:"port,omitempty"` // dns-service-01
	Validated string   `json:"validated,omitempty"`
	Error     *problem `json:"error,omitempty"`
}

type authzJSON struct {
	Identifier identifier      `json:"identifier"`
	Status     string          `json:"status"`
	Expires    string          `json:"expires"`
	Challenges []challengeJSON `json:"challenges"`
}

func challJSONLocked(ch *challenge) challengeJSON {
	j := challengeJSON{Type: ch.typ, URL: ch.url, Status: ch.status, Token: ch.tp2, From: ch.from, Port: ch.port, Error: ch.err}
	if !ch.validated.IsZero() {
		j.Validated = ch.validated.UTC().Format(time.RFC3339)
	}
	return j
}

func (ca *authority) authzJSONLocked(a *authz) authzJSON {
	ca.expireLocked(a.order)
	return authzJSON{
		Identifier: a.ident,
		Status:     a.status,
		Expires:    a.expires.UTC().Format(time.RFC3339),
		Challenges: []challengeJSON{challJSONLocked(a.chall)},
	}
}

func (ca *authority) handleAuthz(w http.ResponseWriter, req *request, id, sub string) {
	ca.mu.Lock()
	a := ca.authzs[id]
	ca.mu.Unlock()
	if a == nil || a.acct != req.acct || sub != "" {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "no such authorization for this account").withStatus(http.StatusNotFound))
		return
	}
	if !req.jws.postAsGet {
		var p struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(req.jws.payload, &p); err != nil || p.Status != statusDeactivated {
			ca.writeProblem(w, req.url, newProblem(probMalformed, `an authorization can only be updated with {"status":"deactivated"}`))
			return
		}
		ca.mu.Lock()
		defer ca.mu.Unlock()
		if a.status != statusPending && a.status != statusValid {
			ca.writeProblem(w, req.url, newProblem(probMalformed, "the authorization is %s and cannot be deactivated", a.status))
			return
		}
		a.status = statusDeactivated
		if a.chall.timer != nil {
			a.chall.timer.Stop()
		}
		if o := a.order; o.status == statusPending || o.status == statusReady {
			o.status = statusInvalid
			o.err = newProblem(probUnauthorized, "the authorization for %s was deactivated", a.ident.Value)
		}
		writeJSON(w, http.StatusOK, ca.authzJSONLocked(a))
		return
	}
	if ca.opt.MailTiming == MailAtAuthorization {
		ca.mu.Lock()
		send := a.status == statusPending && a.chall.mail == mailNone && a.chall.typ == challengeType
		ca.mu.Unlock()
		if send {
			// acme2certifier mails the challenge while answering the
			// first fetch of the authorization.
			ca.sendChallengeMail(a.chall)
		}
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	j := ca.authzJSONLocked(a)
	if j.Status == statusPending {
		w.Header().Set("Retry-After", retryAfter)
	}
	writeJSON(w, http.StatusOK, j)
}

func (ca *authority) handleChallenge(w http.ResponseWriter, req *request, id, sub string) {
	ca.mu.Lock()
	ch := ca.challs[id]
	ca.mu.Unlock()
	if ch == nil || ch.authz.acct != req.acct || sub != "" {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "no such challenge for this account").withStatus(http.StatusNotFound))
		return
	}
	if !req.jws.postAsGet {
		var p map[string]json.RawMessage
		if err := json.Unmarshal(req.jws.payload, &p); err != nil || p == nil {
			ca.writeProblem(w, req.url, newProblem(probMalformed, "respond to the challenge with the JSON object {} as payload"))
			return
		}
		ca.mu.Lock()
		ca.expireLocked(ch.authz.order)
		st := ch.authz.status
		ca.mu.Unlock()
		if st != statusPending && st != statusValid {
			ca.writeProblem(w, req.url, newProblem(probMalformed, "the authorization is %s; the challenge cannot be triggered", st))
			return
		}
		if ch.typ == challengeType {
			ca.trigger(ch)
		} else {
			ca.validateDNS(ch)
		}
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.expireLocked(ch.authz.order)
	w.Header().Add("Link", link(ch.authz.url, "up"))
	if ch.status == statusProcessing || ch.status == statusPending {
		w.Header().Set("Retry-After", retryAfter)
	}
	writeJSON(w, http.StatusOK, challJSONLocked(ch))
}

// --- certificates ---

func (ca *authority) handleCert(w http.ResponseWriter, req *request, id, sub string) {
	ca.mu.Lock()
	c := ca.certs[id]
	ca.mu.Unlock()
	if c == nil || c.acct != req.acct || sub != "" {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "no such certificate for this account").withStatus(http.StatusNotFound))
		return
	}
	if !req.jws.postAsGet {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "download the certificate with POST-as-GET (empty payload)"))
		return
	}
	var out []byte
	for _, der := range c.chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// allowedReasons are the CRLReason codes this CA accepts (RFC 5280 §5.3.1).
var allowedReasons = []int{0, 1, 3, 4, 5}

func (ca *authority) handleRevoke(w http.ResponseWriter, req *request) {
	var p struct {
		Certificate string `json:"certificate"`
		Reason      *int   `json:"reason"`
	}
	if prob := decodePayload(req, &p); prob != nil {
		ca.writeProblem(w, req.url, prob)
		return
	}
	der, err := base64.RawURLEncoding.DecodeString(p.Certificate)
	if err != nil || len(der) == 0 {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "certificate must be the DER certificate in unpadded base64url"))
		return
	}
	reason := 0
	if p.Reason != nil {
		reason = *p.Reason
	}
	if !slices.Contains(allowedReasons, reason) {
		ca.writeProblem(w, req.url, newProblem(probBadRevocationReason, "revocation reason %d is not accepted; use 0, 1, 3, 4 or 5", reason))
		return
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	var c *certificate
	for _, x := range ca.certs {
		if string(x.chain[0]) == string(der) {
			c = x
			break
		}
	}
	if c == nil {
		ca.writeProblem(w, req.url, newProblem(probMalformed, "this CA did not issue that certificate").withStatus(http.StatusNotFound))
		return
	}
	switch {
	case req.acct != nil && req.acct != c.acct:
		ca.writeProblem(w, req.url, newProblem(probUnauthorized, "the certificate was issued to another account"))
		return
	case req.key != nil && !sameKey(req.key.pub, c.leaf.PublicKey):
		ca.writeProblem(w, req.url, newProblem(probUnauthorized, "the JWS is signed neither by the issuing account nor by the certificate's key"))
		return
	}
	if c.revoked {
		ca.writeProblem(w, req.url, newProblem(probAlreadyRevoked, "the certificate is already revoked"))
		return
	}
	c.revoked = true
	c.reason = reason
	ca.stats.update(func(s *Stats) { s.CertificatesRevoked++ })
	ca.log.Info("certificate revoked", "serial", c.leaf.SerialNumber.Text(16), "reason", reason)
	w.WriteHeader(http.StatusOK)
}
