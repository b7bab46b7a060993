package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// certInfo is what list and show tell about a managed certificate.
type certInfo struct {
	Email            string     `json:"email"`
	Serial           string     `json:"serial"`
	NotBefore        time.Time  `json:"not_before"`
	NotAfter         time.Time  `json:"not_after"`
	KeyType          string     `json:"key_type"`
	Usage            string     `json:"usage"`
	CA               string     `json:"ca"`
	Server           string     `json:"server,omitempty"`
	RenewalDue       time.Time  `json:"renewal_due"`
	RenewalBasis     string     `json:"renewal_basis"` // "ari" (the CA's window) or "lifetime"
	RenewalWindow    *[2]string `json:"renewal_window,omitempty"`
	Expired          bool       `json:"expired"`
	Revoked          bool       `json:"revoked"`
	RevocationReason string     `json:"revocation_reason,omitempty"`
	PendingOrder     string     `json:"pending_order,omitempty"`
	Files            certFiles  `json:"files"`
	Also             []string   `json:"also,omitempty"`       // the certificate's other addresses (obtain --also)
	Encryption       *certInfo  `json:"encryption,omitempty"` // the encryption certificate of an obtain --split pair
}

type certFiles struct {
	Dir         string `json:"dir"`
	PKCS12      string `json:"pkcs12,omitempty"`
	Certificate string `json:"certificate"`
	Chain       string `json:"chain"`
	Key         string `json:"key"`
	Meta        string `json:"meta"`
}

func openStateStore(g *globals) (*keystore.Store, error) {
	home, err := keystore.DefaultDir(g.getenv)
	if err != nil {
		return nil, err
	}
	return keystore.Open(home)
}

func describeCert(store *keystore.Store, email string, now time.Time) (certInfo, error) {
	_, chain, meta, paths, err := store.LoadCertificate(email)
	if err != nil {
		return certInfo{}, err
	}
	leaf := chain[0]
	st := loadRenewalState(store, email, meta.Serial)
	due, _ := st.renewAt(leaf)
	ci := certInfo{
		Email: meta.Email, Serial: meta.Serial, NotBefore: meta.NotBefore.UTC(), NotAfter: meta.NotAfter.UTC(),
		KeyType: string(meta.KeyType), Usage: meta.Usage, CA: meta.Directory, RenewalDue: due.UTC(), RenewalBasis: "lifetime",
		Expired: !now.Before(leaf.NotAfter), Revoked: st.Revoked != nil, RevocationReason: st.RevocationReason,
		Files: certFiles{Dir: paths.Dir, Certificate: paths.Leaf, Chain: paths.Chain, Key: paths.Key, Meta: paths.Meta},
	}
	if meta.Settings != nil {
		ci.Server = meta.Settings.Server
	}
	if meta.Also != "" {
		ci.Also = strings.Split(meta.Also, ",")
	}
	if enc, err := store.Slot(encryptSlot); err == nil {
		if e, err := describeCert(enc, email, now); err == nil {
			ci.Encryption = &e
		}
	}
	if st.Window != nil && !st.Chosen.IsZero() {
		ci.RenewalBasis = "ari"
		ci.RenewalWindow = &[2]string{st.Window.Start.UTC().Format(time.RFC3339), st.Window.End.UTC().Format(time.RFC3339)}
	}
	if _, err := os.Stat(paths.PKCS12); err == nil {
		ci.Files.PKCS12 = paths.PKCS12
	}
	if _, err := os.Stat(paths.Leaf); err != nil {
		ci.Files.Certificate = ""
	}
	if data, err := store.ReadOrderState(email); err == nil {
		var pending acmemail.OrderState
		if json.Unmarshal(data, &pending) == nil {
			ci.PendingOrder = pending.OrderURL
		}
	}
	return ci, nil
}

func (c certInfo) state() string {
	switch {
	case c.Revoked:
		return "revoked"
	case c.Expired:
		return "expired"
	}
	return "valid"
}

const listLong = `List the certificates acmemail manages in the state directory, one line each:
address, serial number, expiry, when renew will renew it, key type, usage, state and
CA. It reads only the state directory (no network). --json prints an array with the
same fields as acmemail show --json, file paths included.

` + exitStatusHelp

const showLong = `Show one managed certificate: address, serial number, validity, key type, usage,
CA, when renew will renew it (and whether that comes from the CA's renewal window,
RFC 9773, or from its lifetime), revocation, an interrupted order, the paths of its
files, the certificate's other addresses (obtain --also) and the encryption
certificate of an obtain --split pair. It reads only the state directory (no network).

` + exitStatusHelp

func newListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the managed certificates",
		Long:    listLong,
		Example: "  acmemail list\n  acmemail list --json | jq -r '.[] | select(.expired) | .email'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := openStateStore(g)
			if err != nil {
				return err
			}
			emails, err := store.ListCertificates()
			if err != nil {
				return err
			}
			now := time.Now()
			infos := []certInfo{}
			for _, e := range emails {
				ci, err := describeCert(store, e, now)
				if err != nil {
					fmt.Fprintf(g.stderr, "acmemail: warning: %v\n", err)
					continue
				}
				infos = append(infos, ci)
			}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(infos)
			}
			if len(infos) == 0 {
				fmt.Fprintln(g.stderr, "acmemail: no certificates yet; get one with acmemail obtain EMAIL")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "EMAIL\tSERIAL\tNOT AFTER\tRENEW AT\tKEY\tUSAGE\tSTATE\tCA")
			for _, c := range infos {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Email, c.Serial, c.NotAfter.Format(time.DateOnly),
					c.RenewalDue.Format(time.DateOnly), c.KeyType, c.Usage, c.state(), c.CA)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array on stdout")
	return cmd
}

func newShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "show EMAIL",
		Short:   "Show a managed certificate",
		Long:    showLong,
		Example: "  acmemail show alice@example.com\n  acmemail show --json alice@example.com | jq -r .renewal_due",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			email, err := checkEmail(args[0])
			if err != nil {
				return err
			}
			store, err := openStateStore(g)
			if err != nil {
				return err
			}
			ci, err := describeCert(store, email, time.Now())
			if errors.Is(err, keystore.ErrNotFound) {
				return withHint(fmt.Errorf("no certificate for %s is managed here", email), "see acmemail list, or get one with acmemail obtain "+email)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(ci)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			row := func(k, v string) {
				if v != "" {
					fmt.Fprintf(tw, "%s\t%s\n", k, v)
				}
			}
			row("email:", ci.Email)
			row("state:", ci.state())
			row("serial:", ci.Serial)
			row("not before:", ci.NotBefore.Format(time.RFC3339))
			row("not after:", ci.NotAfter.Format(time.RFC3339))
			row("key type:", ci.KeyType)
			row("usage:", ci.Usage)
			row("also:", strings.Join(ci.Also, ", "))
			if e := ci.Encryption; e != nil {
				row("encryption:", fmt.Sprintf("serial %s, %s, not after %s, %s", e.Serial, e.state(), e.NotAfter.Format(time.RFC3339), e.Files.PKCS12))
			}
			row("CA:", ci.CA)
			basis := "a third of the lifetime left"
			if ci.RenewalBasis == "ari" {
				basis = fmt.Sprintf("in the CA's renewal window %s to %s", ci.RenewalWindow[0], ci.RenewalWindow[1])
			}
			row("renewal due:", ci.RenewalDue.Format(time.RFC3339)+" ("+basis+")")
			row("revoked:", ci.RevocationReason)
			row("pending order:", ci.PendingOrder)
			row("PKCS#12:", ci.Files.PKCS12)
			row("certificate:", ci.Files.Certificate)
			row("chain:", ci.Files.Chain)
			row("key:", ci.Files.Key)
			row("directory:", ci.Files.Dir)
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON object on stdout")
	return cmd
}

type revokeOptions struct {
	cert   string
	key    string
	reason string
	server string
	json   bool
}

const revokeLong = `Revoke a certificate: the managed certificate of EMAIL, or the one in --cert FILE
(PEM; the first certificate in the file). Revocation cannot be undone: mail clients
that check revocation stop trusting signatures made with it.

The request is signed with the certificate's own key when acmemail has it (the
managed key, or --key FILE), otherwise with your ACME account key. The CA is the one
that issued the managed certificate; for a certificate acmemail does not manage, name
it with --server. --reason takes a name: unspecified (default), keyCompromise,
affiliationChanged, superseded, cessationOfOperation. After revoking a managed
certificate, renew leaves the address alone until you obtain a new one (or renew
--force); list and show report it as revoked.

` + exitStatusHelp

func newRevokeCmd(g *globals) *cobra.Command {
	var o revokeOptions
	cmd := &cobra.Command{
		Use:   "revoke [EMAIL]",
		Short: "Revoke a certificate",
		Long:  revokeLong,
		Example: `  acmemail revoke --reason keyCompromise alice@example.com
  acmemail revoke --cert old.pem --key old-key.pem --server castle --reason superseded`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRevoke(cmd.Context(), g, &o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cert, "cert", "", "revoke the certificate in this PEM file instead of a managed one")
	f.StringVar(&o.key, "key", "", "sign the request with this PEM private key (the certificate's key)")
	f.StringVar(&o.reason, "reason", "unspecified", "why: "+strings.Join(acmemail.RevocationReasonNames(), ", "))
	f.StringVar(&o.server, "server", "", "the CA's directory URL or name, for a certificate acmemail does not manage")
	f.BoolVar(&o.json, "json", false, "print the result as JSON on stdout")
	return cmd
}

func runRevoke(ctx context.Context, g *globals, o *revokeOptions, args []string) error {
	reason, err := acmemail.ParseRevocationReason(o.reason)
	if err != nil {
		return usageErrorf("--reason: %w", err)
	}
	if (len(args) == 1) == (o.cert != "") {
		return usageErrorf("name either an address or --cert FILE")
	}
	store, err := openStateStore(g)
	if err != nil {
		return err
	}
	var (
		leaf    *x509.Certificate
		certKey crypto.Signer
		dirURL  string
		managed string // the managed address whose current certificate this is
	)
	if len(args) == 1 {
		email, err := checkEmail(args[0])
		if err != nil {
			return err
		}
		key, chain, meta, _, err := store.LoadCertificate(email)
		if errors.Is(err, keystore.ErrNotFound) {
			return withHint(fmt.Errorf("no certificate for %s is managed here", email), "for another certificate use --cert FILE --server CA")
		}
		if err != nil {
			return err
		}
		leaf, certKey, dirURL, managed = chain[0], key, meta.Directory, email
		if meta.Settings != nil && meta.Settings.Server == "sandbox" {
			return fmt.Errorf("the certificate of %s came from an in-process sandbox, which no longer runs; there is nothing to revoke it at", email)
		}
	} else {
		data, err := os.ReadFile(o.cert)
		if err != nil {
			return usageErrorf("--cert: %w", err)
		}
		chain, err := keystore.ParseChain(data)
		if err != nil {
			return usageErrorf("--cert %s: %w", o.cert, err)
		}
		leaf = chain[0]
		// A managed certificate? Then its key and CA are known.
		if emails, err := store.ListCertificates(); err == nil {
			for _, e := range emails {
				key, c, meta, _, err := store.LoadCertificate(e)
				if err == nil && c[0].Equal(leaf) {
					certKey, dirURL, managed = key, meta.Directory, e
					break
				}
			}
		}
	}
	if o.key != "" {
		data, err := os.ReadFile(o.key)
		if err != nil {
			return usageErrorf("--key: %w", err)
		}
		k, err := keystore.ParsePrivateKey(data)
		if err != nil {
			return usageErrorf("--key %s: %w", o.key, err)
		}
		certKey = k
	}
	if o.server != "" {
		u, err := directoryURL(o.server)
		if err != nil {
			return err
		}
		dirURL = u
	}
	if dirURL == "" {
		return withHint(usageErrorf("acmemail does not manage this certificate, so it does not know its CA"), "name the CA with --server URL")
	}
	pool, err := g.rootPool()
	if err != nil {
		return err
	}
	client := &acmemail.Client{DirectoryURL: dirURL, HTTPClient: httpClient(pool), UserAgent: "acmemail/" + versionString(), Logger: g.logger().With("component", "acme")}
	if acct, err := store.LoadAccount(dirURL); err == nil {
		client.AccountKey, client.AccountURL = acct.Key, acct.URL
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return err
	}
	if client.AccountKey == nil {
		if certKey == nil {
			return withHint(fmt.Errorf("there is no ACME account for %s here and no key of the certificate", dirURL), "give the certificate's key with --key FILE")
		}
		client.AccountKey = certKey // only the certificate key signs
	}
	if err := client.Revoke(ctx, leaf, reason, certKey); err != nil {
		return err
	}
	serial := leaf.SerialNumber.Text(16)
	if managed != "" {
		if _, c, meta, _, err := store.LoadCertificate(managed); err == nil && c[0].Equal(leaf) {
			st := loadRenewalState(store, managed, meta.Serial)
			now := time.Now().UTC()
			st.Revoked, st.RevocationReason = &now, acmemail.RevocationReasonName(reason)
			if err := saveRenewalState(store, managed, st); err != nil {
				fmt.Fprintf(g.stderr, "acmemail: warning: the certificate is revoked, but recording it failed: %v\n", err)
			}
		}
	}
	if o.json {
		return json.NewEncoder(g.stdout).Encode(map[string]any{"serial": serial, "email": strings.Join(leaf.EmailAddresses, ","), "reason": acmemail.RevocationReasonName(reason), "ca": dirURL, "revoked": true})
	}
	fmt.Fprintf(g.stderr, "acmemail: revoked the certificate %s (%s) for %s\n", serial, acmemail.RevocationReasonName(reason), strings.Join(leaf.EmailAddresses, ", "))
	return nil
}

// directoryURL resolves a --server value without starting anything.
func directoryURL(server string) (string, error) {
	switch {
	case server == "sandbox":
		return "", usageErrorf("--server sandbox: the in-process sandbox lives only inside one obtain; give the directory URL of a running acmemail sandbox")
	case namedServers[server].url != "":
		return namedServers[server].url, nil
	case strings.HasPrefix(server, "https://"):
		return server, nil
	}
	return "", usageErrorf("--server %q is neither an https:// directory URL nor a known name (castle, castle-staging)", server)
}
