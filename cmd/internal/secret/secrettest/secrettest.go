// Package secrettest replaces the OS keyring of package secret in tests.
package secrettest

import (
	"sync"
	"testing"

	"github.com/acmemail/acmemail/cmd/internal/secret"
)

// Keyring is an in-memory keyring. With Err set it behaves like a missing
// keyring (make Err wrap secret.ErrNoKeyring); with Forget set it accepts
// and forgets. Entries are keyed "service/user".
type Keyring struct {
	mu      sync.Mutex
	Entries map[string]string
	Err     error
	Forget  bool
	gets    int
}

// Gets is how often Get was called.
func (k *Keyring) Gets() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gets
}

func (k *Keyring) Get(service, user string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gets++
	if k.Err != nil {
		return "", k.Err
	}
	v, ok := k.Entries[service+"/"+user]
	if !ok {
		return "", secret.ErrKeyringNotFound
	}
	return v, nil
}

func (k *Keyring) Set(service, user, value string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.Err != nil {
		return k.Err
	}
	if !k.Forget {
		if k.Entries == nil {
			k.Entries = map[string]string{}
		}
		k.Entries[service+"/"+user] = value
	}
	return nil
}

func (k *Keyring) Delete(service, user string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.Err != nil {
		return k.Err
	}
	if _, ok := k.Entries[service+"/"+user]; !ok {
		return secret.ErrKeyringNotFound
	}
	delete(k.Entries, service+"/"+user)
	return nil
}

// Use makes secret.OpenKeyring return k for the rest of the test. Tests
// that call it must not be parallel.
func Use(t testing.TB, k secret.Keyring) {
	old := secret.OpenKeyring
	secret.OpenKeyring = func() secret.Keyring { return k }
	t.Cleanup(func() { secret.OpenKeyring = old })
}

// NoKeyring makes the tests run as if no OS keyring were available.
func NoKeyring(t testing.TB) {
	Use(t, &Keyring{Err: secret.ErrNoKeyring})
}
