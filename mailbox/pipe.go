package mailbox

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The pipe protocol hands one mail from a local program (a mail filter
// runs it with the mail on stdin) to a waiting process over a Unix
// socket, and the reply back. The waiting process runs a [PipeServer];
// the local program calls [HandOver]. One connection carries one mail,
// as one JSON object per line (byte strings in base64):
//
//	peer   -> server  {"mail": <bytes>}
//	server -> peer    {"verdict": "accepted", "from", "to", "reply": <bytes>}
//	                  or {"verdict": "rejected"|"not-a-challenge"|"error", "reason"}
//	peer   -> server  {"sent": true} or {"sent": false, "error": "..."}  (after "accepted")
//
// The peer keeps the connection open until it has the verdict and, after
// "accepted", has said whether it sent the reply: a connection that ends
// (or carries anything else) before the verdict means the peer went away.

// Verdicts a [PipeServer] gives for a mail handed over.
const (
	// VerdictAccepted: the mail is answered; the verdict carries the reply
	// for the peer to send, and the server waits for its confirmation.
	VerdictAccepted = "accepted"
	// VerdictRejected: the mail was checked and refused (the reason says
	// why).
	VerdictRejected = "rejected"
	// VerdictNotWanted: PipeConfig.Screen refused the mail before it was
	// checked (for acmemail: it is not a challenge mail).
	VerdictNotWanted = "not-a-challenge"
	// VerdictError: the mail could not be taken (malformed, too large, the
	// server was busy for too long or stopped).
	VerdictError = "error"
)

var (
	// ErrPipeInUse is returned by [ListenPipe] when another server already
	// listens on the socket.
	ErrPipeInUse = errors.New("another process is already listening on the pipe socket")
	// ErrPipeNotListening is returned by [HandOver] when nothing listens
	// on the socket.
	ErrPipeNotListening = errors.New("nothing listens on the pipe socket")
	// ErrPipePeerGone is returned (wrapped) by [PipeServer.Ready] and
	// [PipeServer.Send] when the peer of the mail being answered has
	// disconnected, or broke the protocol, before it had the verdict.
	ErrPipePeerGone = errors.New("the peer disconnected")
	// ErrSocketPathTooLong is returned by [PipeSocketPath] for a path a
	// Unix socket cannot have.
	ErrSocketPathTooLong = errors.New("the path is too long for a Unix socket")

	errPipeTooLong = errors.New("pipe message too long")
	errPipeClosed  = fmt.Errorf("pipe closed: %w", net.ErrClosed)
)

// maxSocketPath is the longest socket path PipeSocketPath returns: sun_path
// is 104 bytes on BSD and macOS, 108 on Linux.
const maxSocketPath = 104

// PipeSocketPath returns the socket a [PipeServer] waiting for mail to
// email listens on under stateDir: pipe/<hash>.sock. The name is a hash of
// the lower-cased address because addresses can be long and socket paths
// cannot; a path longer than a Unix socket allows yields an error wrapping
// [ErrSocketPathTooLong].
func PipeSocketPath(stateDir, email string) (string, error) {
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	p := filepath.Join(stateDir, "pipe", hex.EncodeToString(sum[:12])+".sock")
	if len(p) > maxSocketPath {
		return "", fmt.Errorf("pipe socket %s: %w (%d bytes, at most %d)", p, ErrSocketPathTooLong, len(p), maxSocketPath)
	}
	return p, nil
}

// pipeMessage is one line of the protocol.
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

// pipeLineLimit is the longest protocol line for mail (or a reply) of at
// most maxMail bytes: its base64 and room for the other fields.
func pipeLineLimit(maxMail int64) int {
	return base64.StdEncoding.EncodedLen(int(maxMail)) + 64<<10
}

// pipeConn frames protocol messages on a connection.
type pipeConn struct {
	c   net.Conn
	r   *bufio.Reader
	max int // longest line read or written, newline included
}

func newPipeConn(c net.Conn, maxLine int) *pipeConn {
	return newPipeConnSize(c, maxLine, 64<<10)
}

// newPipeConnSize is newPipeConn with a read buffer of bufSize bytes (at
// least 16); tests make it small so that short lines outgrow it.
func newPipeConnSize(c net.Conn, maxLine, bufSize int) *pipeConn {
	return &pipeConn{c: c, r: bufio.NewReaderSize(c, bufSize), max: maxLine}
}

// readLine returns the next line with its newline, or what precedes the
// end of the stream if the last line has none. A line longer than p.max is
// an error; the connection is then unusable.
func (p *pipeConn) readLine() ([]byte, error) {
	var line []byte
	for {
		frag, err := p.r.ReadSlice('\n')
		if len(line)+len(frag) > p.max {
			return nil, fmt.Errorf("%w (more than %d bytes)", errPipeTooLong, p.max)
		}
		// frag is only valid until the next read: copy it.
		line = append(line, frag...)
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, nil
		default:
			return nil, err
		}
	}
}

// read returns the next message; deadline zero means none.
func (p *pipeConn) read(deadline time.Time) (*pipeMessage, error) {
	if err := p.c.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	return p.next()
}

// next returns the next message under the deadline set before.
func (p *pipeConn) next() (*pipeMessage, error) {
	line, err := p.readLine()
	if err != nil {
		return nil, err
	}
	var m pipeMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, fmt.Errorf("malformed pipe message: %w", err)
	}
	return &m, nil
}

// write sends m, refusing one the other end would refuse as too long.
func (p *pipeConn) write(m *pipeMessage, deadline time.Time) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if len(b) > p.max {
		return fmt.Errorf("%w (%d bytes, at most %d)", errPipeTooLong, len(b), p.max)
	}
	if err := p.c.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err = p.c.Write(b)
	return err
}

// pipeWriteTimeout bounds writing one message: the other end reads it
// while it waits for it.
const pipeWriteTimeout = 30 * time.Second

// PipeConfig configures [ListenPipe].
type PipeConfig struct {
	// Path is the socket to listen on (see [PipeSocketPath]). Its
	// directory is created with mode 0700, and the socket gets mode 0600,
	// so that only the user reaches it.
	Path string
	// PeerName names the peer in errors, e.g. "acmemail respond".
	// Default "the peer".
	PeerName string
	// Screen, if set, is called with each mail handed over before Next may
	// return it, possibly from several goroutines at once. A non-nil error
	// refuses the mail with [VerdictNotWanted] and the error's text as the
	// reason.
	Screen func(raw []byte) error
	// MaxMessageSize bounds a mail handed over; a larger one is refused
	// with VerdictError. 0 means DefaultMaxMessageSize.
	MaxMessageSize int64
	// ReadTimeout bounds the time from connecting until the mail is read.
	// Default 30 seconds.
	ReadTimeout time.Duration
	// QueueTimeout bounds how long a mail read waits to be returned by
	// Next (while the mail before it is being answered); it is then
	// refused with VerdictError. Default 1 minute.
	QueueTimeout time.Duration
	// ConfirmTimeout bounds how long Send waits for the peer to say it sent
	// the reply. Default 5 minutes.
	ConfirmTimeout time.Duration
	// MaxConns is how many connections are served at once. Further
	// connections wait (in the listen backlog) for one of them to end,
	// which each does within ReadTimeout+QueueTimeout unless its mail was
	// returned by Next. Default 16.
	MaxConns int
	// Logger receives connection events at Debug; nil discards.
	Logger *slog.Logger
}

// PipeServer is the waiting side of the pipe protocol: it serves every
// connection on its own goroutine, so a peer that connects and stays
// silent holds up no other, and bounds each connection's time (see
// [PipeConfig]). Its Next and Send have the method set of acmemail's Mail:
// Next returns the mails handed over one at a time, and the mail Next
// returned is answered by Send (the reply goes to its peer, which sends
// it) or by Reject. Next does not return another mail before that.
//
// A PipeServer is safe for concurrent use.
type PipeServer struct {
	cfg  PipeConfig
	log  *slog.Logger
	ln   net.Listener
	max  int           // line limit
	sem  chan struct{} // one per connection being served
	turn chan struct{} // holds a token when no mail awaits its answer
	mail chan *pipePeer
	done chan struct{} // closed by Close
	wg   sync.WaitGroup
	once sync.Once

	mu      sync.Mutex
	cur     *pipePeer             // returned by Next, not yet answered
	reading map[net.Conn]struct{} // connections whose mail is being read
	closed  bool
}

// pipePeer is a connection whose mail was read.
type pipePeer struct {
	pc   *pipeConn
	mail []byte

	// The message the peer sent after its mail, or why none came: set
	// before gone is closed. Before the verdict, anything here means the
	// peer went away; after an accepted verdict it is the confirmation.
	next    *pipeMessage
	nextErr error
	gone    chan struct{}

	mu       sync.Mutex
	answered bool          // a verdict was written (or will never be)
	finished chan struct{} // closed by finish
	once     sync.Once
}

func (p *pipePeer) left() bool {
	select {
	case <-p.gone:
		return true
	default:
		return false
	}
}

// answer writes v (if no verdict was written and the peer is there) and
// reports whether this call was the one to answer.
func (p *pipePeer) answer(v *pipeMessage) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.answered {
		return false, nil
	}
	p.answered = true
	if p.left() {
		return true, ErrPipePeerGone
	}
	return true, p.pc.write(v, time.Now().Add(pipeWriteTimeout))
}

// finish ends the connection.
func (p *pipePeer) finish() {
	p.once.Do(func() {
		close(p.finished)
		p.pc.c.Close()
	})
}

// ListenPipe creates the socket's directory (mode 0700), refuses with
// [ErrPipeInUse] if another server answers on the socket, removes a stale
// socket left by a process that died, and listens.
func ListenPipe(cfg PipeConfig) (*PipeServer, error) {
	if cfg.PeerName == "" {
		cfg.PeerName = "the peer"
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = time.Minute
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = 5 * time.Minute
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 16
	}
	dir := filepath.Dir(cfg.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pipe socket directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pipe socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", cfg.Path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", cfg.Path, ErrPipeInUse)
	}
	os.Remove(cfg.Path) // a stale socket of a process that died
	ln, err := net.Listen("unix", cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("listen on the pipe socket: %w", err)
	}
	if err := os.Chmod(cfg.Path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on the pipe socket: %w", err)
	}
	s := &PipeServer{
		cfg:     cfg,
		log:     discardLogger(cfg.Logger).With("socket", cfg.Path),
		ln:      ln,
		max:     pipeLineLimit(cfg.MaxMessageSize),
		sem:     make(chan struct{}, cfg.MaxConns),
		turn:    make(chan struct{}, 1),
		mail:    make(chan *pipePeer),
		done:    make(chan struct{}),
		reading: make(map[net.Conn]struct{}),
	}
	s.turn <- struct{}{}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Path is the socket the server listens on.
func (s *PipeServer) Path() string { return s.cfg.Path }

func (s *PipeServer) accept() {
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		select {
		case s.sem <- struct{}{}:
		case <-s.done:
			return
		}
		c, err := s.ln.Accept()
		if err != nil {
			<-s.sem
			select {
			case <-s.done:
				return
			case <-time.After(backoff): // out of file descriptors, say
				s.log.Debug("pipe accept", "error", err)
				backoff = min(2*backoff, time.Second)
			}
			continue
		}
		backoff = 5 * time.Millisecond
		s.wg.Add(1)
		go s.serve(c)
	}
}

// serve reads the mail of one connection, offers it to Next and waits
// until it is answered.
func (s *PipeServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() { <-s.sem }()
	pc := newPipeConn(c, s.max)
	refuse := func(why string) {
		pc.write(&pipeMessage{Verdict: VerdictError, Reason: why}, time.Now().Add(pipeWriteTimeout))
		c.Close()
	}

	// The deadline is set before the connection is registered, so that
	// Close's shorter one, set after, wins.
	if err := c.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout)); err != nil {
		c.Close()
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.reading[c] = struct{}{}
	s.mu.Unlock()
	msg, err := pc.next()
	s.mu.Lock()
	delete(s.reading, c)
	s.mu.Unlock()
	switch {
	case s.stopped():
		refuse("stopped before answering")
		return
	case err != nil:
		s.log.Debug("pipe connection without a mail", "error", err)
		refuse(fmt.Sprintf("no mail: %v", err))
		return
	case len(msg.Mail) == 0:
		refuse("no mail")
		return
	case int64(len(msg.Mail)) > s.cfg.MaxMessageSize:
		refuse(fmt.Sprintf("the mail is longer than %d bytes", s.cfg.MaxMessageSize))
		return
	}
	if s.cfg.Screen != nil {
		if err := s.cfg.Screen(msg.Mail); err != nil {
			pc.write(&pipeMessage{Verdict: VerdictNotWanted, Reason: err.Error()}, time.Now().Add(pipeWriteTimeout))
			c.Close()
			return
		}
	}

	p := &pipePeer{pc: pc, mail: msg.Mail, gone: make(chan struct{}), finished: make(chan struct{})}
	// Nothing is due from the peer before the verdict: a read that ends
	// means it went away. After an accepted verdict, it is the
	// confirmation Send waits for, under the deadline Send sets (so the
	// read must not set one itself).
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		refuse(err.Error())
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		p.next, p.nextErr = pc.next()
		close(p.gone)
	}()

	queued := time.NewTimer(s.cfg.QueueTimeout)
	defer queued.Stop()
	select {
	case s.mail <- p:
	case <-p.gone:
		s.log.Debug("pipe peer left before its mail was taken", "error", p.nextErr)
		p.finish()
		return
	case <-queued.C:
		p.answer(&pipeMessage{Verdict: VerdictError, Reason: fmt.Sprintf("busy with another mail for %v; try again", s.cfg.QueueTimeout)})
		p.finish()
		return
	case <-s.done:
		p.answer(&pipeMessage{Verdict: VerdictError, Reason: "stopped before answering"})
		p.finish()
		return
	}
	select {
	case <-p.finished:
	case <-s.done:
		p.answer(&pipeMessage{Verdict: VerdictError, Reason: "stopped before answering"})
		p.finish()
	}
}

func (s *PipeServer) stopped() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Next returns the next mail handed over. It first waits until the mail
// it returned before was answered (by Send or Reject), then until a peer
// hands one over, ctx ends, or the server is closed (the error then wraps
// net.ErrClosed). A mail whose peer left while it waited is skipped.
func (s *PipeServer) Next(ctx context.Context) ([]byte, error) {
	select {
	case <-s.turn:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a mail on the pipe: %w", context.Cause(ctx))
	case <-s.done:
		return nil, errPipeClosed
	}
	for {
		select {
		case p := <-s.mail:
			if p.left() {
				p.finish()
				continue
			}
			s.mu.Lock()
			s.cur = p
			s.mu.Unlock()
			return p.mail, nil
		case <-ctx.Done():
			s.turn <- struct{}{}
			return nil, fmt.Errorf("wait for a mail on the pipe: %w", context.Cause(ctx))
		case <-s.done:
			s.turn <- struct{}{}
			return nil, errPipeClosed
		}
	}
}

// current returns the mail Next returned that awaits its answer.
func (s *PipeServer) current() *pipePeer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// release ends the answer to p and lets Next return the next mail.
func (s *PipeServer) release(p *pipePeer) {
	p.finish()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == p {
		s.cur = nil
		s.turn <- struct{}{}
	}
}

// Ready reports whether the peer of the mail Next returned is still
// connected and waiting for its verdict: nil if so, an error wrapping
// [ErrPipePeerGone] if it went away, another error if no mail awaits an
// answer. Call it just before committing to answer the mail (for acmemail:
// before the challenge is recorded as answered), so that nothing is
// committed for a peer that cannot send the reply.
func (s *PipeServer) Ready() error {
	p := s.current()
	if p == nil {
		return errors.New("no mail handed over through the pipe awaits an answer")
	}
	if p.left() {
		return fmt.Errorf("%s left before its mail was answered: %w", s.cfg.PeerName, ErrPipePeerGone)
	}
	return nil
}

// Reject answers the mail Next returned with [VerdictRejected] and reason,
// and lets Next go on. Without such a mail it does nothing.
func (s *PipeServer) Reject(reason string) {
	p := s.current()
	if p == nil {
		return
	}
	if _, err := p.answer(&pipeMessage{Verdict: VerdictRejected, Reason: reason}); err != nil {
		s.log.Debug("pipe verdict", "error", err)
	}
	s.release(p)
}

// Send answers the mail Next returned with [VerdictAccepted]: it hands
// raw (the reply, from from to to) to the mail's peer, which sends it,
// and waits until the peer says it did (at most ConfirmTimeout, or until
// ctx ends). An error means the reply may not have been sent; if it
// wraps [ErrPipePeerGone], it was not handed over.
func (s *PipeServer) Send(ctx context.Context, from string, to []string, raw []byte) error {
	p := s.current()
	if p == nil {
		return errors.New("no mail handed over through the pipe awaits a reply")
	}
	defer s.release(p)
	first, err := p.answer(&pipeMessage{Verdict: VerdictAccepted, From: from, To: to, Reply: raw})
	switch {
	case !first:
		return errors.New("the mail handed over through the pipe was answered already")
	case errors.Is(err, ErrPipePeerGone):
		return fmt.Errorf("%s left before the reply could be handed to it: %w", s.cfg.PeerName, err)
	case err != nil:
		return fmt.Errorf("hand the reply to %s: %w", s.cfg.PeerName, err)
	}
	deadline := time.Now().Add(s.cfg.ConfirmTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// Bounds the read that has been waiting since the mail was read.
	p.pc.c.SetReadDeadline(deadline)
	select {
	case <-p.gone:
	case <-ctx.Done():
		return fmt.Errorf("wait for %s to send the reply: %w", s.cfg.PeerName, context.Cause(ctx))
	}
	if p.nextErr != nil {
		return fmt.Errorf("%s did not confirm that it sent the reply: %w", s.cfg.PeerName, p.nextErr)
	}
	if p.next.Sent == nil || !*p.next.Sent {
		why := p.next.Error
		if why == "" {
			why = "no reason given"
		}
		return fmt.Errorf("%s could not send the reply: %s", s.cfg.PeerName, why)
	}
	return nil
}

// Close stops listening and removes the socket, answers every mail not
// yet answered with VerdictError, and returns when every connection is
// closed and every goroutine of the server has ended. Pending and later
// Next calls return an error wrapping net.ErrClosed. Close may be called
// more than once.
func (s *PipeServer) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.ln.Close()
		os.Remove(s.cfg.Path)
		s.mu.Lock()
		s.closed = true
		for c := range s.reading {
			c.SetReadDeadline(time.Now()) // ends the read; the verdict can still be written
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return err
}

// PipeVerdict is what a [PipeServer] answered to a mail handed over with
// [HandOver]. After [VerdictAccepted], send Reply from From to To, then
// call Confirm; otherwise Reason says why the mail was not accepted.
type PipeVerdict struct {
	Verdict string
	Reason  string
	From    string
	To      []string
	Reply   []byte

	pc *pipeConn
}

// pipeVerdictWait is how long HandOver waits for the verdict when ctx has
// no deadline.
const pipeVerdictWait = 5 * time.Minute

// HandOver connects to the [PipeServer] listening on path, hands it raw
// and waits for its verdict, until ctx ends (or at most 5 minutes if ctx
// has no deadline). If nothing listens on path the error wraps
// [ErrPipeNotListening]. After an accepted verdict the connection stays
// open for [PipeVerdict.Confirm]; call Confirm or Close.
func HandOver(ctx context.Context, path string, raw []byte) (*PipeVerdict, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect to the pipe socket: %w", context.Cause(ctx))
		}
		return nil, fmt.Errorf("%w: %w", ErrPipeNotListening, err)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	fail := func(err error) (*PipeVerdict, error) {
		stop()
		c.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
		}
		return nil, err
	}
	deadline := time.Now().Add(pipeVerdictWait)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	pc := newPipeConn(c, pipeLineLimit(DefaultMaxMessageSize))
	if err := pc.write(&pipeMessage{Mail: raw}, deadline); err != nil {
		return fail(fmt.Errorf("hand the mail over: %w", err))
	}
	m, err := pc.read(deadline)
	if err != nil {
		return fail(fmt.Errorf("wait for the verdict: %w", err))
	}
	if !stop() {
		return fail(fmt.Errorf("wait for the verdict: %w", context.Cause(ctx)))
	}
	v := &PipeVerdict{Verdict: m.Verdict, Reason: m.Reason, From: m.From, To: m.To, Reply: m.Reply, pc: pc}
	if v.Verdict != VerdictAccepted {
		c.Close()
	}
	return v, nil
}

// Confirm tells the server whether the reply was sent (sendErr nil) or
// not (its text is passed on), and closes the connection. The server
// counts the reply as sent only when Confirm(nil) succeeds.
func (v *PipeVerdict) Confirm(sendErr error) error {
	sent := sendErr == nil
	m := &pipeMessage{Sent: &sent}
	if sendErr != nil {
		m.Error = sendErr.Error()
	}
	err := v.pc.write(m, time.Now().Add(pipeWriteTimeout))
	return errors.Join(err, v.Close())
}

// Close closes the connection; without Confirm the server counts the
// reply as not sent.
func (v *PipeVerdict) Close() error {
	err := v.pc.c.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
