package mailbox

import (
	"bytes"
	"errors"
	"net"
	"slices"
	"testing"
	"time"
)

// fuzzLineLimit and fuzzBufSize are small, so that short inputs reach the
// size limit and outgrow the read buffer.
const (
	fuzzLineLimit = 512
	fuzzBufSize   = 16
)

// pipeWriteRead writes msgs on one end of a connection and returns what
// the other end read, and the first write error.
func pipeWriteRead(t *testing.T, msgs ...*pipeMessage) ([]*pipeMessage, error, error) {
	a, b := net.Pipe()
	defer a.Close()
	werr := make(chan error, 1)
	go func() {
		defer b.Close()
		w := newPipeConnSize(b, fuzzLineLimit, fuzzBufSize)
		for _, m := range msgs {
			if err := w.write(m, time.Now().Add(5*time.Second)); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	r := newPipeConnSize(a, fuzzLineLimit, fuzzBufSize)
	var got []*pipeMessage
	var rerr error
	for range msgs {
		m, err := r.read(time.Now().Add(5 * time.Second))
		if err != nil {
			rerr = err
			break
		}
		got = append(got, m)
	}
	a.Close()
	return got, <-werr, rerr
}

// samePipeMessage reports whether a and b carry the same fields (an empty
// byte slice and none are the same on the wire).
func samePipeMessage(a, b *pipeMessage) bool {
	return bytes.Equal(a.Mail, b.Mail) && a.Verdict == b.Verdict && a.Reason == b.Reason &&
		a.From == b.From && slices.Equal(a.To, b.To) && bytes.Equal(a.Reply, b.Reply) &&
		(a.Sent == nil) == (b.Sent == nil) && (a.Sent == nil || *a.Sent == *b.Sent) && a.Error == b.Error
}

// checkRoundTrip: m and a confirmation after it are read back exactly as
// written, or (only if m's line is over the limit) writing m fails.
func checkRoundTrip(t *testing.T, m *pipeMessage) {
	t.Helper()
	sent := true
	got, werr, rerr := pipeWriteRead(t, m, &pipeMessage{Sent: &sent})
	switch {
	case errors.Is(werr, errPipeTooLong):
		if len(got) != 0 {
			t.Fatalf("a message refused as too long was read: %+v", got[0])
		}
		return
	case rerr != nil:
		t.Fatalf("read back what was written: %v", rerr)
	case werr != nil:
		t.Fatalf("write: %v", werr)
	}
	if !samePipeMessage(got[0], m) {
		t.Fatalf("read back %+v, wrote %+v", got[0], m)
	}
	if got[1].Sent == nil || !*got[1].Sent {
		t.Fatalf("the message after it was read back as %+v", got[1])
	}
}

// FuzzPipeRead: whatever the other end of the pipe socket sends is a
// message or an error, never a panic; a line over the limit is an error;
// and what is written is what is read: a message read writes and reads
// back the same, and any bytes written as a mail or a reply are read back
// exactly (or refused at write time if their line would be over the
// limit).
func FuzzPipeRead(f *testing.F) {
	f.Add([]byte(`{"mail":"U3ViamVjdDogQUNNRTogeA=="}` + "\n"))
	f.Add([]byte(`{"verdict":"accepted","from":"a@b","to":["c@d"],"reply":"eA=="}` + "\n"))
	f.Add([]byte(`{"sent":true}`))
	f.Add([]byte(`{"sent":false,"error":"smtp: 554"}` + "\n" + `{"mail":"eA=="}` + "\n"))
	f.Add([]byte("not json\n"))
	f.Add([]byte("{}\n{}\n"))
	f.Add(bytes.Repeat([]byte("Received: from mx.example.net\r\n"), 12))
	f.Add(append(bytes.Repeat([]byte(" "), fuzzLineLimit), []byte("{}\n")...))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		go func() {
			b.Write(in)
			b.Close()
		}()
		r := newPipeConnSize(a, fuzzLineLimit, fuzzBufSize)
		m, err := r.read(time.Now().Add(5 * time.Second))
		a.Close()
		first, _, _ := bytes.Cut(in, []byte("\n"))
		switch {
		case err == nil && m == nil:
			t.Fatal("read returned neither a message nor an error")
		case err == nil && len(first) >= fuzzLineLimit:
			t.Fatalf("read accepted a line of %d bytes, over the limit of %d", len(first)+1, fuzzLineLimit)
		case err == nil:
			checkRoundTrip(t, m)
		}
		checkRoundTrip(t, &pipeMessage{Mail: in})
		checkRoundTrip(t, &pipeMessage{Verdict: VerdictAccepted, From: "a@b", To: []string{"c@d"}, Reply: in})
	})
}

// TestPipeLineLimit: the limit holds for a line that arrives in pieces
// larger than the read buffer, and is exact.
func TestPipeLineLimit(t *testing.T) {
	for _, tt := range []struct {
		size int
		ok   bool
	}{{fuzzLineLimit, true}, {fuzzLineLimit + 1, false}, {10 * fuzzLineLimit, false}} {
		line := append(bytes.Repeat([]byte(" "), tt.size-3), []byte("{}\n")...)
		a, b := net.Pipe()
		go func() {
			b.Write(line)
			b.Close()
		}()
		_, err := newPipeConnSize(a, fuzzLineLimit, fuzzBufSize).read(time.Now().Add(5 * time.Second))
		a.Close()
		if ok := err == nil; ok != tt.ok || !ok && !errors.Is(err, errPipeTooLong) {
			t.Errorf("read of a %d-byte line (limit %d) = %v", tt.size, fuzzLineLimit, err)
		}
	}
}
