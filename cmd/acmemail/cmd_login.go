package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/cmd/internal/secret"
)

type loginOptions struct {
	smtp            bool
	remove          bool
	passwordFile    string
	passwordCommand string
}

const loginLong = `Store the mail password for EMAIL in the OS keyring (Secret Service on Linux and
the BSDs, Keychain on macOS, Credential Manager on Windows), so that obtain, renew
and doctor find it without a prompt, also under cron.

The password is asked twice on the terminal, or read from --password-command,
--password-file or ACMEMAIL_PASSWORD (for scripts). With --smtp it is stored as the
separate password of the submission server. The entry's service is "acmemail" and
its account EMAIL (smtp:EMAIL with --smtp). --delete removes the entry. login does
not contact the mail server; 'acmemail doctor EMAIL' then checks that the stored
password logs in.

acmemail stores nothing itself: without a working keyring (none running, locked, or
not answering within 10 s) login fails and says so; use --password-command with your
password manager instead. Every keyring call has that timeout, so a run from cron
never hangs on one.`

const loginExample = `  acmemail login alice@example.com
  acmemail login --smtp alice@example.com
  pass show mail/alice | acmemail login --password-file /dev/stdin alice@example.com
  acmemail login --delete alice@example.com`

func newLoginCmd(g *globals) *cobra.Command {
	var o loginOptions
	cmd := &cobra.Command{
		Use:     "login EMAIL",
		Short:   "Store the mail password for EMAIL in the OS keyring",
		Long:    loginLong,
		Example: loginExample,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLogin(cmd.Context(), g, &o, args[0])
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.smtp, "smtp", false, "store the separate password of the submission (SMTP) server")
	f.BoolVar(&o.remove, "delete", false, "remove the stored password")
	f.StringVar(&o.passwordFile, "password-file", "", "read the password from the first line of this file instead of asking")
	f.StringVar(&o.passwordCommand, "password-command", "", "run this shell command and store the first line it prints")
	return cmd
}

func runLogin(ctx context.Context, g *globals, o *loginOptions, email string) error {
	email, err := checkEmail(email)
	if err != nil {
		return err
	}
	what := "mail password for " + email
	if o.smtp {
		what = "submission (SMTP) password for " + email
	}
	kr := secret.OpenKeyring()
	account := secret.KeyringUser(email, o.smtp)
	hints := []string{"give the password with --password-command CMD (your password manager), --password-file FILE or ACMEMAIL_PASSWORD when you run obtain"}
	if o.remove {
		err := kr.Delete(secret.KeyringService, account)
		switch {
		case errors.Is(err, secret.ErrKeyringNotFound):
			return fmt.Errorf("the OS keyring holds no %s", what)
		case err != nil:
			return withHint(fmt.Errorf("remove the %s: %w", what, err), hints...)
		}
		fmt.Fprintf(g.stderr, "acmemail: removed the %s from the OS keyring\n", what)
		return nil
	}
	if o.passwordCommand != "" && o.passwordFile != "" {
		return usageErrorf("--password-command and --password-file both give the password; use one")
	}
	// Find out whether there is a keyring before asking for anything.
	if _, err := kr.Get(secret.KeyringService, account); err != nil && !errors.Is(err, secret.ErrKeyringNotFound) {
		return withHint(fmt.Errorf("cannot store the %s: %w", what, err), hints...)
	}
	var pw string
	switch {
	case o.passwordCommand != "":
		pw, err = g.secretSources().Command(ctx, o.passwordCommand, "password-command", what, email, email)
	case o.passwordFile != "":
		pw, err = secret.ReadFile(o.passwordFile)
		if err != nil {
			err = usageErrorf("read the %s from --password-file: %w", what, err)
		}
	case g.getenv("ACMEMAIL_PASSWORD") != "":
		pw = g.getenv("ACMEMAIL_PASSWORD")
	default:
		pw, err = secret.Prompt(what, true)
		if errors.Is(err, secret.ErrNoTTY) {
			err = usageErrorf("no terminal to ask for the %s on: give --password-command, --password-file or ACMEMAIL_PASSWORD", what)
		}
	}
	if err != nil {
		return err
	}
	if err := kr.Set(secret.KeyringService, account, pw); err != nil {
		return withHint(fmt.Errorf("store the %s: %w", what, err), hints...)
	}
	// Read it back: a keyring that accepts and forgets must not look like
	// success.
	back, err := kr.Get(secret.KeyringService, account)
	if err != nil || back != pw {
		if err == nil {
			err = errors.New("it returned something else")
		}
		return withHint(fmt.Errorf("the OS keyring did not keep the %s: %w", what, err), hints...)
	}
	fmt.Fprintf(g.stderr, "acmemail: stored the %s in the OS keyring (service %q, account %q)\n", what, secret.KeyringService, account)
	return nil
}
