package sandbox

import (
	"fmt"
	"net/http"
)

// ACME error types (RFC 8555 §6.7).
const (
	probPrefix                  = "urn:ietf:params:acme:error:"
	probAccountDoesNotExist     = probPrefix + "accountDoesNotExist"
	probAlreadyRevoked          = probPrefix + "alreadyRevoked"
	probBadCSR                  = probPrefix + "badCSR"
	probBadNonce                = probPrefix + "badNonce"
	probBadPublicKey            = probPrefix + "badPublicKey"
	probBadRevocationReason     = probPrefix + "badRevocationReason"
	probBadSignatureAlgorithm   = probPrefix + "badSignatureAlgorithm"
	probCompound                = probPrefix + "compound"
	probConnection              = probPrefix + "connection"
	probDNS                     = probPrefix + "dns"
	probIncorrectResponse       = probPrefix + "incorrectResponse"
	probInvalidContact          = probPrefix + "invalidContact"
	probMalformed               = probPrefix + "malformed"
	probOrderNotReady           = probPrefix + "orderNotReady"
	probRejectedIdentifier      = probPrefix + "rejectedIdentifier"
	probServerInternal          = probPrefix + "serverInternal"
	probUnauthorized            = probPrefix + "unauthorized"
	probUnsupportedContact      = probPrefix + "unsupportedContact"
	probUnsupportedIdentifier   = probPrefix + "unsupportedIdentifier"
	probUserActionRequired      = probPrefix + "userActionRequired"
	probExternalAccountRequired = probPrefix + "externalAccountRequired"
)

// problem is an RFC 7807 problem document as ACME uses it.
type problem struct {
	Type        string      `json:"type"`
	Detail      string      `json:"detail,omitempty"`
	Status      int         `json:"status,omitempty"`
	Identifier  *identifier `json:"identifier,omitempty"`
	Subproblems []*problem  `json:"subproblems,omitempty"`
	Algorithms  []string    `json:"algorithms,omitempty"` // badSignatureAlgorithm (RFC 8555 §6.2)
	location    string      // Location header, for 409 conflicts
}

func newProblem(typ, format string, args ...any) *problem {
	return &problem{Type: typ, Detail: fmt.Sprintf(format, args...), Status: defaultStatus(typ)}
}

func (p *problem) Error() string { return p.Detail }

func defaultStatus(typ string) int {
	switch typ {
	case probUnauthorized, probOrderNotReady, probUserActionRequired:
		return http.StatusForbidden
	case probServerInternal:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// withStatus returns p with its HTTP status replaced.
func (p *problem) withStatus(status int) *problem {
	p.Status = status
	return p
}
