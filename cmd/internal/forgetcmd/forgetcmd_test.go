package forgetcmd

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/acmemail/acmemail/keystore"
)

func testEnv(t *testing.T, confirm func(string, ...string) (bool, error)) (Env, *keystore.Store, *bytes.Buffer) {
	t.Helper()
	store, err := keystore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	return Env{
		Stdout: &out, Stderr: &bytes.Buffer{}, Confirm: confirm,
		Store: func() (*keystore.Store, error) { return store, nil },
		Export: func(context.Context, string, string, string) error {
			return errors.New("no export in this test")
		},
	}, store, &out
}

// TestQuestionInterrupted: Ctrl-C at the question (the context ends, as
// the caught signal ends it) stops forget at once, with nothing changed,
// though the terminal never answers.
func TestQuestionInterrupted(t *testing.T) {
	asked := make(chan struct{})
	never := make(chan struct{})
	t.Cleanup(func() { close(never) })
	env, store, out := testEnv(t, func(string, ...string) (bool, error) {
		close(asked)
		<-never
		return true, nil
	})
	const email = "alice@example.org"
	if _, err := store.CertKey(email, keystore.KeyP256); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-asked; cancel() }()
	done := make(chan error, 1)
	go func() { done <- run(ctx, env, &options{}, email) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("forget interrupted at the question = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("forget waits for an answer after the interrupt")
	}
	if c, err := store.Contents(email); err != nil || c != keystore.PendingOnly {
		t.Errorf("after the interrupt: Contents = %v, %v; want the pending key in place", c, err)
	}
	if out.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", out.String())
	}
}

// TestComplete: EMAIL completes every address list shows, pending ones
// too, and nothing after the first argument.
func TestComplete(t *testing.T) {
	env, store, _ := testEnv(t, nil)
	for _, e := range []string{"alice@example.org", "bob@example.org"} {
		if _, err := store.CertKey(e, keystore.KeyP256); err != nil {
			t.Fatal(err)
		}
	}
	if got := complete(env, nil, "al"); !slices.Equal(got, []string{"alice@example.org"}) {
		t.Errorf("complete(al) = %q", got)
	}
	if got := complete(env, nil, ""); len(got) != 2 {
		t.Errorf("complete() = %q, want both", got)
	}
	if got := complete(env, []string{"alice@example.org"}, ""); got != nil {
		t.Errorf("complete after EMAIL = %q, want nothing", got)
	}
	env.Store = func() (*keystore.Store, error) { return nil, nil }
	if got := complete(env, nil, ""); got != nil {
		t.Errorf("complete without a state directory = %q", got)
	}
}
