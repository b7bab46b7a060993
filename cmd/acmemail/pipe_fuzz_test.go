package main

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
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
