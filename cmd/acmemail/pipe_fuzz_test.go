package main

import (
	"bufio"
	"bytes"
	"net"
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

// FuzzPipeRead: a protocol line from the other end of the pipe socket is
// either a message or an error, never a panic.
func FuzzPipeRead(f *testing.F) {
	f.Add([]byte(`{"mail":"U3ViamVjdDogQUNNRTogeA=="}` + "\n"))
	f.Add([]byte(`{"verdict":"accepted","from":"a@b","to":["c@d"],"reply":"eA=="}` + "\n"))
	f.Add([]byte(`{"sent":true}`))
	f.Add([]byte("not json\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		defer a.Close()
		go func() {
			b.Write(in)
			b.Close()
		}()
		pc := newPipeConn(a)
		m, err := pc.read(time.Now().Add(5 * time.Second))
		if err == nil && m == nil {
			t.Fatal("read returned neither a message nor an error")
		}
	})
}
