package sandbox

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"
)

// OAuthMode says which logins the sandbox's IMAP and submission servers
// accept.
type OAuthMode int

const (
	// OAuthOff accepts passwords only (IMAP LOGIN and AUTHENTICATE PLAIN,
	// SMTP AUTH PLAIN and LOGIN).
	OAuthOff OAuthMode = iota
	// OAuthAlso accepts passwords and OAuth 2.0 bearer tokens (OAUTHBEARER,
	// RFC 7628, and XOAUTH2) registered with [World.AddOAuthToken].
	OAuthAlso
	// OAuthOnly accepts bearer tokens only and refuses every password, as
	// Gmail and Microsoft 365 do.
	OAuthOnly
)

func (m OAuthMode) String() string {
	switch m {
	case OAuthOff:
		return "off"
	case OAuthAlso:
		return "also"
	case OAuthOnly:
		return "only"
	}
	return fmt.Sprintf("OAuthMode(%d)", int(m))
}

const (
	mechOAuthBearer = "OAUTHBEARER"
	mechXOAuth2     = "XOAUTH2"
	maxTokenLen     = 4096
)

// AddOAuthToken registers an access token that logs email in through
// OAUTHBEARER or XOAUTH2, when Options.OAuth is not OAuthOff. A user may
// have several tokens.
func (w *World) AddOAuthToken(email, token string) error {
	if token == "" || len(token) > maxTokenLen || strings.ContainsAny(token, "\x00\x01\r\n ") {
		return fmt.Errorf("add OAuth token for %s: the token must be 1 to %d bytes without spaces or control characters", email, maxTokenLen)
	}
	m := w.mail
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.users[strings.ToLower(email)]
	if u == nil {
		return fmt.Errorf("add OAuth token for %s: no such user", email)
	}
	u.tokens = append(u.tokens, token)
	return nil
}

// tokenLogin checks an OAuth login and returns the user's address and
// password (which the IMAP backend needs to open the mailbox).
func (m *mailSystem) tokenLogin(username, token string) (addr, password string, ok bool) {
	m.mu.Lock()
	u := m.users[strings.ToLower(username)]
	var tokens []string
	if u != nil {
		tokens = append(tokens, u.tokens...)
	}
	m.mu.Unlock()
	found := 0
	for _, t := range tokens {
		found |= subtle.ConstantTimeCompare([]byte(t), []byte(token))
	}
	if u == nil || found != 1 {
		return "", "", false
	}
	return u.addr, u.password, true
}

// passwordMechs and oauthMechs are what the servers offer, by mode.
func (m OAuthMode) mechanisms(passwordMechs ...string) []string {
	switch m {
	case OAuthAlso:
		return append(passwordMechs, mechOAuthBearer, mechXOAuth2)
	case OAuthOnly:
		return []string{mechOAuthBearer, mechXOAuth2}
	}
	return passwordMechs
}

// oauthServer is the server side of OAUTHBEARER (RFC 7628) and XOAUTH2.
// A refused token is answered with the JSON error challenge both
// mechanisms define; the exchange then fails on the client's next
// response, whatever it is.
type oauthServer struct {
	mech    string
	check   func(user, token string) error
	failErr error // returned after the error challenge
	failed  bool
	done    bool
}

func (a *oauthServer) Next(resp []byte) ([]byte, bool, error) {
	switch {
	case a.failed:
		return nil, true, a.failErr
	case a.done:
		return nil, true, sasl.ErrUnexpectedClientResponse
	case resp == nil:
		return []byte{}, false, nil // ask for the initial response
	}
	a.done = true
	user, token, err := parseOAuthResponse(a.mech, resp)
	if err == nil {
		err = a.check(user, token)
	}
	if err != nil {
		a.failed = true
		status := "invalid_token"
		if errors.Is(err, errOAuthMalformed) {
			status = "invalid_request"
		}
		blob, _ := json.Marshal(map[string]string{"status": status, "schemes": "bearer", "scope": "https://mail.sandbox.test/"})
		return blob, false, nil
	}
	return nil, true, nil
}

var errOAuthMalformed = errors.New("malformed OAuth response")

// parseOAuthResponse reads the user and the bearer token from an
// OAUTHBEARER ("n,a=USER,^Aauth=Bearer TOKEN^A^A") or XOAUTH2
// ("user=USER^Aauth=Bearer TOKEN^A^A") initial response.
func parseOAuthResponse(mech string, resp []byte) (user, token string, err error) {
	if len(resp) > 2*maxTokenLen {
		return "", "", errOAuthMalformed
	}
	kv := resp
	if mech == mechOAuthBearer {
		parts := bytes.SplitN(resp, []byte(","), 3)
		if len(parts) != 3 || !bytes.Equal(parts[0], []byte("n")) {
			return "", "", errOAuthMalformed // channel binding is not supported
		}
		if a, ok := bytes.CutPrefix(parts[1], []byte("a=")); ok {
			user = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(string(a))
		} else if len(parts[1]) > 0 {
			return "", "", errOAuthMalformed
		}
		kv = parts[2]
	}
	if !bytes.HasSuffix(kv, []byte("\x01\x01")) {
		return "", "", errOAuthMalformed
	}
	for _, f := range bytes.Split(bytes.TrimSuffix(kv, []byte("\x01\x01")), []byte("\x01")) {
		k, v, ok := bytes.Cut(f, []byte("="))
		switch {
		case len(f) == 0 && mech == mechOAuthBearer:
		case !ok:
			return "", "", errOAuthMalformed
		case string(k) == "user" && mech == mechXOAuth2:
			user = string(v)
		case string(k) == "auth":
			scheme, tok, ok := bytes.Cut(v, []byte(" "))
			if !ok || !strings.EqualFold(string(scheme), "bearer") {
				return "", "", errOAuthMalformed
			}
			token = string(tok)
		}
	}
	if user == "" || token == "" {
		return "", "", errOAuthMalformed
	}
	return user, token, nil
}

// imapSession adds the sandbox's logins to an imapmemserver session: the
// OAuth mechanisms, the refusal of passwords in OAuthOnly mode, and login
// counters.
type imapSession struct {
	flushingSession
	m    *mailSystem
	mode OAuthMode
	conn connState
}

func newIMAPSession(inner imapserver.SessionIMAP4rev2, m *mailSystem, mode OAuthMode) *imapSession {
	m.stats.connOpened("imap")
	return &imapSession{flushingSession: flushingSession{inner}, m: m, mode: mode}
}

// Close counts the end of the connection.
func (s *imapSession) Close() error {
	s.m.stats.connClosed("imap", &s.conn)
	return s.flushingSession.Close()
}

func (s *imapSession) Login(username, password string) error {
	if s.mode == OAuthOnly {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed,
			Text: "Password logins are disabled; use OAUTHBEARER or XOAUTH2"}
	}
	if err := s.flushingSession.Login(username, password); err != nil {
		return err
	}
	s.m.countLogin("imap", "LOGIN", &s.conn)
	return nil
}

func (s *imapSession) AuthenticateMechanisms() []string { return s.mode.mechanisms(sasl.Plain) }

func (s *imapSession) Authenticate(mech string) (sasl.Server, error) {
	refused := &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "Invalid credentials"}
	switch {
	case mech == sasl.Plain && s.mode != OAuthOnly:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return refused
			}
			if err := s.flushingSession.Login(username, password); err != nil {
				return err
			}
			s.m.countLogin("imap", sasl.Plain, &s.conn)
			return nil
		}), nil
	case (mech == mechOAuthBearer || mech == mechXOAuth2) && s.mode != OAuthOff:
		return &oauthServer{mech: mech, failErr: refused, check: func(user, token string) error {
			addr, password, ok := s.m.tokenLogin(user, token)
			if !ok {
				s.m.log.Info("imap OAuth login refused", "username", user)
				return refused
			}
			if err := s.flushingSession.Login(addr, password); err != nil {
				return err
			}
			s.m.countLogin("imap", mech, &s.conn)
			return nil
		}}, nil
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
}

func (m *mailSystem) countLogin(proto, mech string, conn *connState) {
	m.stats.connLoggedIn(proto, conn)
	m.stats.update(func(s *Stats) {
		if s.Logins == nil {
			s.Logins = map[string]int{}
		}
		s.Logins[proto+" "+mech]++
	})
}

var _ imapserver.SessionSASL = (*imapSession)(nil)
