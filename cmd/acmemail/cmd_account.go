package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/cmd/internal/secret"
	"github.com/acmemail/acmemail/keystore"
)

// eabFlags name an external account binding credential (RFC 8555 §7.3.4).
// The key identifier is not secret; the HMAC key is, so it never comes
// from a flag value: ACMEMAIL_EAB_HMAC, the file of --eab-hmac-file, or a
// prompt.
type eabFlags struct {
	kid      string
	hmacFile string
}

func (e *eabFlags) addFlags(f *pflag.FlagSet) {
	f.StringVar(&e.kid, "eab-kid", "", "external account binding key identifier, for CAs that require one (the HMAC key comes from ACMEMAIL_EAB_HMAC or --eab-hmac-file)")
	f.StringVar(&e.hmacFile, "eab-hmac-file", "", "read the external account binding HMAC key (base64url) from the first line of this file")
}

// load returns the EAB credential, or nil when none was asked for.
func (e *eabFlags) load(g *globals) (*acmemail.EAB, error) {
	if e.kid == "" {
		if e.hmacFile != "" {
			return nil, withHint(usageErrorf("--eab-hmac-file needs --eab-kid"), "the CA gives you a key identifier together with the HMAC key")
		}
		return nil, nil
	}
	s, err := g.secretSources().Get(secret.Spec{What: "EAB HMAC key for " + e.kid, EnvVar: "ACMEMAIL_EAB_HMAC", File: e.hmacFile, Flag: "eab-hmac-file"})
	if err != nil {
		return nil, err
	}
	key, err := acmemail.ParseEABKey(s)
	if err != nil {
		return nil, usageErrorf("--eab-kid %s: %w", e.kid, err)
	}
	return &acmemail.EAB{KeyID: e.kid, HMACKey: key}, nil
}

// eabRequiredError adds what to do to an ErrEABRequired.
func eabRequiredError(err error) error {
	if !errors.Is(err, acmemail.ErrEABRequired) {
		return err
	}
	return withHint(&usageError{Err: err},
		"get a key identifier and an HMAC key from the CA (its web site or your account manager)",
		"then pass --eab-kid KID and the HMAC key in ACMEMAIL_EAB_HMAC or a file named by --eab-hmac-file")
}

// askTerms is the terms-of-service gate before a new account: agreed by
// --agree-tos, or by the user on the terminal; without a terminal it is a
// usage error that says what to do.
func askTerms(g *globals, tos string, agreed bool) error {
	if tos == "" || agreed {
		return nil
	}
	ok, err := g.confirm(fmt.Sprintf("acmemail: the CA's terms of service are at %s\nacmemail: do you agree to them? [y/N] ", tos), "y", "yes")
	if errors.Is(err, secret.ErrNoTTY) {
		return withHint(usageErrorf("the CA asks you to agree to its terms of service (%s) before creating an account", tos),
			"read them, then run again with --agree-tos")
	}
	if err != nil {
		return err
	}
	if !ok {
		return usageErrorf("you did not agree to the CA's terms of service (%s); no account was created", tos)
	}
	return nil
}

// openTTY opens the controlling terminal for questions; tests replace it.
var openTTY = func() (*os.File, error) { return os.OpenFile("/dev/tty", os.O_RDWR, 0) }

// confirm asks a question on the terminal and reports whether the answer
// is one of yes (case-insensitive). Without a terminal it returns
// secret.ErrNoTTY.
func (g *globals) confirm(question string, yes ...string) (bool, error) {
	tty, err := openTTY()
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return false, secret.ErrNoTTY
	}
	defer tty.Close()
	fmt.Fprint(tty, question)
	line, err := bufio.NewReader(tty).ReadString('\n')
	if err != nil && line == "" {
		return false, fmt.Errorf("read from the terminal: %w", err)
	}
	answer := strings.TrimSpace(line)
	for _, y := range yes {
		if strings.EqualFold(answer, y) {
			return true, nil
		}
	}
	return false, nil
}

// accountOptions are the flags every account subcommand shares.
type accountOptions struct {
	server string
	json   bool
}

func (o *accountOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.server, "server", "castle", "ACME directory URL, or a name: castle, castle-staging")
	f.BoolVar(&o.json, "json", false, "print the result as JSON on stdout")
}

// open resolves --server (the in-process sandbox ends with the command,
// so an account there is of no use) and the state directory.
func (o *accountOptions) open(g *globals) (*issuer.Accounts, error) {
	dirURL, err := issuer.AccountDirectory(o.server)
	if se := (*issuer.SettingError)(nil); errors.As(err, &se) {
		// --server sandbox: ..., --server "x" is neither ...
		var hints []string
		if he := (*hintError)(nil); errors.As(err, &he) {
			hints = he.Hints
		}
		if errors.Is(err, issuer.ErrSandboxAccount) {
			hints = append(hints, "run 'acmemail sandbox' in another terminal and pass its directory URL to --server")
		}
		err = usageErrorf("--server %w", se.Err)
		if len(hints) > 0 {
			err = withHint(err, hints...)
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	store, err := openState(g.getenv)
	if err != nil {
		return nil, err
	}
	return &issuer.Accounts{
		Store: store, Directory: dirURL, CARoots: g.getenv("ACMEMAIL_CA_ROOTS"),
		UserAgent: "acmemail/" + versionString(), Logger: g.logger(), Progress: newProgress(g.stderr),
	}, nil
}

// accountError adds to an error of the account commands what to do next.
func (o *accountOptions) accountError(err error) error {
	switch {
	case errors.As(err, new(*issuer.NoAccountError)):
		err = withHint(err, "create one with: acmemail account register --server "+o.server)
	case errors.As(err, new(*issuer.PendingRolloverError)):
		err = withHint(err, "finish it with: acmemail account rollover --server "+o.server)
	}
	return cliError(err)
}

// accountResult is the --json form of an account.
type accountResult struct {
	CA              string    `json:"ca"`
	URL             string    `json:"url"`
	Status          string    `json:"status,omitempty"`
	Contact         []string  `json:"contact"`
	KeyType         string    `json:"key_type"`
	KeyThumbprint   string    `json:"key_thumbprint"`
	KeyPath         string    `json:"key_path"`
	Created         time.Time `json:"created"`
	CreatedNow      bool      `json:"created_now,omitempty"`
	ArchivedKey     string    `json:"archived_key,omitempty"`
	ArchivedTo      string    `json:"archived_to,omitempty"`
	PendingRollover bool      `json:"pending_rollover,omitempty"`
}

// printAccount prints a as text or (asJSON) as an accountResult.
func printAccount(g *globals, a *issuer.Account, asJSON bool) error {
	contact := a.Contact
	if contact == nil {
		contact = []string{}
	}
	r := accountResult{CA: a.Directory, URL: a.URL, Status: a.Status, Contact: contact, KeyType: string(a.KeyType),
		KeyThumbprint: a.Thumbprint, KeyPath: a.KeyPath, Created: issuer.UTCSeconds(a.Created), CreatedNow: a.Registered,
		ArchivedKey: a.ArchivedKey, ArchivedTo: a.ArchivedTo, PendingRollover: a.PendingRollover}
	if asJSON {
		return json.NewEncoder(g.stdout).Encode(r)
	}
	w := g.stdout
	fmt.Fprintf(w, "ca          %s\nurl         %s\n", r.CA, r.URL)
	if r.Status != "" {
		fmt.Fprintf(w, "status      %s\n", r.Status)
	}
	fmt.Fprintf(w, "contact     %s\nkey         %s %s\nthumbprint  %s\ncreated     %s\n",
		strings.Join(r.Contact, ", "), r.KeyType, r.KeyPath, r.KeyThumbprint, r.Created.Format(time.RFC3339))
	if r.ArchivedKey != "" {
		fmt.Fprintf(w, "old key     %s\n", r.ArchivedKey)
	}
	if r.ArchivedTo != "" {
		fmt.Fprintf(w, "archived    %s\n", r.ArchivedTo)
	}
	return nil
}

const accountLong = `Manage the ACME account acmemail uses at a CA: one per directory URL, kept in
the state directory as accounts/<CA>/account.key and account.json. obtain creates
one when needed; these commands create it explicitly (with an external account
binding for CAs that require one), show it, replace its key, or deactivate it.`

func newAccountCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "account",
		Short: "Register, show, re-key or deactivate the ACME account",
		Long:  accountLong,
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newAccountRegisterCmd(g), newAccountShowCmd(g), newAccountRolloverCmd(g), newAccountDeactivateCmd(g))
	return cmd
}

type registerOptions struct {
	accountOptions
	contact  []string
	agreeTOS bool
	eab      eabFlags
}

const registerLong = `Create the ACME account at the CA, or find the existing one for the saved key.

The CA's terms of service must be agreed to: with --agree-tos, or by answering the
question on the terminal. CAs whose directory says externalAccountRequired (EAB)
need the key identifier and HMAC key they handed out: --eab-kid KID, and the HMAC
key from ACMEMAIL_EAB_HMAC or the file named by --eab-hmac-file (never a flag
value, which would show in ps). For an existing account, --contact replaces its
contact addresses.`

const registerExample = `  acmemail account register --server castle --contact alice@example.com --agree-tos

  # A CA that requires external account binding:
  acmemail account register --server https://ca.example/acme/directory \
      --eab-kid kid-123 --eab-hmac-file ~/.config/acmemail/eab.hmac --agree-tos`

func newAccountRegisterCmd(g *globals) *cobra.Command {
	var o registerOptions
	cmd := &cobra.Command{
		Use:     "register",
		Short:   "Create the ACME account (terms of service, EAB)",
		Long:    registerLong,
		Example: registerExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAccountRegister(cmd.Context(), g, &o, cmd.Flags().Changed("contact"))
		},
	}
	f := cmd.Flags()
	o.accountOptions.addFlags(f)
	f.StringSliceVar(&o.contact, "contact", nil, "contact address for the account (repeatable)")
	f.BoolVar(&o.agreeTOS, "agree-tos", false, "agree to the CA's terms of service")
	o.eab.addFlags(f)
	return cmd
}

func runAccountRegister(ctx context.Context, g *globals, o *registerOptions, contactGiven bool) error {
	accts, err := o.open(g)
	if err != nil {
		return err
	}
	a, err := accts.Register(ctx, issuer.Registration{
		Contact: o.contact, UpdateContact: contactGiven,
		Terms: func(ctx context.Context, url string) error { return askTerms(g, url, o.agreeTOS) },
		EAB:   func() (*acmemail.EAB, error) { return o.eab.load(g) },
	})
	if err != nil {
		return o.accountError(err)
	}
	return printAccount(g, a, o.json)
}

type showOptions struct {
	accountOptions
	offline bool
}

func newAccountShowCmd(g *globals) *cobra.Command {
	var o showOptions
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the saved account and what the CA says about it",
		Long: `Show the saved ACME account for --server: its URL, contact, key and, unless
--offline, its status at the CA (looked up with the saved key, without creating
an account).`,
		Example: `  acmemail account show --server castle --json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAccountShow(cmd.Context(), g, &o)
		},
	}
	o.accountOptions.addFlags(cmd.Flags())
	cmd.Flags().BoolVar(&o.offline, "offline", false, "show only what is saved; do not ask the CA")
	return cmd
}

func runAccountShow(ctx context.Context, g *globals, o *showOptions) error {
	accts, err := o.open(g)
	if err != nil {
		return err
	}
	a, err := accts.Show(ctx, o.offline)
	if err != nil {
		return o.accountError(err)
	}
	if a.PendingRollover {
		accts.Progress.Printf("warning: an account key rollover was interrupted; finish it with: acmemail account rollover --server %s", o.server)
	}
	return printAccount(g, a, o.json)
}

type rolloverOptions struct {
	accountOptions
	keyType string
}

const rolloverLong = `Replace the account key (RFC 8555 key change). The new key is written to
accounts/<CA>/account.key.next before the CA is asked; once the CA accepted it,
the old key is moved to accounts/<CA>/archive/<time>/account.key (never deleted)
and the new one becomes account.key. An interrupted rollover is finished by the
next run: it asks the CA which key is current.`

func newAccountRolloverCmd(g *globals) *cobra.Command {
	var o rolloverOptions
	cmd := &cobra.Command{
		Use:     "rollover",
		Short:   "Replace the account key at the CA (key change)",
		Long:    rolloverLong,
		Example: `  acmemail account rollover --server castle`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAccountRollover(cmd.Context(), g, &o)
		},
	}
	o.accountOptions.addFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.keyType, "account-key-type", "p256", "type of the new account key: p256, p384, rsa2048, rsa3072, rsa4096")
	return cmd
}

func runAccountRollover(ctx context.Context, g *globals, o *rolloverOptions) error {
	kt, err := keystore.ParseKeyType(o.keyType)
	if err != nil || kt == keystore.KeyEd25519 {
		return usageErrorf("--account-key-type %q: choose p256, p384, rsa2048, rsa3072 or rsa4096", o.keyType)
	}
	accts, err := o.open(g)
	if err != nil {
		return err
	}
	a, err := accts.Rollover(ctx, kt)
	if err != nil {
		return o.accountError(err)
	}
	return printAccount(g, a, o.json)
}

type deactivateOptions struct {
	accountOptions
	yes bool
}

const deactivateLong = `Deactivate the account at the CA (RFC 8555 §7.3.6). The CA then refuses every
request signed by its key; this cannot be undone. Certificates already issued stay
valid. The saved account is moved to accounts/<CA>/archive/<time>/, so the next
obtain or register creates a new account.

Asks for confirmation on the terminal unless --yes is given.`

func newAccountDeactivateCmd(g *globals) *cobra.Command {
	var o deactivateOptions
	cmd := &cobra.Command{
		Use:     "deactivate",
		Short:   "Deactivate the ACME account (cannot be undone)",
		Long:    deactivateLong,
		Example: `  acmemail account deactivate --server castle --yes`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAccountDeactivate(cmd.Context(), g, &o)
		},
	}
	o.accountOptions.addFlags(cmd.Flags())
	cmd.Flags().BoolVar(&o.yes, "yes", false, "do not ask for confirmation")
	return cmd
}

func runAccountDeactivate(ctx context.Context, g *globals, o *deactivateOptions) error {
	accts, err := o.open(g)
	if err != nil {
		return err
	}
	a, err := accts.Deactivate(ctx, func(url string) error {
		if o.yes {
			return nil
		}
		ok, err := g.confirm(fmt.Sprintf("acmemail: deactivate the account %s at %s? This cannot be undone. Type \"yes\": ", url, accts.Directory), "yes")
		if errors.Is(err, secret.ErrNoTTY) {
			return withHint(usageErrorf("deactivating the account needs confirmation and there is no terminal to ask on"), "run again with --yes")
		}
		if err != nil {
			return err
		}
		if !ok {
			return usageErrorf("not confirmed; the account is unchanged")
		}
		return nil
	})
	if err != nil {
		return o.accountError(err)
	}
	return printAccount(g, a, o.json)
}
