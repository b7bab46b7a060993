package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/keystore"
)

type revokeOptions struct {
	cert   string
	key    string
	reason string
	server string
	only   string // "", "signing" or "encryption": one certificate of an obtain --split pair
	json   bool
}

const revokeLong = `Revoke a certificate: the managed certificate of EMAIL, or the one in --cert FILE
(PEM; the first certificate in the file). Revocation cannot be undone: mail clients
that check revocation stop trusting signatures made with it.

For an address with a signing and an encryption certificate (obtain --split), both
are revoked, with the same --reason, each request signed with that certificate's own
key. If one of the two cannot be revoked, the other is still tried; the command then
fails and says which one is left and how to revoke it alone: --only signing or
--only encryption revokes just that one (for example when only the encryption key was
lost). A certificate the CA reports as already revoked counts as revoked; the command
fails with the CA's alreadyRevoked only when every certificate it was asked to revoke
was revoked before.

The request is signed with the certificate's own key when acmemail has it (the
managed key, or --key FILE), otherwise with your ACME account key. The CA is the one
that issued the managed certificate; for a certificate acmemail does not manage, name
it with --server. --reason takes a name: unspecified (default), keyCompromise,
affiliationChanged, superseded, cessationOfOperation. After revoking a managed
certificate, renew leaves the address alone until you obtain a new one (or renew
--force); list and show report it as revoked (list shows the two certificates of a
--split pair on two lines).

Progress and the result go to stderr; --json prints on stdout an object with the
address, reason, CA, the serial of the (signing) certificate, "revoked" (true when
every certificate asked for is revoked) and "certificates": one entry per
certificate with its usage, serial, "revoked", "already_revoked" and "error".`

const revokeExample = `  acmemail revoke --reason keyCompromise alice@example.com
  # Only the encryption certificate of an obtain --split pair:
  acmemail revoke --only encryption --reason keyCompromise alice@example.com
  acmemail revoke --cert old.pem --key old-key.pem --server castle --reason superseded`

func newRevokeCmd(g *globals) *cobra.Command {
	var o revokeOptions
	cmd := &cobra.Command{
		Use:     "revoke [EMAIL]",
		Short:   "Revoke a certificate",
		Long:    revokeLong,
		Example: revokeExample,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRevoke(cmd.Context(), g, &o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cert, "cert", "", "revoke the certificate in this PEM file instead of a managed one")
	f.StringVar(&o.key, "key", "", "sign the request with this PEM private key (the certificate's key)")
	f.StringVar(&o.reason, "reason", "unspecified", "why: "+strings.Join(acmemail.RevocationReasonNames(), ", "))
	f.StringVar(&o.server, "server", "", "the CA's directory URL or name, for a certificate acmemail does not manage")
	f.StringVar(&o.only, "only", "", "of an obtain --split pair, revoke only the signing or only the encryption certificate (default: both)")
	f.BoolVar(&o.json, "json", false, "print the result as JSON on stdout")
	return cmd
}

// revoke --json's output, and the CA's answer to a revocation (printError
// leaves out its hints about orders).
type (
	revokeResult     = issuer.RevokeResult
	revokeCertResult = issuer.RevokedCert
	revokeCAError    = issuer.RevocationError
)

// onlyRole parses --only.
func onlyRole(v string) (string, error) {
	switch v {
	case "":
		return "", nil
	case "signing", "sign":
		return issuer.RoleSigning, nil
	case "encryption", "encrypt":
		return issuer.RoleEncryption, nil
	}
	return "", usageErrorf("--only %q: choose signing or encryption", v)
}

func runRevoke(ctx context.Context, g *globals, o *revokeOptions, args []string) error {
	reason, err := acmemail.ParseRevocationReason(o.reason)
	if err != nil {
		return usageErrorf("--reason: %w", err)
	}
	only, err := onlyRole(o.only)
	if err != nil {
		return err
	}
	if (len(args) == 1) == (o.cert != "") {
		return usageErrorf("name either an address or --cert FILE")
	}
	if only != "" && o.cert != "" {
		return usageErrorf("--only picks a certificate of a managed address; --cert FILE already names one")
	}
	is, err := newIssuer(g, nil)
	if err != nil {
		return err
	}
	var targets []*issuer.Revocation
	if len(args) == 1 {
		email, err := checkEmail(args[0])
		if err != nil {
			return err
		}
		targets, err = issuer.Revocations(is.Store, email, only)
		switch {
		case errors.Is(err, issuer.ErrNotManaged):
			return withHint(fmt.Errorf("no certificate for %s is managed here", email), issuer.NotManagedHints(is.Store, email, "for another certificate use --cert FILE --server CA")...)
		case errors.Is(err, issuer.ErrNotPair):
			return withHint(usageErrorf("--only %s: %s has one certificate, not a signing and an encryption one (obtain --split)", only, email),
				"drop --only to revoke it")
		case err != nil:
			return err
		}
	} else {
		data, err := issuer.ReadFile(o.cert, issuer.MaxPEMFile)
		if err != nil {
			return usageErrorf("--cert: %w", err)
		}
		chain, err := keystore.ParseChain(data)
		if err != nil {
			return usageErrorf("--cert %s: %w", o.cert, err)
		}
		targets = []*issuer.Revocation{issuer.RevocationOf(is.Store, chain[0])}
	}
	if o.key != "" {
		if len(targets) > 1 {
			return withHint(usageErrorf("--key names one certificate's key, and %s has two (obtain --split)", targets[0].Email),
				"add --only signing or --only encryption")
		}
		data, err := issuer.ReadFile(o.key, issuer.MaxPEMFile)
		if err != nil {
			return usageErrorf("--key: %w", err)
		}
		k, err := keystore.ParsePrivateKey(data)
		if err != nil {
			return usageErrorf("--key %s: %w", o.key, err)
		}
		targets[0].Key = k
	}
	if o.server != "" {
		u, err := directoryURL(o.server)
		if err != nil {
			return err
		}
		for _, t := range targets {
			t.Directory = u
		}
	}
	for _, t := range targets {
		if t.LoadErr == nil && t.Directory == "" {
			return withHint(usageErrorf("acmemail does not manage this certificate, so it does not know its CA"), "name the CA with --server URL")
		}
	}
	pool, err := g.rootPool()
	if err != nil {
		return err
	}
	res, err := is.Revoke(ctx, targets, issuer.RevokeOptions{Reason: reason, Roots: pool, Progress: newProgress(g.stderr)})
	if o.json {
		if err := json.NewEncoder(g.stdout).Encode(res); err != nil {
			return err
		}
	}
	return revokeError(err, res.Reason)
}

// revokeError puts the CLI's words on Revoke's error: for a pair, which
// certificate is left and how to revoke it alone.
func revokeError(err error, reason string) error {
	var pe *issuer.PairRevokeError
	if !errors.As(err, &pe) {
		return keyHint(err)
	}
	var failed, ok []*issuer.Revocation
	for _, r := range pe.Pair {
		if r.Revoked {
			ok = append(ok, r)
		} else {
			failed = append(failed, r)
		}
	}
	email := pe.Email
	switch {
	case len(failed) == 0:
		return fmt.Errorf("both certificates of the --split pair of %s were already revoked: %w", email, pe.Pair[0].Err)
	case len(failed) == 1:
		f, o := failed[0], ok[0]
		done := "revoked"
		if o.AlreadyRevoked {
			done = "found already revoked"
		}
		hints := []string{fmt.Sprintf("%s is not revoked: once the cause is fixed, revoke it alone with acmemail revoke --only %s --reason %s %s", f.What(), f.Role, reason, email)}
		if f.LoadErr != nil {
			// Its key or files are unusable: the account may still sign.
			hints = append(hints, fmt.Sprintf("or revoke it with your account key: acmemail revoke --cert FILE --server %s --reason %s (FILE: its cert.pem, or the certificate from a backup)", o.Directory, reason))
		}
		return withHint(fmt.Errorf("%s %s of %s, but not %s: %w", done, o.Named(), email, f.Named(), keyHint(f.Err)), hints...)
	}
	a, b := pe.Pair[0], pe.Pair[1]
	return withHint(fmt.Errorf("neither certificate of the --split pair of %s was revoked: %s: %w; %s: %w",
		email, a.What(), keyHint(a.Err), b.What(), keyHint(b.Err)),
		"neither is revoked: fix the cause and run the command again")
}

// keyHint says how to give a certificate's key when there is no account
// to sign its revocation.
func keyHint(err error) error {
	if errors.As(err, new(*issuer.RevokeNoAccountError)) {
		return withHint(err, "give the certificate's key with --key FILE")
	}
	return err
}

// directoryURL resolves a --server value without starting anything.
func directoryURL(server string) (string, error) {
	switch {
	case server == "sandbox":
		return "", usageErrorf("--server sandbox: the in-process sandbox lives only inside one obtain; give the directory URL of a running acmemail sandbox")
	case issuer.NamedServers[server].URL != "":
		return issuer.NamedServers[server].URL, nil
	case strings.HasPrefix(server, "https://"):
		return server, nil
	}
	return "", usageErrorf("--server %q is neither an https:// directory URL nor a known name (castle, castle-staging)", server)
}
