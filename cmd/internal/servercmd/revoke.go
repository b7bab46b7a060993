package servercmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
)

// revokeJSON is server revoke --json: revoke --json's shape, with the host
// in place of the address.
type revokeJSON struct {
	Host         string               `json:"host"`
	Serial       string               `json:"serial"`
	Reason       string               `json:"reason"`
	CA           string               `json:"ca"`
	Revoked      bool                 `json:"revoked"`
	Certificates []issuer.RevokedCert `json:"certificates"`
}

func newRevoke(env Env) *cobra.Command {
	var reason string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "revoke HOST",
		Short: "Revoke a mail server's certificate",
		Long: `Revoke HOST's managed certificate at the CA that issued it, the request signed with the
certificate's own key. Revocation cannot be undone. Afterwards renew leaves HOST alone
until "acmemail server renew --force HOST" (or obtain) gets a new certificate; list and
show report it as revoked. --reason takes a name: unspecified (default), keyCompromise,
affiliationChanged, superseded, cessationOfOperation.

Exit status as for acmemail revoke: 0 revoked; 5 the CA refused (alreadyRevoked when it
was revoked before); 1 other errors. --json prints the result on stdout also when the
revocation failed: host, serial, reason, ca, revoked, and "certificates" (one entry).`,
		Example: "  acmemail server revoke --reason keyCompromise mail.example.com",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := acmemail.ParseRevocationReason(reason)
			if err != nil {
				return &issuer.UsageError{Err: fmt.Errorf("--reason: %w", err)}
			}
			m, err := manager(env)
			if err != nil {
				return err
			}
			var roots = env.Getenv("ACMEMAIL_CA_ROOTS")
			o := issuer.RevokeOptions{}
			if roots != "" {
				if o.Roots, err = issuer.RootPool(roots); err != nil {
					return err
				}
			}
			res, err := m.Revoke(cmd.Context(), args[0], code, o)
			if res == nil {
				return err
			}
			if err == nil {
				fmt.Fprintf(env.Stderr, "acmemail: revoked the certificate %s of %s (%s)\n", res.Serial, res.Email, res.Reason)
			}
			if asJSON {
				j := revokeJSON{Host: res.Email, Serial: res.Serial, Reason: res.Reason, CA: res.CA, Revoked: res.Revoked, Certificates: res.Certificates}
				if j.Certificates == nil {
					j.Certificates = []issuer.RevokedCert{}
				}
				if jerr := writeJSON(env.Stdout, j); jerr != nil && err == nil {
					err = jerr
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "unspecified", "why: "+strings.Join(acmemail.RevocationReasonNames(), ", "))
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON on stdout")
	return cmd
}
