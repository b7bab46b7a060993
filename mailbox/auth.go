package mailbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
)

// SASL mechanism names accepted in Credentials.Mechanism.
const (
	MechPlain       = "PLAIN"       // RFC 4616; for IMAP, "" also allows the LOGIN command
	MechLogin       = "LOGIN"       // IMAP LOGIN command, or SMTP AUTH LOGIN
	MechOAuthBearer = "OAUTHBEARER" // RFC 7628
	MechXOAuth2     = "XOAUTH2"     // Google's and Microsoft's pre-RFC 7628 form
)

// ParseMechanism checks a user-given mechanism name and returns it in
// canonical (upper case) form; "" and "auto" return "".
func ParseMechanism(s string) (string, error) {
	m := strings.ToUpper(strings.TrimSpace(s))
	switch m {
	case "", "AUTO":
		return "", nil
	case MechPlain, MechLogin, MechOAuthBearer, MechXOAuth2:
		return m, nil
	}
	return "", fmt.Errorf("unknown authentication mechanism %s (want auto, plain, login, oauthbearer or xoauth2)", quoteShort(s, 40))
}

func isOAuthMech(m string) bool { return m == MechOAuthBearer || m == MechXOAuth2 }

// check reports a configuration that cannot work, before
// anything is dialled.
func (c Credentials) check(proto string) error {
	if c.Mechanism != "" {
		if _, err := ParseMechanism(c.Mechanism); err != nil {
			return fmt.Errorf("%s login: %w", proto, err)
		}
	}
	mech := strings.ToUpper(c.Mechanism)
	switch {
	case c.OAuthToken != nil && mech != "" && !isOAuthMech(mech):
		return fmt.Errorf("%s login: mechanism %s needs a password, but an OAuth token was configured", proto, mech)
	case c.OAuthToken == nil && isOAuthMech(mech):
		return fmt.Errorf("%s login: mechanism %s needs an OAuth access token, and none was configured", proto, mech)
	}
	return nil
}

// token fetches the OAuth access token. Errors never include it.
func (c Credentials) token(ctx context.Context, proto string) (string, error) {
	tok, err := c.OAuthToken(ctx)
	if err != nil {
		return "", fmt.Errorf("%s login: get the OAuth access token: %w", proto, err)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("%s login: the OAuth access token is empty", proto)
	}
	if strings.ContainsAny(tok, "\x00\x01\r\n ") {
		return "", fmt.Errorf("%s login: the OAuth access token contains spaces or control characters", proto)
	}
	return tok, nil
}

// chooseOAuthMech picks OAUTHBEARER or XOAUTH2 from what the server offers,
// unless forced is set.
func chooseOAuthMech(proto string, offered []string, forced string) (string, error) {
	if forced != "" {
		return forced, nil
	}
	for _, m := range []string{MechOAuthBearer, MechXOAuth2} {
		if slices.Contains(offered, m) {
			return m, nil
		}
	}
	return "", &OAuthMechanismError{Protocol: proto, Offered: slices.Clone(offered)}
}

// oauthClient is the client side of OAUTHBEARER (RFC 7628) and XOAUTH2.
// When the server answers the initial response with an error challenge,
// Next records the error and sends the dummy response the mechanisms
// prescribe, so that the server ends the exchange with a normal failure
// reply instead of the connection being left mid-exchange.
type oauthClient struct {
	mech, user, token string
	failure           *oauthFailure
}

// oauthFailure is the JSON error a server sends in an OAuth challenge.
type oauthFailure struct {
	Status string `json:"status"`
	Scope  string `json:"scope"`
}

func newOAuthClient(mech, user, token string) *oauthClient {
	return &oauthClient{mech: mech, user: user, token: token}
}

// initialResponse is the mechanism's first message, which carries the token.
func (c *oauthClient) initialResponse() []byte {
	if c.mech == MechXOAuth2 {
		return []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01")
	}
	// RFC 7628 §3.1: gs2-header with the authzid, then kvpairs. host and
	// port are optional and left out, as Gmail's documentation does.
	return []byte("n,a=" + saslName(c.user) + ",\x01auth=Bearer " + c.token + "\x01\x01")
}

// saslName escapes ',' and '=' in a GS2 authzid (RFC 5801 §4).
func saslName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

func (c *oauthClient) Start() (string, []byte, error) {
	return c.mech, c.initialResponse(), nil
}

func (c *oauthClient) Next(challenge []byte) ([]byte, error) {
	if c.failure != nil {
		return nil, errors.New("the server continued the exchange after an error")
	}
	f := &oauthFailure{}
	if err := json.Unmarshal(bytes.TrimSpace(challenge), f); err != nil || f.Status == "" {
		f.Status = "unexplained error"
	}
	f.Status = printable(f.Status, 60)
	f.Scope = printable(f.Scope, 200)
	c.failure = f
	if c.mech == MechXOAuth2 {
		return []byte{}, nil
	}
	return []byte{0x01}, nil // RFC 7628 §3.2.3
}

// detail describes the server's OAuth error, for an error message.
func (c *oauthClient) detail() string {
	if c == nil || c.failure == nil {
		return ""
	}
	s := "the server says the token is " + c.failure.Status
	switch c.failure.Status {
	case "invalid_token", "401":
		s = "the server says the token is invalid or expired (" + c.failure.Status + ")"
	case "insufficient_scope", "403":
		s = "the token lacks the scope the server needs (" + c.failure.Status + ")"
	}
	if c.failure.Scope != "" {
		s += "; needed scope: " + c.failure.Scope
	}
	return s
}

// secrets returns the forms of the token that may appear in a trace or a
// server's reply; none for a nil client.
func (c *oauthClient) secrets() []string {
	if c == nil {
		return nil
	}
	ir := c.initialResponse()
	return []string{c.token, base64.StdEncoding.EncodeToString(ir)}
}

// printable keeps the printable ASCII of s, cut to n bytes.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return -1
		}
		return r
	}, s)
	return truncate(s, n)
}

var _ sasl.Client = (*oauthClient)(nil)
