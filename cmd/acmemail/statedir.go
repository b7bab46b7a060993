package main

import (
	"errors"
	"io/fs"

	"github.com/acmemail/acmemail/keystore"
)

// openState opens the state directory ($ACMEMAIL_HOME, else
// $XDG_DATA_HOME/acmemail, else ~/.local/share/acmemail), creating it,
// with a hint on what to change when it cannot be.
func openState(getenv func(string) string) (*keystore.Store, error) {
	home, err := keystore.DefaultDir(getenv)
	if err != nil {
		return nil, withHint(err, "set ACMEMAIL_HOME to the directory acmemail keeps its keys and certificates in")
	}
	return openStateAt(getenv, home)
}

func openStateAt(getenv func(string) string, home string) (*keystore.Store, error) {
	store, err := keystore.Open(home)
	if err != nil {
		return nil, stateDirError(getenv, err, "write")
	}
	return store, nil
}

// stateDirError is err of the state directory with a hint that says
// where it comes from and what to do: make it a directory you can do
// (read or write), or set ACMEMAIL_HOME.
func stateDirError(getenv func(string) string, err error, do string) error {
	from := "it is $ACMEMAIL_HOME"
	switch {
	case getenv("ACMEMAIL_HOME") != "":
	case getenv("XDG_DATA_HOME") != "":
		from = "it is $XDG_DATA_HOME/acmemail"
	default:
		from = "it is ~/.local/share/acmemail"
	}
	return withHint(err, "the state directory holds acmemail's keys and certificates ("+from+"): make it a directory you can "+do+", or set ACMEMAIL_HOME to one")
}

// openStateToRead opens the state directory for a command that only
// reads it (list, show, export): it creates nothing there and changes
// nothing, not even permissions, so a read-only state directory (or file
// system) can be read. A state directory that does not exist yet is nil.
func openStateToRead(getenv func(string) string) (*keystore.Store, error) {
	home, err := keystore.DefaultDir(getenv)
	if err != nil {
		return nil, withHint(err, "set ACMEMAIL_HOME to the directory acmemail keeps its keys and certificates in")
	}
	store, err := keystore.OpenExisting(home)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, stateDirError(getenv, err, "read")
	}
	return store, nil
}
