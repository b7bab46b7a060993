package secret

import (
	"errors"
	"fmt"
	"time"

	gokeyring "github.com/zalando/go-keyring"
)

// KeyringService is the service name of acmemail's entries in the OS
// keyring (Secret Service on Linux and BSD, Keychain on macOS, Credential
// Manager on Windows). The entry's user is the mail address, or
// "smtp:"+address for a separate submission password (see KeyringUser).
const KeyringService = "acmemail"

// keyringTimeout bounds every keyring call: a locked keyring that waits
// for an unlock dialog nobody sees must not hang a cron job.
const keyringTimeout = 10 * time.Second

// Keyring is the OS keyring, or a fake in tests. Its errors are
// ErrKeyringNotFound, or wrap ErrNoKeyring.
type Keyring interface {
	Get(service, user string) (string, error)
	Set(service, user, secret string) error
	Delete(service, user string) error
}

var (
	// ErrKeyringNotFound: the keyring works but has no such entry.
	ErrKeyringNotFound = errors.New("no such entry in the keyring")
	// ErrNoKeyring wraps every other keyring failure: none is running,
	// it is locked, or it did not answer in time.
	ErrNoKeyring = errors.New("no OS keyring is available")
)

// OpenKeyring returns the keyring to use: the OS keyring, each call with
// a timeout. Tests replace it (see package secrettest).
var OpenKeyring = func() Keyring {
	return timedKeyring{gokeyring.Get, gokeyring.Set, gokeyring.Delete, keyringTimeout}
}

// timedKeyring runs each call of the OS keyring with a timeout and maps
// its errors to ErrKeyringNotFound and ErrNoKeyring. A call that times out
// is abandoned (its goroutine ends when the keyring answers, or with the
// process).
type timedKeyring struct {
	get     func(service, user string) (string, error)
	set     func(service, user, secret string) error
	del     func(service, user string) error
	timeout time.Duration
}

func (k timedKeyring) call(fn func() (string, error)) (string, error) {
	type result struct {
		v   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := fn()
		ch <- result{v, err}
	}()
	t := time.NewTimer(k.timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		switch {
		case r.err == nil:
			return r.v, nil
		case errors.Is(r.err, gokeyring.ErrNotFound):
			return "", ErrKeyringNotFound
		default:
			return "", fmt.Errorf("%w (%v)", ErrNoKeyring, r.err)
		}
	case <-t.C:
		return "", fmt.Errorf("%w: it did not answer within %v (is it locked?)", ErrNoKeyring, k.timeout)
	}
}

func (k timedKeyring) Get(service, user string) (string, error) {
	return k.call(func() (string, error) { return k.get(service, user) })
}

func (k timedKeyring) Set(service, user, secret string) error {
	_, err := k.call(func() (string, error) { return "", k.set(service, user, secret) })
	return err
}

func (k timedKeyring) Delete(service, user string) error {
	_, err := k.call(func() (string, error) { return "", k.del(service, user) })
	return err
}

// KeyringUser is the keyring entry's user for email's mail password, or
// its separate submission password.
func KeyringUser(email string, smtp bool) string {
	if smtp {
		return "smtp:" + email
	}
	return email
}
