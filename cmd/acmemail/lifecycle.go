package main

import (
	"github.com/spf13/pflag"
)

// lifecycleFlags are the flags obtain and renew share: the identity lock
// and the deploy hook.
type lifecycleFlags struct {
	waitLock   bool
	deployHook string
}

func (l *lifecycleFlags) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&l.waitLock, "wait-lock", false, "if another acmemail run is working on the same address, wait for it (default: exit with status 8)")
	f.StringVar(&l.deployHook, "deploy-hook", "", "shell command run (sh -c; cmd.exe /c on Windows) after each issuance or renewal (once per certificate of a --split pair), with ACMEMAIL_EMAIL, ACMEMAIL_CERT_USAGE, ACMEMAIL_P12_PATH, ACMEMAIL_CERT_PATH, ACMEMAIL_CHAIN_PATH, ACMEMAIL_KEY_PATH, ACMEMAIL_NOT_AFTER, ACMEMAIL_SERIAL set")
}
