package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzManualRead: whatever is pasted, read returns without panicking, at
// most the size limit, and never the terminating "." line.
func FuzzManualRead(f *testing.F) {
	f.Add([]byte("Subject: ACME: abc\r\nFrom: a@b\r\n\r\nbody\r\n.\r\nrest\n"))
	f.Add([]byte("no newline at the end"))
	f.Add([]byte(".\n"))
	f.Add([]byte("\n.\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m := &manualMail{in: bufio.NewReader(bytes.NewReader(in))}
		got, err := m.read()
		if err != nil {
			return
		}
		if len(got) > maxMailSize {
			t.Fatalf("read returned %d bytes, more than the limit", len(got))
		}
		if !bytes.HasPrefix(in, got) {
			t.Fatalf("read returned bytes that were not read in order")
		}
		for _, line := range strings.Split(string(got), "\n") {
			if strings.TrimRight(line, "\r") == "." && len(got) < len(in) {
				t.Fatalf("read included the terminating dot line: %q", got)
			}
		}
	})
}

// pipeRoundTrip writes msg and then a confirmation through a Unix
// socket and returns what the other end read, in order.
func pipeRoundTrip(t testing.TB, msg pipeMessage) []*pipeMessage {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sent := true
	werr := make(chan error, 1)
	go func() {
		c, err := net.Dial("unix", ln.Addr().String())
		if err != nil {
			werr <- err
			return
		}
		defer c.Close()
		pc := newPipeConn(c)
		if err := pc.write(msg); err != nil {
			werr <- err
			return
		}
		werr <- pc.write(pipeMessage{Sent: &sent})
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc := newPipeConn(c)
	var got []*pipeMessage
	for range 2 {
		m, err := pc.read(time.Now().Add(time.Minute))
		if err != nil {
			t.Fatalf("read message %d of %d bytes: %v", len(got)+1, len(msg.Mail)+len(msg.Reply), err)
		}
		got = append(got, m)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	return got
}

// samePipeMessage reports whether a and b carry the same fields (an empty
// byte slice and none are the same on the wire).
func samePipeMessage(a, b *pipeMessage) bool {
	return bytes.Equal(a.Mail, b.Mail) && a.Verdict == b.Verdict && a.Reason == b.Reason &&
		a.From == b.From && slices.Equal(a.To, b.To) && bytes.Equal(a.Reply, b.Reply) &&
		(a.Sent == nil) == (b.Sent == nil) && (a.Sent == nil || *a.Sent == *b.Sent) && a.Error == b.Error
}

// checkPipeRoundTrip: msg, written, is read back as it was, and the
// message after it too.
func checkPipeRoundTrip(t testing.TB, msg pipeMessage) {
	t.Helper()
	got := pipeRoundTrip(t, msg)
	if !samePipeMessage(got[0], &msg) {
		t.Fatalf("read back a different message: %d bytes of mail and %d of reply, want %d and %d",
			len(got[0].Mail), len(got[0].Reply), len(msg.Mail), len(msg.Reply))
	}
	if got[1].Sent == nil || !*got[1].Sent {
		t.Fatalf("the confirmation after the message was read as %+v", got[1])
	}
}

// TestPipeRoundTrip: mails of every size obtain --pipe takes (up to
// maxMailSize) and replies as long cross the socket byte for byte, in
// both directions.
func TestPipeRoundTrip(t *testing.T) {
	for _, size := range []int{50_000, 1 << 20, maxMailSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			raw := make([]byte, size)
			rand.NewChaCha8([32]byte{byte(size)}).Read(raw)
			checkPipeRoundTrip(t, pipeMessage{Mail: raw})
			checkPipeRoundTrip(t, pipeMessage{Verdict: pipeAccepted, From: "alice@example.test", To: []string{"ca@example.net"}, Reply: raw})
		})
	}
}

// FuzzPipeRead: what the other end of the pipe socket sends is either a
// message or an error, never a panic, and a message read writes and
// reads back the same; any bytes written as a mail or a reply are read
// back exactly.
func FuzzPipeRead(f *testing.F) {
	f.Add([]byte(`{"mail":"U3ViamVjdDogQUNNRTogeA=="}` + "\n"))
	f.Add([]byte(`{"verdict":"accepted","from":"a@b","to":["c@d"],"reply":"eA=="}` + "\n"))
	f.Add([]byte(`{"sent":true}`))
	f.Add([]byte("not json\n"))
	f.Add([]byte("{}\n{}\n"))
	// Longer, once encoded, than the reader's buffer.
	f.Add(bytes.Repeat([]byte("Received: from mx.example.net\r\n"), 2500))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		defer a.Close()
		go func() {
			b.Write(in)
			b.Close()
		}()
		pc := newPipeConn(a)
		m, err := pc.read(time.Now().Add(5 * time.Second))
		switch {
		case err == nil && m == nil:
			t.Fatal("read returned neither a message nor an error")
		case err == nil:
			checkPipeRoundTrip(t, *m)
		}
		checkPipeRoundTrip(t, pipeMessage{Mail: in})
		checkPipeRoundTrip(t, pipeMessage{Verdict: pipeAccepted, From: "a@b", To: []string{"c@d"}, Reply: in})
	})
}
