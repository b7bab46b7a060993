package mailbox_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/mailbox"
)

func listenPipe(t *testing.T, cfg mailbox.PipeConfig) *mailbox.PipeServer {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "pipe", "test.sock")
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := mailbox.ListenPipe(cfg)
	if err != nil {
		t.Fatalf("ListenPipe() = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type handOverResult struct {
	v   *mailbox.PipeVerdict
	err error
}

// handOver runs HandOver in the background.
func handOver(t *testing.T, path string, raw []byte) <-chan handOverResult {
	t.Helper()
	ch := make(chan handOverResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		v, err := mailbox.HandOver(ctx, path, raw)
		ch <- handOverResult{v, err}
	}()
	return ch
}

func waitHandOver(t *testing.T, ch <-chan handOverResult) *mailbox.PipeVerdict {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("HandOver() = %v", r.err)
		}
		return r.v
	case <-time.After(30 * time.Second):
		t.Fatal("HandOver() did not return")
	}
	return nil
}

func nextMail(t *testing.T, s *mailbox.PipeServer, d time.Duration) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	raw, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next() = %v", err)
	}
	return raw
}

func noMail(t *testing.T, s *mailbox.PipeServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if raw, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next() = %d bytes, %v; want context.DeadlineExceeded", len(raw), err)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(b)
	return b
}

// TestPipeRoundTrip: mails up to the size limit reach Next byte for byte,
// and replies as long reach the peer byte for byte, each with the
// confirmation after it.
func TestPipeRoundTrip(t *testing.T) {
	s := listenPipe(t, mailbox.PipeConfig{})
	for _, size := range []int{50_000, 1 << 20, mailbox.DefaultMaxMessageSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			mail, reply := randomBytes(size), randomBytes(size+1)
			ch := handOver(t, s.Path(), mail)
			if got := nextMail(t, s, 30*time.Second); !bytes.Equal(got, mail) {
				t.Fatalf("Next() returned %d bytes, not the %d handed over", len(got), len(mail))
			}
			sent := make(chan error, 1)
			go func() { sent <- s.Send(t.Context(), "alice@example.org", []string{"ca@example.net"}, reply) }()
			v := waitHandOver(t, ch)
			if v.Verdict != mailbox.VerdictAccepted || v.From != "alice@example.org" || len(v.To) != 1 || v.To[0] != "ca@example.net" {
				t.Errorf("verdict %q from %q to %q", v.Verdict, v.From, v.To)
			}
			if !bytes.Equal(v.Reply, reply) {
				t.Errorf("the peer got a reply of %d bytes, not the %d sent", len(v.Reply), len(reply))
			}
			if err := v.Confirm(nil); err != nil {
				t.Errorf("Confirm() = %v", err)
			}
			if err := <-sent; err != nil {
				t.Errorf("Send() = %v", err)
			}
		})
	}
	noMail(t, s)
}

// TestPipeMaxMessageSize: a mail over MaxMessageSize is refused.
func TestPipeMaxMessageSize(t *testing.T) {
	s := listenPipe(t, mailbox.PipeConfig{MaxMessageSize: 1000})
	ch := handOver(t, s.Path(), randomBytes(1000))
	if got := nextMail(t, s, 5*time.Second); len(got) != 1000 {
		t.Fatalf("Next() returned %d bytes, want 1000", len(got))
	}
	s.Reject("no")
	waitHandOver(t, ch)
	v := waitHandOver(t, handOver(t, s.Path(), randomBytes(1001)))
	if v.Verdict != mailbox.VerdictError || !strings.Contains(v.Reason, "longer than 1000 bytes") {
		t.Errorf("a mail over the limit: verdict %q (%s), want %q", v.Verdict, v.Reason, mailbox.VerdictError)
	}
	noMail(t, s)
}

// TestPipeSilentPeer: connections that send nothing hold up no other, and
// are closed after ReadTimeout with an error verdict.
func TestPipeSilentPeer(t *testing.T) {
	s := listenPipe(t, mailbox.PipeConfig{ReadTimeout: 3 * time.Second, MaxConns: 3})
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("unix", s.Path())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	start := time.Now()
	ch := handOver(t, s.Path(), []byte("mail 1"))
	if got := nextMail(t, s, 10*time.Second); string(got) != "mail 1" {
		t.Fatalf("Next() = %q", got)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("the mail behind two silent clients took %v", d)
	}
	s.Reject("not today")
	if v := waitHandOver(t, ch); v.Verdict != mailbox.VerdictRejected || v.Reason != "not today" {
		t.Errorf("verdict %q (%s), want rejected", v.Verdict, v.Reason)
	}
	for i, c := range silent {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var v struct{ Verdict, Reason string }
		if err := json.NewDecoder(c).Decode(&v); err != nil || v.Verdict != mailbox.VerdictError {
			t.Errorf("silent client %d: verdict %+v, %v; want an error verdict after ReadTimeout", i, v, err)
		}
	}
}

// TestPipeMaxConns: with every slot held by a silent client, a mail waits
// until ReadTimeout frees one; it is not lost.
func TestPipeMaxConns(t *testing.T) {
	s := listenPipe(t, mailbox.PipeConfig{ReadTimeout: 500 * time.Millisecond, MaxConns: 1})
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	ch := handOver(t, s.Path(), []byte("mail 1"))
	if got := nextMail(t, s, 10*time.Second); string(got) != "mail 1" {
		t.Fatalf("Next() = %q", got)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("the mail was served after %v, while the only slot was held", d)
	}
	s.Reject("no")
	waitHandOver(t, ch)
}

// leave hands raw over by hand and disconnects at once.
func leave(t *testing.T, path string, raw []byte) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(map[string][]byte{"mail": raw})
	if _, err := c.Write(append(line, '\n')); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestPipePeerGone: a mail whose peer left before Next took it is
// skipped; one whose peer left while it was being checked makes Ready and
// Send fail with ErrPipePeerGone, and the next mail is served.
func TestPipePeerGone(t *testing.T) {
	s := listenPipe(t, mailbox.PipeConfig{})
	leave(t, s.Path(), []byte("left early"))
	time.Sleep(100 * time.Millisecond)
	noMail(t, s)

	// This one leaves after Next returned its mail, while it is checked.
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(map[string][]byte{"mail": []byte("left while checked")})
	if _, err := c.Write(append(line, '\n')); err != nil {
		t.Fatal(err)
	}
	if raw := nextMail(t, s, 5*time.Second); string(raw) != "left while checked" {
		t.Fatalf("Next() = %q", raw)
	}
	if err := s.Ready(); err != nil {
		t.Errorf("Ready() with the peer waiting = %v", err)
	}
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if err = s.Ready(); err != nil {
			break
		}
	}
	if !errors.Is(err, mailbox.ErrPipePeerGone) {
		t.Fatalf("Ready() = %v, want ErrPipePeerGone", err)
	}
	if err := s.Send(t.Context(), "a@b", []string{"c@d"}, []byte("reply")); !errors.Is(err, mailbox.ErrPipePeerGone) {
		t.Errorf("Send() = %v, want ErrPipePeerGone", err)
	}

	ch := handOver(t, s.Path(), []byte("mail 3"))
	if raw := nextMail(t, s, 5*time.Second); string(raw) != "mail 3" {
		t.Fatalf("Next() = %q", raw)
	}
	if err := s.Ready(); err != nil {
		t.Errorf("Ready() with the peer waiting = %v", err)
	}
	s.Reject("no")
	waitHandOver(t, ch)
}

// TestPipeConfirm: Send succeeds only when the peer confirms it sent the
// reply.
func TestPipeConfirm(t *testing.T) {
	s := listenPipe(t, mailbox.PipeConfig{})
	for _, tt := range []struct {
		name    string
		confirm func(*mailbox.PipeVerdict) error
		want    string
	}{
		{"sent", func(v *mailbox.PipeVerdict) error { return v.Confirm(nil) }, ""},
		{"failed", func(v *mailbox.PipeVerdict) error { return v.Confirm(errors.New("smtp: 554 no")) }, "could not send the reply: smtp: 554 no"},
		{"closed", func(v *mailbox.PipeVerdict) error { return v.Close() }, "did not confirm that it sent the reply"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ch := handOver(t, s.Path(), []byte("mail"))
			nextMail(t, s, 5*time.Second)
			sent := make(chan error, 1)
			go func() { sent <- s.Send(t.Context(), "a@b", []string{"c@d"}, []byte("reply")) }()
			if err := tt.confirm(waitHandOver(t, ch)); err != nil {
				t.Fatal(err)
			}
			err := <-sent
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Send() = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestPipeQueue: a mail handed over while another is being answered
// waits for Next; after QueueTimeout it is refused.
func TestPipeQueue(t *testing.T) {
	s := listenPipe(t, mailbox.PipeConfig{QueueTimeout: 500 * time.Millisecond})
	first := handOver(t, s.Path(), []byte("mail 1"))
	nextMail(t, s, 5*time.Second)
	second := handOver(t, s.Path(), []byte("mail 2"))
	third := handOver(t, s.Path(), []byte("mail 3"))
	// Next waits for the verdict on mail 1: it returns nothing meanwhile.
	noMail(t, s)
	s.Reject("no")
	// Nothing calls Next now: mails 2 and 3 time out.
	if v := waitHandOver(t, first); v.Verdict != mailbox.VerdictRejected {
		t.Errorf("mail 1: verdict %q", v.Verdict)
	}
	for _, ch := range []<-chan handOverResult{second, third} {
		if v := waitHandOver(t, ch); v.Verdict != mailbox.VerdictError || !strings.Contains(v.Reason, "busy") {
			t.Errorf("a mail queued for too long: verdict %q (%s), want %q", v.Verdict, v.Reason, mailbox.VerdictError)
		}
	}
	noMail(t, s)
}

// TestPipeScreen: a mail Screen refuses never reaches Next.
func TestPipeScreen(t *testing.T) {
	s := listenPipe(t, mailbox.PipeConfig{Screen: func(raw []byte) error {
		if !bytes.HasPrefix(raw, []byte("Subject: ACME: ")) {
			return errors.New("not a challenge mail")
		}
		return nil
	}})
	v := waitHandOver(t, handOver(t, s.Path(), []byte("Subject: hello")))
	if v.Verdict != mailbox.VerdictNotWanted || v.Reason != "not a challenge mail" {
		t.Errorf("verdict %q (%s), want %q", v.Verdict, v.Reason, mailbox.VerdictNotWanted)
	}
	noMail(t, s)
	ch := handOver(t, s.Path(), []byte("Subject: ACME: x"))
	if raw := nextMail(t, s, 5*time.Second); string(raw) != "Subject: ACME: x" {
		t.Errorf("Next() = %q", raw)
	}
	s.Reject("no")
	waitHandOver(t, ch)
}

// pipeGoroutines returns the goroutines of PipeServer code.
func pipeGoroutines() []string {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	var found []string
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, "mailbox.(*PipeServer).") || strings.Contains(g, "mailbox.ListenPipe") {
			found = append(found, g)
		}
	}
	return found
}

// TestPipeClose: Close gives every connection an error verdict, ends a
// waiting Next, removes the socket and leaves no goroutine.
func TestPipeClose(t *testing.T) {
	s, err := mailbox.ListenPipe(mailbox.PipeConfig{Path: filepath.Join(t.TempDir(), "pipe", "test.sock"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	checked := handOver(t, s.Path(), []byte("mail 1"))
	nextMail(t, s, 5*time.Second)
	queued := handOver(t, s.Path(), []byte("mail 2"))
	silent, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	next := make(chan error, 1)
	go func() {
		_, err := s.Next(context.Background())
		next <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	for i, ch := range []<-chan handOverResult{checked, queued} {
		if v := waitHandOver(t, ch); v.Verdict != mailbox.VerdictError || !strings.Contains(v.Reason, "stopped") {
			t.Errorf("mail %d: verdict %q (%s) at Close", i+1, v.Verdict, v.Reason)
		}
	}
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(silent).ReadString('\n'); !strings.Contains(line, `"error"`) {
		t.Errorf("silent client got %q, %v at Close, want an error verdict", line, err)
	}
	if err := <-next; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Next() at Close = %v, want net.ErrClosed", err)
	}
	if _, err := os.Stat(s.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is left after Close: %v", err)
	}
	for deadline := time.Now().Add(2 * time.Second); len(pipeGoroutines()) > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if g := pipeGoroutines(); len(g) > 0 {
		t.Errorf("%d goroutines of the server are left after Close:\n%s", len(g), strings.Join(g, "\n\n"))
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}

// TestListenPipe: the socket is the user's alone; a second server on it
// is refused, a stale one replaced.
func TestListenPipe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pipe")
	path := filepath.Join(dir, "test.sock")
	s := listenPipe(t, mailbox.PipeConfig{Path: path})
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode().Perm(), err, want)
		}
	}
	if _, err := mailbox.ListenPipe(mailbox.PipeConfig{Path: path}); !errors.Is(err, mailbox.ErrPipeInUse) {
		t.Errorf("second ListenPipe() = %v, want ErrPipeInUse", err)
	}
	s.Close()
	if _, err := mailbox.HandOver(t.Context(), path, []byte("x")); !errors.Is(err, mailbox.ErrPipeNotListening) {
		t.Errorf("HandOver() after Close = %v, want ErrPipeNotListening", err)
	}
	// A socket file nobody listens on, as a killed server leaves it.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no stale socket: %v", err)
	}
	listenPipe(t, mailbox.PipeConfig{Path: path})
}

func TestPipeSocketPath(t *testing.T) {
	a, err := mailbox.PipeSocketPath("/state", "Alice@Example.org")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := mailbox.PipeSocketPath("/state", "alice@example.org")
	c, _ := mailbox.PipeSocketPath("/state", "bob@example.org")
	if a != b || a == c || !strings.HasPrefix(a, "/state/pipe/") || !strings.HasSuffix(a, ".sock") {
		t.Errorf("PipeSocketPath = %q, %q, %q", a, b, c)
	}
	if _, err := mailbox.PipeSocketPath("/"+strings.Repeat("d", 80), "alice@example.org"); !errors.Is(err, mailbox.ErrSocketPathTooLong) {
		t.Errorf("PipeSocketPath(long dir) = %v, want ErrSocketPathTooLong", err)
	}
}
