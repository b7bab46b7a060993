package acmemail

import (
	"context"
	"errors"
	"testing"
	"time"
)

// deafMail is a Mail whose Next waits for a message whatever its ctx (as
// a pasted mail is read), and says when a Next call began.
type deafMail struct {
	msgs    chan []byte
	entered chan struct{}
}

func (m *deafMail) Next(context.Context) ([]byte, error) {
	m.entered <- struct{}{}
	return <-m.msgs, nil
}

func (m *deafMail) Send(context.Context, string, []string, []byte) error { return nil }

// TestReadMailAfterAStoppedReader: a message that the reader of an
// Obtain that has ended takes from the mailbox goes to the next Obtain's
// reader, not nowhere. (A renewal the CA answers with alreadyReplaced
// orders again at once, on the same Client: its challenge mail was lost
// so, and the run waited for it until its time ran out.)
func TestReadMailAfterAStoppedReader(t *testing.T) {
	m := &deafMail{msgs: make(chan []byte), entered: make(chan struct{}, 2)}
	c := &Client{Mail: m, mailTurn: make(chan struct{}, 1)}

	ctx1, stop1 := context.WithCancel(t.Context())
	err1 := make(chan error, 1)
	go c.readMail(ctx1, make(chan inMail), err1)
	<-m.entered // the first reader waits in Next
	stop1()     // its Obtain ended

	inbox2, err2 := make(chan inMail), make(chan error, 1)
	go c.readMail(t.Context(), inbox2, err2)
	m.msgs <- []byte("the challenge mail") // taken by the first reader

	select {
	case got := <-inbox2:
		if string(got.raw) != "the challenge mail" {
			t.Errorf("the second reader got %q", got.raw)
		}
	case err := <-err2:
		t.Fatalf("the second reader stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the message taken by the stopped reader never reached the next one")
	}
	if err := <-err1; !errors.Is(err, context.Canceled) {
		t.Errorf("the first reader ended with %v, want context.Canceled", err)
	}
	// The second reader reads the mailbox itself next.
	<-m.entered
	m.msgs <- []byte("the next mail")
	if got := <-inbox2; string(got.raw) != "the next mail" {
		t.Errorf("then the second reader got %q", got.raw)
	}
}
