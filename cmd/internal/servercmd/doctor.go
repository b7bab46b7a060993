package servercmd

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/server"
	"github.com/acmemail/acmemail/cmd/internal/doctorout"
)

// errDoctorFailed: a check of server doctor failed (exit 1).
var errDoctorFailed = errors.New("a check failed (see above)")

func newDoctor(env Env) *cobra.Command {
	var asJSON bool
	var connect []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "doctor HOST",
		Short: "Check a mail server's DNS provider, services and certificate",
		Long: `Check what HOST's renewal and TLS need, one PASS, WARN, FAIL line each:

  certificate     the managed certificate's names, expiry and renewal time
  dns-provider    the recorded DNS provider, with the credentials in the environment
                  (as renew would use them), writes a TXT record with a random value at
                  _acme-challenge.HOST, the resolver serves it, and it is removed again
  service-NAME    each recorded service answers TLS on its port (STARTTLS for
                  submission, smtp, imap and pop3), and which certificate it serves:
                  the managed one (PASS), another valid one (WARN: not installed or
                  not reloaded), or an expired or wrong one (FAIL)

Each check gives up after --timeout. --connect SERVICE=HOST:PORT connects to that
address for the service (a server behind NAT, or on another port).

Exit status: 0 when no check failed, 1 when one did, 2 for usage errors.`,
		Example: "  acmemail server doctor mail.example.com\n  acmemail server doctor --connect imaps=10.0.0.5:993 --json mail.example.com",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := server.DoctorOptions{Connect: map[string]string{}, Timeout: timeout}
			for _, c := range connect {
				s, addr, ok := strings.Cut(c, "=")
				if _, known := server.Port(s); !ok || !known || addr == "" {
					return usagef("--connect %q: want SERVICE=HOST:PORT, SERVICE one of %s", c, strings.Join(server.Services(), ", "))
				}
				o.Connect[s] = addr
			}
			m, err := manager(env)
			if err != nil {
				return err
			}
			m.Progress = nil
			res, err := m.Doctor(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			out := make([]doctorout.Check, 0, len(res))
			failed := false
			for _, c := range res {
				out = append(out, doctorout.Check{Name: c.Name, OK: c.OK(), Status: string(c.Status), Detail: c.Detail, Fix: doctorFix(c, args[0])})
				failed = failed || !c.OK()
			}
			if asJSON {
				err = writeJSON(env.Stdout, out)
			} else {
				err = doctorout.Print(env.Stdout, out)
			}
			if err == nil && failed {
				err = errDoctorFailed
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the checks as a JSON array on stdout")
	cmd.Flags().StringSliceVar(&connect, "connect", nil, "connect to HOST:PORT for SERVICE (SERVICE=HOST:PORT, repeatable)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up on each check after this long (default 60s for the DNS provider, 15s for a service)")
	return cmd
}

func usagef(format string, args ...any) error {
	return &issuer.UsageError{Err: fmt.Errorf(format, args...)}
}

// doctorFix is what to do about a check that failed or warned.
func doctorFix(c issuer.Check, host string) string {
	if c.Status != issuer.CheckFail && c.Status != issuer.CheckWarn {
		return ""
	}
	switch {
	case c.Name == "certificate" && c.Status == issuer.CheckWarn:
		return "run acmemail renew from cron or a systemd timer (see the README, \"Server certificates\")"
	case c.Name == "certificate":
		return "get a new one: acmemail server renew --force " + host
	case c.Name == "dns-provider":
		return "set the provider's environment variables as lego documents them for --dns NAME (renew from cron needs them too), or check its permissions for the zone"
	case c.Status == issuer.CheckWarn:
		return "install it (acmemail server obtain --install postfix,dovecot, or a --deploy-hook) and reload the server"
	}
	return "check that the server listens there and offers TLS; --connect SERVICE=HOST:PORT if it listens elsewhere"
}
