package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const maxMessageBytes = 10 << 20

var (
	errSMTPAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errSMTPNeedMail     = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Error: need MAIL command"}
	errSMTPNeedRcpt     = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Error: need RCPT command"}
	errSMTPLocal        = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Error: local delivery failed, try again later"}
)

// newSubmissionServer returns a go-smtp server for message submission
// (RFC 6409): AUTH PLAIN or LOGIN over TLS, then MAIL FROM equal to the
// login, then local delivery with a DKIM signature of the sender's domain.
func (m *mailSystem) newSubmissionServer() *smtp.Server {
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		m.stats.connOpened("smtp")
		return &smtpSession{m: m, conn: c}, nil
	}))
	s.Domain = mxHost
	s.MaxMessageBytes = maxMessageBytes
	s.MaxRecipients = 50
	s.EnableSMTPUTF8 = true // RFC 6531: internationalized addresses
	s.ReadTimeout = 5 * time.Minute
	s.WriteTimeout = time.Minute
	s.ErrorLog = logAdapter{log: m.log, msg: "smtp server"}
	return s
}

type smtpSession struct {
	m     *mailSystem
	conn  *smtp.Conn
	user  string // authenticated address
	from  string
	rcpts []string
	utf8  bool      // MAIL FROM had SMTPUTF8
	state connState // in the connection counts
}

func (s *smtpSession) AuthMechanisms() []string { return s.m.oauth.mechanisms(sasl.Plain, sasl.Login) }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	mech = strings.ToUpper(mech)
	check := func(username, password string) error {
		addr, ok := s.m.login(username, password)
		if !ok || s.m.oauth == OAuthOnly {
			s.m.log.Info("smtp authentication failed", "username", username)
			return smtp.ErrAuthFailed
		}
		s.user = addr
		s.m.countLogin("smtp", mech, &s.state)
		return nil
	}
	switch mech {
	case mechOAuthBearer, mechXOAuth2:
		if s.m.oauth == OAuthOff {
			break
		}
		return &oauthServer{mech: mech, failErr: smtp.ErrAuthFailed, check: func(user, token string) error {
			addr, _, ok := s.m.tokenLogin(user, token)
			if !ok {
				s.m.log.Info("smtp OAuth login refused", "username", user)
				return smtp.ErrAuthFailed
			}
			s.user = addr
			s.m.countLogin("smtp", mech, &s.state)
			return nil
		}}, nil
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return smtp.ErrAuthFailed
			}
			return check(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *smtpSession) Mail(from string, opts *smtp.MailOptions) error {
	if s.user == "" {
		return errSMTPAuthRequired
	}
	s.utf8 = opts != nil && opts.UTF8
	if isInternational(from) && !s.utf8 {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
			Message: fmt.Sprintf("<%s>: a non-ASCII address needs MAIL FROM ... SMTPUTF8 (RFC 6531)", from)}
	}
	if !s.m.owns(s.user, from) {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: fmt.Sprintf("<%s>: Sender address rejected: not owned by user %s", from, s.user)}
	}
	s.from = from
	s.rcpts = nil
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.user == "" {
		return errSMTPAuthRequired
	}
	if s.from == "" {
		return errSMTPNeedMail
	}
	if isInternational(to) && !s.utf8 {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
			Message: fmt.Sprintf("<%s>: a non-ASCII address needs MAIL FROM ... SMTPUTF8 (RFC 6531)", to)}
	}
	if !s.m.canReceive(to) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message: fmt.Sprintf("<%s>: Recipient address rejected: User unknown in local recipient table", to)}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.user == "" {
		return errSMTPAuthRequired
	}
	if s.from == "" {
		return errSMTPNeedMail
	}
	if len(s.rcpts) == 0 {
		return errSMTPNeedRcpt
	}
	if !s.utf8 {
		if hdr, _, ok := bytes.Cut(raw, []byte("\r\n\r\n")); ok && isInternational(string(hdr)) {
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
				Message: "UTF-8 header fields need SMTPUTF8 (RFC 6532, RFC 6531)"}
		}
	}
	if d := time.Duration(s.m.submitDelay.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.m.done:
			t.Stop()
			return errSMTPLocal
		}
	}
	msg, err := s.m.prepareSubmission(s.user, raw)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se
		}
		s.m.log.Error("smtp submission", "error", err)
		return errSMTPLocal
	}
	id, _ := randomHex(6)
	env := envelope{from: s.from, helo: s.conn.Hostname(), login: s.user, id: strings.ToUpper(id)}
	if err := s.m.deliver(env, s.rcpts, msg); err != nil {
		s.m.log.Error("smtp delivery", "error", err)
		return errSMTPLocal
	}
	s.m.stats.update(func(st *Stats) { st.MessagesSubmitted++ })
	if s.m.observe != nil {
		s.m.observe(Observation{Kind: ObserveSubmitted, At: time.Now(), Email: s.user, Detail: strings.Join(s.rcpts, ", ")})
	}
	s.m.log.Info("message submitted", "from", s.from, "rcpts", len(s.rcpts), "queue_id", env.id)
	return nil
}

func (s *smtpSession) Reset() {
	s.utf8 = false
	s.from = ""
	s.rcpts = nil
}

// Logout is called when the connection ends.
func (s *smtpSession) Logout() error {
	s.m.stats.connClosed("smtp", &s.state)
	return nil
}

// prepareSubmission checks the header of a submitted message, adds Date and
// Message-ID when missing (as an MSA does, RFC 6409 §8) and DKIM-signs it for
// the user's domain (unless Options.NoDKIMSign).
func (m *mailSystem) prepareSubmission(user string, raw []byte) ([]byte, error) {
	reject := func(format string, args ...any) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: fmt.Sprintf(format, args...)}
	}
	fields, _, err := splitMessage(raw)
	if err != nil {
		return nil, reject("Message header is malformed: %v", err)
	}
	froms := fieldsNamed(fields, "From")
	if len(froms) != 1 {
		return nil, reject("Message must have exactly one From field")
	}
	list, err := mail.ParseAddressList(froms[0].value())
	if err != nil || len(list) != 1 {
		return nil, reject("From field must hold exactly one address")
	}
	if !m.owns(user, list[0].Address) {
		return nil, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: fmt.Sprintf("From address %s does not belong to the authenticated user %s", list[0].Address, user)}
	}
	var extra bytes.Buffer
	if len(fieldsNamed(fields, "Date")) == 0 {
		fmt.Fprintf(&extra, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	}
	if len(fieldsNamed(fields, "Message-ID")) == 0 {
		id, err := randomHex(12)
		if err != nil {
			return nil, err
		}
		_, domain := splitAddress(user)
		fmt.Fprintf(&extra, "Message-ID: <%s@%s>\r\n", id, domain)
	}
	if extra.Len() > 0 {
		raw = append(extra.Bytes(), raw...)
	}
	if m.noSign {
		return raw, nil
	}
	_, domain := splitAddress(list[0].Address) // the From domain: the user's or an alias's
	return m.keys.sign(domain, raw)
}

// loginServer is the server side of the obsolete but common SASL LOGIN
// mechanism (draft-murchison-sasl-login).
type loginServer struct {
	step     int
	username string
	check    func(username, password string) error
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if response == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.username = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 1:
		l.username = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		if err := l.check(l.username, string(response)); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}
