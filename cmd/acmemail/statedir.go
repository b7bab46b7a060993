package main

import (
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
		from := "it is $ACMEMAIL_HOME"
		switch {
		case getenv("ACMEMAIL_HOME") != "":
		case getenv("XDG_DATA_HOME") != "":
			from = "it is $XDG_DATA_HOME/acmemail"
		default:
			from = "it is ~/.local/share/acmemail"
		}
		return nil, withHint(err, "the state directory holds acmemail's keys and certificates ("+from+"): make it a directory you can write, or set ACMEMAIL_HOME to one")
	}
	return store, nil
}
