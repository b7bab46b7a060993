// Package servercmd is "acmemail server": TLS certificates for mail
// servers (SMTP submission, IMAP, POP3) over ACME with DNS challenges,
// kept in the same state directory as the S/MIME certificates.
package servercmd

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/acmemail/server"
	"github.com/acmemail/acmemail/acmemail/server/install"
	"github.com/acmemail/acmemail/cmd/internal/termout"
	"github.com/acmemail/acmemail/keystore"
)

// Env is what the server commands get from acmemail's root command.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Logger         func() *slog.Logger
	// OpenState opens the state directory (creating it).
	OpenState func() (*keystore.Store, error)
	// Install installs into postfix and dovecot (nil: not available).
	Install func(ctx context.Context, targets []string, host string, keyPEM, chainPEM []byte, notAfter time.Time) error
}

const long = `Obtain and renew TLS certificates for your mail servers (SMTP submission, IMAP, POP3)
from an ACME CA, proving control of the host name through DNS with lego's DNS providers:
no web server on the mail host.

The certificate names the host (dNSName) and is checked before it is saved: exactly the
names asked for, the serverAuth extended key usage, and the key usage TLS needs for the
key type (digitalSignature; plus keyEncipherment for RSA keys, never for EC keys). A
certificate that fails is refused (exit status 5) and nothing is saved or installed.

DNS providers are configured as lego users configure them: --dns NAME and the provider's
environment variables (for RFC 2136, RFC2136_NAMESERVER, RFC2136_TSIG_KEY,
RFC2136_TSIG_SECRET, RFC2136_TSIG_ALGORITHM or RFC2136_TSIG_FILE). acmemail records the
provider's name, never its credentials: renew from cron needs them in its environment.

--experimental-service-challenge also orders an SRVName (RFC 4985, "_imaps.HOST") per
--service, proved by the "dns-service-01" challenge this project proposes (TXT at
_acme-challenge._PORT._SERVICE.HOST, the service and port in the hash); only the sandbox
CA offers it.`

// New is the "server" command.
func New(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Obtain and renew TLS certificates for mail servers (dns-01 with lego's DNS providers)",
		Long:  long,
		Example: `  RFC2136_NAMESERVER=ns.example.com:53 RFC2136_TSIG_FILE=/etc/acmemail/tsig.key \
    acmemail server obtain --server letsencrypt --dns rfc2136 --service submissions --service imaps mail.example.com
  acmemail server obtain --server sandbox --dns rfc2136 --service imaps mail.example.test
  acmemail server list`,
	}
	cmd.AddCommand(newObtain(env), newRenew(env), newList(env), newShow(env), newExport(env), newRevoke(env), newDoctor(env))
	return cmd
}

type obtainFlags struct {
	server, dns, resolver, keyType, deployHook, issuerRoots string
	services, install                                       []string
	serviceChallenge, json, waitLock                        bool
	sandboxBadCert                                          string
}

func newObtain(env Env) *cobra.Command {
	var f obtainFlags
	cmd := &cobra.Command{
		Use:   "obtain HOST",
		Short: "Obtain a TLS certificate for the mail server HOST",
		Long: `Obtain a TLS certificate for HOST through a DNS challenge, check it, save it in the
state directory (servers/HOST/: key.pem, chain.pem, cert.pem), install it (--install) and
run --deploy-hook. Everything but the DNS credentials is recorded for "acmemail renew".`,
		Example: `  acmemail server obtain --server sandbox --dns rfc2136 --service imaps mail.example.test
  acmemail server obtain --server letsencrypt --dns cloudflare --service submissions --service imaps --install postfix,dovecot mail.example.com`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runObtain(cmd.Context(), env, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "letsencrypt", "ACME directory URL, or letsencrypt, letsencrypt-staging, sandbox (the in-process sandbox)")
	fl.StringVar(&f.dns, "dns", "", "lego DNS provider: "+strings.Join(server.ProviderNames(), ", ")+" (credentials in its environment variables)")
	fl.StringVar(&f.resolver, "dns-resolver", "", "DNS server (HOST:PORT) for CNAME, zone and propagation checks (default: the system's resolver and the zone's authoritative servers)")
	fl.StringSliceVar(&f.services, "service", nil, "mail service the certificate is for (repeatable): "+strings.Join(server.Services(), ", "))
	fl.BoolVar(&f.serviceChallenge, "experimental-service-challenge", false, "also order an SRVName per --service, proved by the experimental dns-service-01 challenge (only the sandbox CA offers it)")
	fl.StringVar(&f.keyType, "key-type", "p256", "certificate key: p256, p384, rsa2048, rsa3072, rsa4096")
	fl.StringVar(&f.deployHook, "deploy-hook", "", "shell command run after each issuance or renewal, with ACMEMAIL_EMAIL (the host), ACMEMAIL_CERT_PATH, ACMEMAIL_CHAIN_PATH, ACMEMAIL_KEY_PATH, ACMEMAIL_NOT_AFTER, ACMEMAIL_SERIAL set")
	fl.StringSliceVar(&f.install, "install", nil, "install key and chain into these servers and reload them: postfix, dovecot")
	fl.StringVar(&f.issuerRoots, "issuer-roots", "", "PEM file of the CA's roots: the issued chain must verify to one of them")
	fl.BoolVar(&f.json, "json", false, "print the result as JSON on stdout")
	fl.BoolVar(&f.waitLock, "wait-lock", false, "if another acmemail run is working on HOST, wait for it (default: exit with status 8)")
	fl.StringVar(&f.sandboxBadCert, "sandbox-bad-cert", "", "with --server sandbox: the sandbox CA issues a bad certificate (wrong-san, no-server-auth, changed-key-usage), for trying the checks")
	fl.MarkHidden("sandbox-bad-cert")
	return cmd
}

func manager(env Env) (*server.Manager, error) {
	store, err := env.OpenState()
	if err != nil {
		return nil, err
	}
	return &server.Manager{
		Store: store, Getenv: env.Getenv, Logger: env.Logger(), UserAgent: "acmemail",
		Progress: func(msg string) { fmt.Fprintf(env.Stderr, "acmemail: %s\n", termout.EscapeLines(msg)) },
		Hooks:    &issuer.Issuer{Store: store, HookOutput: env.Stderr},
		Install:  env.installer(),
	}, nil
}

// installer is env.Install, else package install's, rooted at
// $ACMEMAIL_INSTALL_ROOT ("" is the system itself).
func (env Env) installer() func(ctx context.Context, targets []string, host string, keyPEM, chainPEM []byte, notAfter time.Time) error {
	if env.Install != nil {
		return env.Install
	}
	return func(ctx context.Context, targets []string, host string, keyPEM, chainPEM []byte, notAfter time.Time) error {
		res, err := install.Install(ctx, targets, install.Cert{Host: host, KeyPEM: keyPEM, ChainPEM: chainPEM, NotAfter: notAfter},
			install.Options{Root: env.Getenv("ACMEMAIL_INSTALL_ROOT"), Reload: true, Logger: env.Logger()})
		for _, r := range res {
			fmt.Fprintf(env.Stderr, "acmemail: installed %s into %s (%s, %s; reloaded: %t)\n", host, r.Target, r.KeyPath, r.ChainPath, r.Reloaded)
		}
		return err
	}
}

func runObtain(ctx context.Context, env Env, f obtainFlags, host string) error {
	if f.dns == "" {
		return &issuer.UsageError{Err: errors.New("--dns is needed: the lego DNS provider that writes the challenge's TXT record (rfc2136 with the sandbox)")}
	}
	kt, err := keystore.ParseKeyType(f.keyType)
	if err != nil {
		return &issuer.UsageError{Err: err}
	}
	for _, t := range f.install {
		if !slices.Contains(install.Targets, t) {
			return &issuer.UsageError{Err: fmt.Errorf("--install %q: choose from %s", t, strings.Join(install.Targets, ", "))}
		}
	}
	if err := issuer.CheckHook(f.deployHook); err != nil {
		return &issuer.UsageError{Err: err}
	}
	m, err := manager(env)
	if err != nil {
		return err
	}
	p := server.Profile{Host: host, Server: f.server, Services: f.services, ServiceChallenge: f.serviceChallenge, DNS: f.dns,
		DNSResolver: f.resolver, KeyType: kt, DeployHook: f.deployHook, Install: f.install}
	if roots := env.Getenv("ACMEMAIL_CA_ROOTS"); roots != "" {
		p.CARoots, _ = filepath.Abs(roots) // renew runs from cron, in another directory
	}
	if f.issuerRoots != "" {
		p.IssuerRoots, _ = filepath.Abs(f.issuerRoots)
	}
	var renv server.Env
	if f.server == "sandbox" {
		w, err := sandbox.Start(ctx, sandboxOptions(f.sandboxBadCert))
		if err != nil {
			return fmt.Errorf("start the sandbox: %w", err)
		}
		defer w.Close()
		if renv, err = sandboxEnv(w, &p); err != nil {
			return err
		}
	} else if f.sandboxBadCert != "" {
		return &issuer.UsageError{Err: errors.New("--sandbox-bad-cert needs --server sandbox")}
	}
	res, err := m.Obtain(ctx, p, renv, f.waitLock)
	if res != nil {
		if perr := printResult(env, res, f.json); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

// dnsUpdater is the sandbox world's RFC 2136 service.
type dnsUpdater interface{ DNSUpdateEnv() []string }

// sandboxEnv points a run at the in-process sandbox w: its CA, its roots,
// and its DNS server (RFC 2136 with the world's TSIG key) as resolver and
// provider.
func sandboxEnv(w *sandbox.World, p *server.Profile) (server.Env, error) {
	up, ok := any(w).(dnsUpdater)
	if !ok {
		return server.Env{}, errors.New("this build's sandbox does not accept DNS updates (RFC 2136)")
	}
	// The sandbox's DNS serves the host's domain: the host without its
	// first label (mail.example.test -> example.test).
	host, err := keystore.NormalizeHost(p.Host)
	if err != nil {
		return server.Env{}, &issuer.SettingError{Setting: "host", Err: err}
	}
	zone := host
	if _, rest, _ := strings.Cut(host, "."); strings.Contains(rest, ".") {
		zone = rest
	}
	if err := w.AddZone(zone); err != nil {
		return server.Env{}, fmt.Errorf("sandbox: serve the zone %s: %w", zone, err)
	}
	vars := map[string]string{}
	for _, kv := range up.DNSUpdateEnv() {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	if n, _ := server.CanonicalProvider(p.DNS); n != "dnsupdate" {
		return server.Env{}, &issuer.UsageError{Err: fmt.Errorf("--server sandbox answers with --dns rfc2136 only, not %s", p.DNS)}
	}
	prov, err := server.NewProvider("rfc2136", func(k string) string { return vars[k] })
	if err != nil {
		return server.Env{}, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(w.TLSRootsPEM)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(w.IssuerRootPEM)
	if p.DNSResolver == "" {
		p.DNSResolver = w.DNSAddr
	}
	return server.Env{DirectoryURL: w.DirectoryURL, TLSRoots: pool, IssuerRoots: roots, Provider: prov, NoRecord: true}, nil
}

// jsonResult is the --json form of a server certificate.
type jsonResult struct {
	Host     string    `json:"host"`
	Services []string  `json:"services"`
	Names    []string  `json:"names"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
	RenewAt  time.Time `json:"renewal_due"`
	Server   string    `json:"server"`
	DNS      string    `json:"dns"`
	Install  []string  `json:"install"`
	Key      string    `json:"key_path"`
	Chain    string    `json:"chain_path"`
	Cert     string    `json:"cert_path"`
	Revoked  bool      `json:"revoked"`
}

func resultJSON(res *server.Result) jsonResult {
	n, _ := server.ParseNames(res.Chain[0])
	return jsonResult{Host: res.Meta.Email, Services: nonNil(res.Profile.Services), Names: append(nonNil(n.DNS), n.SRV...), Serial: res.Serial(),
		NotAfter: wholeUTC(res.Meta.NotAfter), RenewAt: wholeUTC(res.RenewAt), Revoked: res.Revoked != nil, Server: res.Profile.Server, DNS: res.Profile.DNS, Install: nonNil(res.Profile.Install),
		Key: res.Paths.Key, Chain: res.Paths.Chain, Cert: res.Paths.Leaf}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func printResult(env Env, res *server.Result, asJSON bool) error {
	if asJSON {
		return writeJSON(env.Stdout, resultJSON(res))
	}
	_, err := fmt.Fprintln(env.Stdout, res.Paths.Chain)
	return err
}

func writeJSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// Ensure os is used on every platform (file modes of export).
var _ = os.ModePerm
