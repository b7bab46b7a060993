package acmemail

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mholt/acmez/v3/acme"
)

// ProblemError is an error the ACME server reported as an RFC 8555 problem
// document. Error shows the server's detail, as RFC 8555 §6.7 asks.
type ProblemError struct {
	Op          string // what acmemail was doing, e.g. "create the order"
	Type        string // e.g. "urn:ietf:params:acme:error:rejectedIdentifier"
	Detail      string
	Status      int
	Instance    string
	Subproblems []Subproblem
}

// Subproblem is one entry of a compound problem.
type Subproblem struct {
	Type       string
	Detail     string
	Identifier string
}

func (e *ProblemError) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString("the CA said: ")
	if e.Detail != "" {
		b.WriteString(e.Detail)
	} else {
		b.WriteString("(no detail)")
	}
	if t := e.ShortType(); t != "" {
		fmt.Fprintf(&b, " (%s)", t)
	}
	for _, sp := range e.Subproblems {
		fmt.Fprintf(&b, "; %s: %s", sp.Identifier, sp.Detail)
	}
	if e.Instance != "" {
		fmt.Fprintf(&b, " (see %s)", e.Instance)
	}
	return b.String()
}

// ShortType is Type without the "urn:ietf:params:acme:error:" prefix.
func (e *ProblemError) ShortType() string {
	return strings.TrimPrefix(e.Type, "urn:ietf:params:acme:error:")
}

// problemDoc is the wire form of an RFC 7807 / RFC 8555 problem document.
type problemDoc struct {
	Type        string `json:"type"`
	Detail      string `json:"detail"`
	Status      int    `json:"status"`
	Instance    string `json:"instance"`
	Subproblems []struct {
		Type       string `json:"type"`
		Detail     string `json:"detail"`
		Identifier struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"identifier"`
	} `json:"subproblems"`
}

// maxProblemSubproblems bounds what a hostile server can make us print.
const maxProblemSubproblems = 16

// ParseProblem decodes an RFC 8555 problem document (untrusted input).
func ParseProblem(data []byte) (*ProblemError, error) {
	var d problemDoc
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decode problem document: %w", err)
	}
	if d.Type == "" && d.Detail == "" {
		return nil, errors.New("decode problem document: neither type nor detail is set")
	}
	p := &ProblemError{
		Type:     sanitizeText(d.Type, 200),
		Detail:   sanitizeText(d.Detail, 1000),
		Status:   d.Status,
		Instance: sanitizeText(d.Instance, 300),
	}
	for i, sp := range d.Subproblems {
		if i == maxProblemSubproblems {
			break
		}
		p.Subproblems = append(p.Subproblems, Subproblem{
			Type:       sanitizeText(sp.Type, 200),
			Detail:     sanitizeText(sp.Detail, 500),
			Identifier: sanitizeText(sp.Identifier.Value, 300),
		})
	}
	return p, nil
}

// sanitizeText makes server-provided text safe to print on a terminal:
// control characters become spaces and the length is bounded.
func sanitizeText(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
	if t := truncate(s, max); len(t) < len(s) {
		s = t + "…"
	}
	return strings.TrimSpace(s)
}

// fromACME turns an error from the acme package into a *ProblemError when
// the server sent a problem document, and otherwise prefixes op.
func fromACME(op string, err error) error {
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "provisioning client: ") {
		// acmez reads the directory before its first request.
		return &DirectoryError{Op: op, Err: err}
	}
	var p acme.Problem
	if errors.As(err, &p) {
		// One parser for problem documents, whoever decoded them first.
		if data, jerr := json.Marshal(p); jerr == nil {
			if pe, perr := ParseProblem(data); perr == nil {
				pe.Op = op
				return pe
			}
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// DirectoryError is returned when the CA's directory could not be read
// before a request: the URL is not that of an ACME directory, or the server
// does not answer. Nothing was asked of the CA. A problem document the
// server sent is part of the message, not a *ProblemError: a wrong URL is
// not the CA refusing the request.
type DirectoryError struct {
	Op  string // what acmemail was about to do
	Err error
}

func (e *DirectoryError) Error() string {
	cause := e.Err.Error()
	var p acme.Problem
	if errors.As(e.Err, &p) {
		if data, jerr := json.Marshal(p); jerr == nil {
			if pe, perr := ParseProblem(data); perr == nil {
				cause = "the server answered: " + strings.TrimPrefix(pe.Error(), "the CA said: ")
				if pe.Status != 0 {
					cause += fmt.Sprintf(" (HTTP %d)", pe.Status)
				}
			}
		}
	} else {
		cause = strings.Replace(cause, "provisioning client: ", "", 1)
		// acmez's words for a document that is not JSON.
		if _, rest, ok := strings.Cut(cause, "response Content-Type is "); ok {
			ct, _, _ := strings.Cut(rest, " but ")
			cause = "the answer is " + sanitizeText(ct, 100) + ", not the JSON of an ACME directory"
		}
	}
	if strings.HasPrefix(e.Op, "fetch the ACME directory") {
		return e.Op + ": " + cause
	}
	return e.Op + ": read the CA's directory: " + cause
}

func (e *DirectoryError) Unwrap() error { return e.Err }
