package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/acmemail/acmemail/acmemail"
)

// The pipe mode: "acmemail obtain --pipe EMAIL" creates the order and
// listens on a Unix socket in the state directory (pipe/<hash>.sock, in a
// 0700 directory, so only the user reaches it). "acmemail respond", run by
// the user's mail filter (procmail, Sieve's pipe, an MTA alias), connects
// and hands over one mail. The waiting obtain checks it exactly as mail
// read over IMAP (the same acmemail.Client code: DKIM or S/MIME, From, To,
// Subject, Auto-Submitted, age, the durable record that no challenge is
// answered twice) and answers with a verdict; for the genuine challenge
// the verdict carries the reply, which respond sends or prints and then
// confirms, and only then does obtain ask the CA to validate.
//
// One connection, one JSON object per line:
//
//	respond -> obtain   {"mail": <bytes>}
//	obtain  -> respond  {"verdict": "accepted", "from", "to", "reply": <bytes>}
//	                    or {"verdict": "rejected"|"not-a-challenge"|"error", "reason"}
//	respond -> obtain   {"sent": true} or {"sent": false, "error": "..."}  (after "accepted")

type pipeMessage struct {
	Mail    []byte   `json:"mail,omitempty"`
	Verdict string   `json:"verdict,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	From    string   `json:"from,omitempty"`
	To      []string `json:"to,omitempty"`
	Reply   []byte   `json:"reply,omitempty"`
	Sent    *bool    `json:"sent,omitempty"`
	Error   string   `json:"error,omitempty"`
}

const (
	pipeAccepted     = "accepted"
	pipeRejected     = "rejected"
	pipeNotChallenge = "not-a-challenge"
	pipeError        = "error"
	// pipeMaxLine bounds one protocol line (a 10 MiB mail in base64).
	pipeMaxLine = 16 << 20
)

// pipeSocketPath is where obtain --pipe for email listens. The name is a
// hash: addresses can be long, socket paths cannot.
func pipeSocketPath(stateDir, email string) (string, error) {
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	p := filepath.Join(stateDir, "pipe", hex.EncodeToString(sum[:12])+".sock")
	if len(p) > 104 { // sun_path is 104 bytes on BSD and macOS, 108 on Linux
		return "", withHint(fmt.Errorf("the pipe socket path %s is too long for a Unix socket", p),
			"set ACMEMAIL_HOME to a shorter directory")
	}
	return p, nil
}

type pipeConn struct {
	c   net.Conn
	r   *bufio.Reader
	enc *json.Encoder
}

func newPipeConn(c net.Conn) *pipeConn {
	return &pipeConn{c: c, r: bufio.NewReaderSize(io.LimitReader(c, 2*pipeMaxLine), 64<<10), enc: json.NewEncoder(c)}
}

func (p *pipeConn) read(deadline time.Time) (*pipeMessage, error) {
	p.c.SetReadDeadline(deadline)
	line, err := p.r.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) {
		more, err2 := p.r.ReadSlice('\n')
		line = append(append([]byte(nil), line...), more...)
		if len(line) > pipeMaxLine {
			return nil, errors.New("protocol line too long")
		}
		err = err2
	}
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return nil, err
	}
	var m pipeMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, fmt.Errorf("malformed message: %w", err)
	}
	return &m, nil
}

func (p *pipeConn) write(m pipeMessage) error {
	p.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return p.enc.Encode(m)
}

// pipeMail is the acmemail.Mail of obtain --pipe.
type pipeMail struct {
	ln    net.Listener
	path  string
	prog  *progress
	email string
	conns chan net.Conn
	done  chan struct{} // closed by close

	mu     sync.Mutex
	cur    *pipeConn     // the connection whose mail is being checked
	free   chan struct{} // a verdict was given for cur
	handed bool          // owned by Next's caller
	closed bool
}

// listenPipe starts listening for acmemail respond.
func listenPipe(stateDir, email string, prog *progress) (*pipeMail, error) {
	path, err := pipeSocketPath(stateDir, email)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, withHint(fmt.Errorf("another acmemail obtain --pipe is already waiting for %s", email), "stop it first, or let it finish")
	}
	os.Remove(path) // a stale socket of a run that died
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen for acmemail respond: %w", err)
	}
	os.Chmod(path, 0o600)
	m := &pipeMail{ln: ln, path: path, prog: prog, email: email, conns: make(chan net.Conn), done: make(chan struct{}), free: make(chan struct{}, 1)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(m.conns)
				return
			}
			select {
			case m.conns <- c:
			case <-m.done:
				c.Close()
			}
		}
	}()
	prog.printf("waiting for the challenge mail: have your mail filter pipe it to \"acmemail respond --smtp URL\" (or \"acmemail respond --print | sendmail -t -oi\")")
	return m, nil
}

func (m *pipeMail) Next(ctx context.Context) ([]byte, error) {
	if m.handed {
		select {
		case <-m.free:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for {
		var c net.Conn
		select {
		case cc, ok := <-m.conns:
			if !ok {
				return nil, errors.New("the pipe socket was closed")
			}
			c = cc
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		pc := newPipeConn(c)
		msg, err := pc.read(time.Now().Add(time.Minute))
		if err != nil || len(msg.Mail) == 0 {
			why := "no mail"
			if err != nil {
				why = err.Error()
			}
			pc.write(pipeMessage{Verdict: pipeError, Reason: why})
			c.Close()
			continue
		}
		if _, err := acmemail.ParseChallengeMail(msg.Mail); errors.Is(err, acmemail.ErrNotChallenge) {
			pc.write(pipeMessage{Verdict: pipeNotChallenge, Reason: err.Error()})
			c.Close()
			continue
		}
		m.mu.Lock()
		m.cur = pc
		m.mu.Unlock()
		m.handed = true
		m.prog.printf("acmemail respond handed over a mail; checking it")
		return msg.Mail, nil
	}
}

// finish gives the verdict for the current connection and closes it.
func (m *pipeMail) finish(v pipeMessage) {
	m.mu.Lock()
	pc := m.cur
	m.cur = nil
	m.mu.Unlock()
	if pc == nil {
		return
	}
	pc.write(v)
	pc.c.Close()
	select {
	case m.free <- struct{}{}:
	default:
	}
}

func (m *pipeMail) observe(e acmemail.Event) {
	if e.Kind == acmemail.EventIgnoredMail {
		m.finish(pipeMessage{Verdict: pipeRejected, Reason: e.Message})
	}
}

// Send hands the reply to acmemail respond and waits until it says the
// reply was sent (or printed).
func (m *pipeMail) Send(ctx context.Context, from string, to []string, raw []byte) error {
	m.mu.Lock()
	pc := m.cur
	m.cur = nil
	m.mu.Unlock()
	if pc == nil {
		return errors.New("acmemail respond disconnected before the reply could be handed to it")
	}
	defer pc.c.Close()
	if err := pc.write(pipeMessage{Verdict: pipeAccepted, From: from, To: to, Reply: raw}); err != nil {
		return fmt.Errorf("hand the reply to acmemail respond: %w", err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ack, err := pc.read(deadline)
	if err != nil {
		return fmt.Errorf("acmemail respond did not confirm that it sent the reply: %w", err)
	}
	if ack.Sent == nil || !*ack.Sent {
		return fmt.Errorf("acmemail respond could not send the reply: %s", ack.Error)
	}
	m.prog.printf("acmemail respond sent the reply")
	return nil
}

func (m *pipeMail) close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.mu.Unlock()
	close(m.done)
	m.finish(pipeMessage{Verdict: pipeError, Reason: "acmemail obtain stopped before answering (see its output)"})
	m.ln.Close()
	os.Remove(m.path)
}
