package secret

import (
	"errors"
	"strings"
	"testing"
)

func TestTimedKeyring(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	k := timedKeyring{
		get:     func(string, string) (string, error) { <-block; return "", nil },
		set:     func(string, string, string) error { return errors.New("org.freedesktop.secrets was not provided") },
		del:     func(string, string) error { return nil },
		timeout: 1, // the blocked call can only end by the timeout
	}
	if _, err := k.Get("s", "u"); !errors.Is(err, ErrNoKeyring) || !strings.Contains(err.Error(), "did not answer within") {
		t.Errorf("Get on a hanging keyring = %v, want ErrNoKeyring and a timeout", err)
	}
	k.timeout = keyringTimeout
	if err := k.Set("s", "u", "p"); !errors.Is(err, ErrNoKeyring) || !strings.Contains(err.Error(), "org.freedesktop.secrets") {
		t.Errorf("Set = %v, want ErrNoKeyring with the cause", err)
	}
}
