// Package forgetcmd is the "acmemail forget" command: it stops managing an
// address, keeping its keys (acmemail/issuer.Forget does the work; package
// main gives it the state directory, the terminal and export).
package forgetcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/cmd/internal/secret"
	"github.com/acmemail/acmemail/cmd/internal/termout"
	"github.com/acmemail/acmemail/keystore"
)

// Env is what the command needs from package main.
type Env struct {
	Stdout, Stderr io.Writer
	// Store opens the state directory; nil when there is none yet.
	Store func() (*keystore.Store, error)
	// Confirm asks question on the terminal and reports whether the
	// answer is one of yes; secret.ErrNoTTY without a terminal.
	Confirm func(question string, yes ...string) (bool, error)
	// Export writes every key of email with its certificate (export
	// --all-history) as one PKCS#12 file, never overwriting one.
	Export func(ctx context.Context, email, file, p12PasswordFile string) error
}

const long = `Stop managing EMAIL: after it, acmemail list does not show it, acmemail renew does
not renew it, and acmemail obtain EMAIL starts afresh (a new key, a new order; the
ACME account, shared by the addresses at a CA, stays). For addresses you no longer
have, or to start over after a failed run.

No key is deleted: S/MIME keys are needed to read mail that was encrypted to their
certificates. Everything the state directory keeps for EMAIL (its certificate and key,
earlier keys and certificates from archive/, the encryption certificate of an obtain
--split pair, the other addresses of its certificate (obtain --also), a pending key
and order of a failed or interrupted run, lock files, the mail servers found for it)
is moved, in one rename, to forgotten/EMAIL-YYYYMMDDTHHMMSSZ/ in the state directory
(0700; keys stay 0600), and that path is printed on stdout. To manage it again, move
that directory back to certificates/EMAIL. With --export FILE, every key with its
certificate is first written to FILE as one PKCS#12 file (as acmemail export
--all-history writes it; the password from ACMEMAIL_P12_PASSWORD,
--p12-password-file or the terminal): if that fails, nothing is forgotten.

It asks on the terminal before it changes anything (answer y); without a terminal it
needs --yes. It takes EMAIL's lock, like obtain and renew: while another run works on
EMAIL it exits 8 and changes nothing. Lock files left by a failed run do not count:
the kernel releases the lock when a run ends. An address that is only one more
address (--also) of another certificate is forgotten with that one.

--json prints {"email","state","serial","also","split","archived","keys",
"mail_servers","exported"}: state is what list showed (valid, expired, revoked,
pending or broken), keys the private key files kept, relative to archived.`

const example = `  # Asks first, then prints where the files went:
  acmemail forget alice@example.com

  # In a script: no question; the whole key history to a PKCS#12 file first:
  acmemail forget --yes --export alice-keys.p12 alice@example.com`

type options struct {
	yes, json       bool
	export          string
	p12PasswordFile string
}

// New is the forget command.
func New(env Env) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:     "forget EMAIL",
		Short:   "Stop managing EMAIL, keeping its keys",
		Long:    long,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd.Context(), env, &o, args[0])
		},
		ValidArgsFunction: func(_ *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return complete(env, args, prefix), cobra.ShellCompDirectiveNoFileComp
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.yes, "yes", false, "do not ask for confirmation (needed without a terminal)")
	f.BoolVar(&o.json, "json", false, "print the result as JSON on stdout")
	f.StringVar(&o.export, "export", "", "first write every key with its certificate to this PKCS#12 file (never overwritten)")
	f.StringVar(&o.p12PasswordFile, "p12-password-file", "", "with --export: read the PKCS#12 password from the first line of this file")
	return cmd
}

func run(ctx context.Context, env Env, o *options, arg string) error {
	email, err := acmemail.NormalizeAddress(arg)
	if err != nil {
		return issuer.Usagef("%q is not a mail address (want local@domain): %v", arg, err)
	}
	if o.p12PasswordFile != "" && o.export == "" {
		return issuer.Usagef("--p12-password-file needs --export")
	}
	store, err := env.Store()
	if err != nil {
		return err
	}
	if store == nil {
		return notManaged(email)
	}
	res, err := issuer.Forget(ctx, store, email, issuer.ForgetOptions{Before: func(st issuer.Status) error {
		return before(ctx, env, o, st)
	}})
	var ae *issuer.AlsoAddressError
	switch {
	case errors.As(err, &ae):
		return issuer.WithHint(err, "it is one more address of the certificate of "+ae.Primary+" (obtained with --also): forget "+ae.Primary+", or obtain "+ae.Primary+" again without it")
	case errors.Is(err, issuer.ErrNotManaged):
		return notManaged(email)
	case err != nil && res == nil:
		return err
	}
	if o.export != "" {
		res.Exported, _ = filepath.Abs(o.export)
	}
	if res.Archived != "" {
		keys := fmt.Sprintf("%d private keys", len(res.Keys))
		if len(res.Keys) == 1 {
			keys = "1 private key"
		}
		fmt.Fprintf(env.Stderr, "acmemail: forgot %s; its files, %s included, are kept in %s (move it back to certificates/%s to manage it again)\n",
			email, keys, res.Archived, email)
	}
	if err != nil {
		return err
	}
	if o.json {
		return json.NewEncoder(env.Stdout).Encode(res)
	}
	_, err = fmt.Fprintln(env.Stdout, res.Archived)
	return err
}

// before asks for confirmation and writes --export, under the lock.
func before(ctx context.Context, env Env, o *options, st issuer.Status) error {
	if o.export != "" && (st.State == issuer.StatePending || st.State == issuer.StateBroken) {
		return issuer.WithHint(issuer.Usagef("--export: %s is %s, there is no certificate to export", st.Email, st.State),
			"forget it without --export: its keys are kept in the state directory's forgotten/")
	}
	if !o.yes {
		what := st.State + " certificate " + st.Serial
		if st.State == issuer.StatePending || st.State == issuer.StateBroken {
			what = st.State + ": " + st.Reason
		}
		q := fmt.Sprintf("acmemail: forget %s (%s)? Its files, keys included, move to the state directory's forgotten/ and acmemail stops managing it. [y/N] ",
			st.Email, termout.EscapeLines(strings.TrimSpace(what)))
		ok, err := confirm(ctx, env, q)
		if errors.Is(err, secret.ErrNoTTY) {
			return issuer.WithHint(issuer.Usagef("forget needs confirmation and there is no terminal to ask on; nothing was changed"), "run again with --yes")
		}
		if err != nil {
			return err
		}
		if !ok {
			return issuer.Usagef("not confirmed; nothing was changed")
		}
	}
	if o.export != "" {
		return env.Export(ctx, st.Email, o.export, o.p12PasswordFile)
	}
	return nil
}

// confirm asks q, giving up when ctx ends: the terminal's Ctrl-C is
// caught (the context ends), and the read would wait for a line.
func confirm(ctx context.Context, env Env, q string) (bool, error) {
	type answer struct {
		ok  bool
		err error
	}
	c := make(chan answer, 1)
	go func() {
		ok, err := env.Confirm(q, "y", "yes")
		c <- answer{ok, err}
	}()
	select {
	case a := <-c:
		return a.ok, a.err
	case <-ctx.Done():
		return false, fmt.Errorf("not confirmed: %w; nothing was changed", ctx.Err())
	}
}

// complete offers the addresses forget can forget: every one list shows,
// pending and broken ones too. It creates and changes nothing.
func complete(env Env, args []string, prefix string) []cobra.Completion {
	store, err := env.Store()
	if len(args) > 0 || err != nil || store == nil {
		return nil
	}
	list, _ := store.ListIdentities()
	var out []cobra.Completion
	for _, e := range list {
		if strings.HasPrefix(strings.ToLower(e), strings.ToLower(prefix)) {
			out = append(out, e)
		}
	}
	return out
}

func notManaged(email string) error {
	return issuer.WithHint(fmt.Errorf("%s: %w", email, issuer.ErrNotManaged), "see acmemail list")
}
