package servercmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/acmemail/server"
	"github.com/acmemail/acmemail/cmd/internal/termout"
)

func sandboxOptions(badCert string) sandbox.Options {
	return sandbox.Options{BadCert: sandbox.BadCert(badCert)}
}

// RenewFailedError: at least one host could not be renewed (exit 6).
type RenewFailedError struct{ Hosts []string }

func (e *RenewFailedError) Error() string {
	return "could not renew the server certificate of " + strings.Join(e.Hosts, ", ")
}

// Renewed is one host's outcome of a renew run.
type Renewed struct {
	Host    string    `json:"host"`
	Outcome string    `json:"status"` // renewed, not-due, skipped, failed: as acmemail renew's
	Serial  string    `json:"serial,omitempty"`
	Until   time.Time `json:"not_after,omitzero"`
	RenewAt time.Time `json:"renewal_due,omitzero"`
	Error   string    `json:"error,omitempty"`
}

// RenewAll renews the hosts (all managed ones when none is named) that
// are due, or all with force; acmemail renew calls it too. Progress and
// errors go to env.Stderr; the outcomes are returned.
func RenewAll(ctx context.Context, env Env, hosts []string, force, wait bool) ([]Renewed, error) {
	m, err := manager(env)
	if err != nil {
		return nil, err
	}
	if len(hosts) == 0 {
		if hosts, err = m.List(); err != nil {
			return nil, err
		}
	}
	var out []Renewed
	var failed []string
	for _, h := range hosts {
		res, did, err := m.Renew(ctx, h, force, wait)
		r := Renewed{Host: h, Outcome: "not-due"}
		switch {
		case err != nil && res != nil && did:
			r.Outcome, r.Error = "failed", err.Error()
		case err != nil && res != nil && res.Profile.Server == "sandbox":
			r.Outcome, r.Error = "skipped", err.Error()
		case err != nil:
			r.Outcome, r.Error = "failed", err.Error()
		case did:
			r.Outcome = "renewed"
		case res.Revoked != nil:
			r.Outcome = "skipped" // revoked: renew --force renews it
		}
		if res != nil {
			r.Serial, r.Until, r.RenewAt = res.Serial(), wholeUTC(res.Meta.NotAfter), wholeUTC(res.RenewAt)
		}
		if r.Outcome == "failed" {
			failed = append(failed, h)
			fmt.Fprintf(env.Stderr, "acmemail: error: %s: %s\n", h, termout.EscapeLines(r.Error))
		}
		out = append(out, r)
	}
	if len(failed) > 0 {
		return out, &RenewFailedError{Hosts: failed}
	}
	return out, nil
}

func newRenew(env Env) *cobra.Command {
	var force, asJSON, wait bool
	cmd := &cobra.Command{
		Use:   "renew [HOST...]",
		Short: "Renew the mail servers' certificates that are due",
		Long: `Renew the server certificates that are due (all managed hosts without HOST), as
obtain made them: the same CA, services, DNS provider, key type, --install and
--deploy-hook. A certificate is due at the time picked in the CA's renewal window (RFC
9773), else when a third of its lifetime is left. The DNS provider's credentials come
from the environment, as for obtain. "acmemail renew" renews these too.`,
		Example: "  acmemail server renew\n  acmemail server renew --force mail.example.com",
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := RenewAll(cmd.Context(), env, args, force, wait)
			if asJSON {
				if jerr := writeJSON(env.Stdout, nonNilRenewed(out)); jerr != nil && err == nil {
					err = jerr
				}
			} else {
				PrintRenewed(env.Stdout, out)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "renew now, due or not")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print every host's outcome as JSON on stdout")
	cmd.Flags().BoolVar(&wait, "wait-lock", false, "wait for another run working on a host instead of failing it")
	return cmd
}

// PrintRenewed prints a line per renewed host (acmemail renew's stdout).
func PrintRenewed(w io.Writer, out []Renewed) {
	for _, r := range out {
		if r.Outcome == "renewed" {
			fmt.Fprintf(w, "renewed %s: serial %s, valid until %s\n", r.Host, r.Serial, r.Until.Format(time.DateOnly))
		}
	}
}

// wholeUTC is t in UTC, whole seconds: the JSON times of acmemail.
func wholeUTC(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

func nonNilRenewed(r []Renewed) []Renewed {
	if r == nil {
		return []Renewed{}
	}
	return r
}

// Lines are the "acmemail list" lines of the server certificates.
func Lines(env Env) ([]string, error) {
	m, err := manager(env)
	if err != nil {
		return nil, err
	}
	hosts, err := m.List()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, h := range hosts {
		res, err := m.Load(h)
		if err != nil {
			out = append(out, fmt.Sprintf("%-32s server  broken: %v", h, err))
			continue
		}
		out = append(out, fmt.Sprintf("%-32s server  serial %s, valid until %s, renew %s, services %s", h, res.Serial(),
			res.Meta.NotAfter.Format(time.DateOnly), res.RenewAt.UTC().Format(time.DateOnly), strings.Join(res.Profile.Services, ",")))
	}
	return out, nil
}

func newList(env Env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the mail servers' certificates",
		Long:    "List the managed server certificates, one line each (\"acmemail list\" shows them too).",
		Example: "  acmemail server list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !asJSON {
				lines, err := Lines(env)
				for _, l := range lines {
					fmt.Fprintln(env.Stdout, termout.EscapeLines(l))
				}
				return err
			}
			_, out, err := ListRows(env)
			if out == nil {
				out = []any{}
			}
			if jerr := writeJSON(env.Stdout, out); jerr != nil {
				return jerr
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON on stdout")
	return cmd
}

func newShow(env Env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "show HOST",
		Short:   "Show a mail server's certificate and what renew repeats",
		Long:    "Show HOST's certificate: its names, validity, renewal time, files, and the recorded settings renew repeats (never a DNS credential).",
		Example: "  acmemail server show mail.example.com",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := manager(env)
			if err != nil {
				return err
			}
			res, err := m.Load(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(env.Stdout, resultJSON(res))
			}
			j := resultJSON(res)
			w := env.Stdout
			fmt.Fprintf(w, "%s: serial %s, valid until %s, renew at %s\n", j.Host, j.Serial, j.NotAfter.Format(time.RFC3339), j.RenewAt.Format(time.RFC3339))
			fmt.Fprintf(w, "names:        %s\n", termout.EscapeLines(strings.Join(j.Names, " ")))
			fmt.Fprintf(w, "files:        %s, %s, %s\n", j.Key, j.Chain, j.Cert)
			fmt.Fprintf(w, "renew repeats:\n  server:     %s\n  dns:        %s (credentials from the environment, never recorded)\n", j.Server, j.DNS)
			fmt.Fprintf(w, "  services:   %s\n  install:    %s\n  key:        a new %s key\n", strings.Join(j.Services, ", "), strings.Join(j.Install, ", "), res.Profile.KeyType)
			if res.Profile.DeployHook != "" {
				fmt.Fprintf(w, "  deploy hook: %s\n", res.Profile.DeployHook)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print it as JSON on stdout")
	return cmd
}

// exportJSON is server export --json: the files written, key first.
type exportJSON struct {
	Host   string   `json:"host"`
	Files  []string `json:"files"`
	Serial string   `json:"serial"`
}

func newExport(env Env) *cobra.Command {
	var out string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "export HOST",
		Short: "Write a mail server's key and chain as PEM files",
		Long: `Write HOST.key.pem (0600), HOST.chain.pem (the certificate and its issuers) and
HOST.cert.pem into --out (default: the current directory); existing files are never
overwritten.`,
		Example: "  acmemail server export --out /etc/ssl/mail mail.example.com",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := manager(env)
			if err != nil {
				return err
			}
			res, err := m.Load(args[0])
			if err != nil {
				return err
			}
			h := res.Meta.Email
			files := []struct {
				src, dst string
				perm     os.FileMode
			}{
				{res.Paths.Key, h + ".key.pem", 0o600},
				{res.Paths.Chain, h + ".chain.pem", 0o644},
				{res.Paths.Leaf, h + ".cert.pem", 0o644},
			}
			for _, f := range files {
				if _, err := os.Lstat(filepath.Join(out, f.dst)); err == nil {
					return fmt.Errorf("%s exists; acmemail never overwrites it", filepath.Join(out, f.dst))
				}
			}
			written := []string{}
			for _, f := range files {
				data, err := issuer.ReadFile(f.src, 1<<20)
				if err != nil {
					return err
				}
				dst := filepath.Join(out, f.dst)
				if err := issuer.WriteNewFile(dst, data, f.perm); err != nil {
					return fmt.Errorf("write %s: %w", dst, err)
				}
				if written = append(written, dst); !asJSON {
					fmt.Fprintln(env.Stdout, dst)
				}
			}
			if asJSON {
				return writeJSON(env.Stdout, exportJSON{Host: h, Files: written, Serial: res.Serial()})
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", ".", "directory to write the files in")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the files written as JSON on stdout")
	return cmd
}

var _ = server.Services
