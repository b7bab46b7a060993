package main

import (
	"bufio"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
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
	s, err := g.secret(secretSource{what: "EAB HMAC key for " + e.kid, envVar: "ACMEMAIL_EAB_HMAC", file: e.hmacFile, flag: "eab-hmac-file"})
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
	if errors.Is(err, errNoTTY) {
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
// is one of yes (case-insensitive). Without a terminal it returns errNoTTY.
func (g *globals) confirm(question string, yes ...string) (bool, error) {
	tty, err := openTTY()
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return false, errNoTTY
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

// directory resolves --server for the account commands. The in-process
// sandbox ends with the command, so an account there is of no use.
func (o *accountOptions) directory() (string, error) {
	switch {
	case o.server == "sandbox":
		return "", withHint(usageErrorf("--server sandbox: the in-process sandbox ends with this command, so its accounts cannot be kept"),
			"run 'acmemail sandbox' in another terminal and pass its directory URL to --server")
	case issuer.NamedServers[o.server].URL != "":
		return issuer.NamedServers[o.server].URL, nil
	case strings.HasPrefix(o.server, "https://"):
		return o.server, nil
	case strings.HasPrefix(o.server, "http://"):
		return "", withHint(usageErrorf("--server %s: ACME needs HTTPS", o.server), "use the https:// URL of the directory")
	}
	return "", usageErrorf("--server %q is neither a directory URL nor a known name (castle, castle-staging)", o.server)
}

// accountEnv is what an account subcommand works with.
type accountEnv struct {
	dirURL string
	store  *keystore.Store
	prog   *progress
}

func (o *accountOptions) open(g *globals) (*accountEnv, error) {
	dirURL, err := o.directory()
	if err != nil {
		return nil, err
	}
	store, err := openState(g.getenv)
	if err != nil {
		return nil, err
	}
	return &accountEnv{dirURL: dirURL, store: store, prog: newProgress(g.stderr)}, nil
}

func (e *accountEnv) client(g *globals, key crypto.Signer, url string) (*acmemail.Client, error) {
	pool, err := g.rootPool()
	if err != nil {
		return nil, err
	}
	return &acmemail.Client{
		DirectoryURL: e.dirURL,
		HTTPClient:   httpClient(pool),
		UserAgent:    "acmemail/" + versionString(),
		AccountKey:   key,
		AccountURL:   url,
		Logger:       g.logger().With("component", "acme"),
	}, nil
}

// registered loads the saved account, with a hint when there is none.
func (e *accountEnv) registered(server string) (*keystore.Account, error) {
	a, err := e.store.LoadAccount(e.dirURL)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, withHint(fmt.Errorf("no ACME account for %s is saved here", e.dirURL),
			"create one with: acmemail account register --server "+server)
	}
	return a, err
}

// pendingRolloverError stops commands that would sign with a key the CA
// may no longer accept.
func pendingRolloverError(store *keystore.Store, dirURL, server string) error {
	if _, err := store.PendingAccountKey(dirURL); err == nil {
		return withHint(fmt.Errorf("an account key rollover for %s was interrupted; the CA may know only the new key", dirURL),
			"finish it with: acmemail account rollover --server "+server)
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return err
	}
	return nil
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

func (e *accountEnv) result(ctx context.Context, c *acmemail.Client, a *keystore.Account) accountResult {
	kt, _ := keystore.KeyTypeOf(a.Key.Public())
	thumb, _ := c.Thumbprint(ctx)
	dir, _ := e.store.AccountDir(e.dirURL)
	contact := a.Contact
	if contact == nil {
		contact = []string{}
	}
	return accountResult{CA: e.dirURL, URL: a.URL, Contact: contact, KeyType: string(kt), KeyThumbprint: thumb,
		KeyPath: filepath.Join(dir, "account.key"), Created: a.Created.UTC()}
}

func printAccount(g *globals, r accountResult, asJSON bool) error {
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
	e, err := o.open(g)
	if err != nil {
		return err
	}
	if err := pendingRolloverError(e.store, e.dirURL, o.server); err != nil {
		return err
	}
	contact := issuer.MailtoContacts(o.contact)
	if a, err := e.store.LoadAccount(e.dirURL); err == nil {
		// Already registered: check it with the CA, update the contact.
		c, err := e.client(g, a.Key, a.URL)
		if err != nil {
			return err
		}
		info, err := c.FindAccount(ctx)
		if err != nil {
			return err
		}
		if contactGiven {
			if info, err = c.UpdateContact(ctx, contact); err != nil {
				return err
			}
			a.Contact = contact
			if err := e.store.SaveAccount(a); err != nil {
				return err
			}
			e.prog.printf("updated the contact of %s", a.URL)
		} else {
			e.prog.printf("already registered at %s as %s", e.dirURL, a.URL)
		}
		r := e.result(ctx, c, a)
		r.Status = info.Status
		return printAccount(g, r, o.json)
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return err
	}
	eab, err := o.eab.load(g)
	if err != nil {
		return err
	}
	key, err := e.store.AccountKey(e.dirURL)
	if err != nil {
		return err
	}
	var a *keystore.Account
	c, err := e.client(g, key, "")
	if err != nil {
		return err
	}
	c.Contact, c.EAB = contact, eab
	c.OnAccount = func(u string) error {
		a = &keystore.Account{Directory: e.dirURL, URL: u, Contact: contact, Key: key, Created: time.Now()}
		return e.store.SaveAccount(a)
	}
	dir, err := c.Directory(ctx)
	if err != nil {
		return err
	}
	tos := ""
	if dir.Meta != nil {
		tos = dir.Meta.TermsOfService
	}
	if err := askTerms(g, tos, o.agreeTOS); err != nil {
		return err
	}
	if _, err := c.EnsureAccount(ctx); err != nil {
		return eabRequiredError(err)
	}
	info, err := c.FindAccount(ctx)
	if err != nil {
		return err
	}
	e.prog.printf("registered the account %s at %s", a.URL, e.dirURL)
	r := e.result(ctx, c, a)
	r.Status, r.CreatedNow = info.Status, true
	return printAccount(g, r, o.json)
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
	e, err := o.open(g)
	if err != nil {
		return err
	}
	a, err := e.registered(o.server)
	if err != nil {
		return err
	}
	c, err := e.client(g, a.Key, a.URL)
	if err != nil {
		return err
	}
	r := e.result(ctx, c, a)
	if _, err := e.store.PendingAccountKey(e.dirURL); err == nil {
		r.PendingRollover = true
		e.prog.printf("warning: an account key rollover was interrupted; finish it with: acmemail account rollover --server %s", o.server)
	}
	if !o.offline && !r.PendingRollover {
		info, err := c.FindAccount(ctx)
		if err != nil {
			return err
		}
		if info.URL != a.URL {
			return fmt.Errorf("the CA says the saved key belongs to %s, not to the saved account %s", info.URL, a.URL)
		}
		r.Status = info.Status
		r.Contact = info.Contact // the CA's view is the current one
		if r.Contact == nil {
			r.Contact = []string{}
		}
	}
	return printAccount(g, r, o.json)
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
	e, err := o.open(g)
	if err != nil {
		return err
	}
	a, err := e.registered(o.server)
	if err != nil {
		return err
	}
	newKey, resumed, err := e.store.NextAccountKey(e.dirURL, kt)
	if err != nil {
		return err
	}
	done := false
	if resumed {
		// Did the interrupted rollover reach the CA? Ask with the new key.
		probe, err := e.client(g, newKey, "")
		if err != nil {
			return err
		}
		info, err := probe.FindAccount(ctx)
		var pe *acmemail.ProblemError
		switch {
		case err == nil && info.URL == a.URL:
			e.prog.printf("the CA already has the new key from an interrupted rollover; finishing it")
			done = true
		case err == nil:
			return fmt.Errorf("the pending new key belongs to another account (%s) at the CA; not using it", info.URL)
		case errors.As(err, &pe) && pe.ShortType() == "accountDoesNotExist":
			e.prog.printf("resuming an interrupted rollover with its new key")
		default:
			return err
		}
	}
	if !done {
		c, err := e.client(g, a.Key, a.URL)
		if err != nil {
			return err
		}
		if err := c.RolloverKey(ctx, newKey); err != nil {
			var pe *acmemail.ProblemError
			if errors.As(err, &pe) {
				// The CA refused: the old key stays; keep the new one in the archive.
				if _, aerr := e.store.AbandonAccountKey(e.dirURL); aerr != nil {
					return errors.Join(err, aerr)
				}
				return err
			}
			return withHint(err, "the outcome is unknown; run the same command again to finish the rollover")
		}
	}
	archived, err := e.store.CommitAccountKey(e.dirURL)
	if err != nil {
		return withHint(err, "the CA has the new key, which is in account.key.next; run the same command again to finish")
	}
	a.Key = newKey
	c, err := e.client(g, newKey, a.URL)
	if err != nil {
		return err
	}
	info, err := c.FindAccount(ctx)
	if err != nil {
		return fmt.Errorf("the key was changed, but the CA does not find the account with the new key: %w", err)
	}
	e.prog.printf("replaced the key of %s; the old key is archived at %s", a.URL, archived)
	r := e.result(ctx, c, a)
	r.Status, r.ArchivedKey = info.Status, archived
	return printAccount(g, r, o.json)
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
	e, err := o.open(g)
	if err != nil {
		return err
	}
	a, err := e.registered(o.server)
	if err != nil {
		return err
	}
	if err := pendingRolloverError(e.store, e.dirURL, o.server); err != nil {
		return err
	}
	if !o.yes {
		ok, err := g.confirm(fmt.Sprintf("acmemail: deactivate the account %s at %s? This cannot be undone. Type \"yes\": ", a.URL, e.dirURL), "yes")
		if errors.Is(err, errNoTTY) {
			return withHint(usageErrorf("deactivating the account needs confirmation and there is no terminal to ask on"), "run again with --yes")
		}
		if err != nil {
			return err
		}
		if !ok {
			return usageErrorf("not confirmed; the account is unchanged")
		}
	}
	c, err := e.client(g, a.Key, a.URL)
	if err != nil {
		return err
	}
	info, err := c.Deactivate(ctx)
	if err != nil {
		return err
	}
	r := e.result(ctx, c, a)
	arch, err := e.store.RetireAccount(e.dirURL)
	if err != nil {
		return withHint(fmt.Errorf("the account is deactivated at the CA, but moving it to the archive failed: %w", err),
			"move accounts/<CA>/account.json away by hand before the next obtain")
	}
	e.prog.printf("deactivated the account %s; its key and record are archived at %s", a.URL, arch)
	r.Status, r.ArchivedTo = info.Status, arch
	return printAccount(g, r, o.json)
}
