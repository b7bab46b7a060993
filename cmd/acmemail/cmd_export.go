package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/cmd/internal/forgetcmd"
	"github.com/acmemail/acmemail/cmd/internal/secret"
	"github.com/acmemail/acmemail/keystore"
)

type exportOptions struct {
	format          string
	p12Profile      string
	out             string
	allHistory      bool
	p12PasswordFile string
	json            bool
}

const exportLong = `Export the certificate of EMAIL, with its key, from the state directory. It writes
nothing there: a read-only state directory will do.

--format p12 (the default) writes one PKCS#12 file with the key, the certificate and
the CA certificates of its chain, for a mail client: Thunderbird, Outlook, Apple Mail,
iOS and Android import it. The password comes from ACMEMAIL_P12_PASSWORD,
--p12-password-file or a prompt on the terminal (asked twice); there is no default
password, and without a terminal one of the first two must be given.

--p12-profile picks the algorithms: "modern" (the default: AES-256-CBC with
PBKDF2-HMAC-SHA-256, HMAC-SHA-256 MAC, as OpenSSL 3's pkcs12 -export writes it; read
by OpenSSL 1.1.1+, NSS/Thunderbird, Java 12+, Windows 10 1709+) or "legacy" (3DES with
a SHA-1 MAC, the same as openssl -descert: for older Windows, macOS, iOS and Android
that refuse the modern file with a "wrong password" error). Legacy files are weakly
encrypted: use a long password and do not leave them lying around.

--all-history writes one PKCS#12 file holding every key acmemail ever got a
certificate for at this address (certificates/EMAIL/archive/ keeps them all), with
its certificate: import it to read old mail that was encrypted to earlier
certificates. If an archived certificate cannot be read, it fails and names it,
rather than write a file that lacks a key; without --all-history the archive is
not read.

The encryption certificate of a pair from obtain --split (certificates/EMAIL/encrypt/)
is exported along with the signing one: in the same PKCS#12 file, or as
EMAIL.encrypt.*.pem files.

--format pem writes four files: EMAIL.key.pem (the private key, PKCS#8, NOT
encrypted, mode 0600), EMAIL.cert.pem (the certificate), EMAIL.chain.pem (the
certificate, then the CA certificates: the full chain) and EMAIL.ca.pem (the CA
certificates alone, issuer first).

--out names the PKCS#12 file (default EMAIL.p12, or EMAIL-history.p12 with
--all-history, in the current directory; "-" writes it to stdout, if that is not a
terminal), or with --format pem the directory of the four files (default: the
current directory). Existing files are never overwritten. The paths written are
printed on stdout (or JSON with --json).`

const exportExample = `  # A PKCS#12 file for a mail client (the password is asked twice):
  acmemail export alice@example.com

  # For an old phone, into a file of your choice:
  acmemail export --p12-profile legacy --out ~/alice-legacy.p12 alice@example.com

  # Every key and certificate ever obtained, to read old encrypted mail:
  acmemail export --all-history alice@example.com

  # Key, certificate, full chain and CA certificates as PEM files in ./pem:
  mkdir pem && acmemail export --format pem --out pem alice@example.com`

func newExportCmd(g *globals) *cobra.Command {
	var o exportOptions
	cmd := &cobra.Command{
		Use:     "export EMAIL",
		Short:   "Export the certificate and key of EMAIL as PKCS#12 or PEM",
		Long:    exportLong,
		Example: exportExample,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExport(cmd.Context(), g, &o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.format, "format", "p12", "what to write: p12 (one PKCS#12 file) or pem (key, certificate and chain files)")
	f.StringVar(&o.p12Profile, "p12-profile", "modern", "PKCS#12 encryption: modern (AES-256, SHA-256 MAC) or legacy (3DES, SHA-1 MAC, for old importers)")
	f.StringVar(&o.out, "out", "", `the PKCS#12 file to write ("-": stdout), or with --format pem the directory (default: the current directory)`)
	f.BoolVar(&o.allHistory, "all-history", false, "put every archived key and certificate of EMAIL into the PKCS#12 file, not only the current one")
	f.StringVar(&o.p12PasswordFile, "p12-password-file", "", "read the PKCS#12 password from the first line of this file")
	f.BoolVar(&o.json, "json", false, "print what was written as JSON on stdout")
	return cmd
}

type exportResult struct {
	Email        string   `json:"email"`
	Format       string   `json:"format"`
	Profile      string   `json:"p12_profile,omitempty"`
	Files        []string `json:"files"`
	Certificates int      `json:"certificates"` // how many keys with their certificates
	Serials      []string `json:"serials"`      // of the leaves, oldest first
}

func runExport(ctx context.Context, g *globals, o *exportOptions, email string) error {
	email, err := checkEmail(email)
	if err != nil {
		return err
	}
	if o.format != "p12" && o.format != "pem" {
		return usageErrorf("--format %q: choose p12 or pem", o.format)
	}
	profile, err := keystore.ParseP12Profile(o.p12Profile)
	if err != nil {
		return usageErrorf("--p12-profile %q: choose modern or legacy", o.p12Profile)
	}
	if o.format == "pem" && o.allHistory {
		return withHint(usageErrorf("--all-history writes one PKCS#12 file; it does not go with --format pem"),
			"drop --format pem; old keys and certificates stay as PEM files in the state directory's certificates/EMAIL/archive/")
	}
	// Only read: a read-only state directory can be exported from.
	store, err := openStateToRead(g.getenv)
	if err != nil {
		return err
	}
	if store == nil {
		home, _ := keystore.DefaultDir(g.getenv)
		return withHint(fmt.Errorf("no state directory at %s", home), "run acmemail obtain first, or set ACMEMAIL_HOME")
	}
	exp, err := issuer.ExportOf(store, email, o.allHistory)
	var ae *issuer.AlsoAddressError
	var be *keystore.ArchiveEntryError
	switch {
	case errors.As(err, &be):
		return withHint(err, "--all-history puts every archived key into the file, and this one cannot be read: restore its files from a backup, or move "+be.Dir+
			" out of the state directory, keeping it, and export again; without --all-history the current certificate is exported")
	case errors.As(err, &ae):
		return withHint(err, "it is in the certificate of "+ae.Primary+" (obtained with --also); export "+ae.Primary)
	case errors.Is(err, issuer.ErrNotManaged):
		// As show, renew and revoke say it; the keystore's wording adds nothing.
		return withHint(fmt.Errorf("no certificate for %s is managed here", email), issuer.NotManagedHints(store, email, "see acmemail list, or get one with acmemail obtain "+email)...)
	case errors.Is(err, issuer.ErrArchivedOnly):
		return fmt.Errorf("%s has archived certificates but no current one; use --all-history to export them", email)
	case err != nil:
		return err
	}
	res := exportResult{Email: email, Format: o.format, Certificates: len(exp.Generations), Serials: exp.Serials()}

	if o.format == "pem" {
		dir := o.out
		if dir == "" {
			dir = "."
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return withHint(usageErrorf("--out %s: with --format pem, --out names an existing directory", dir),
				"create it first (mkdir "+dir+"), or leave out --out to write the PEM files into the current directory")
		}
		files, err := exp.WritePEM(dir)
		if errors.As(err, new(*issuer.ExistsError)) {
			return withHint(&usageError{Err: err}, "remove it first, or choose another directory with --out")
		}
		if err != nil {
			return err
		}
		res.Files = files
		for i := 0; i < len(files); i += issuer.PEMFilesPerCert {
			fmt.Fprintf(g.stderr, "acmemail: warning: %s holds the private key unencrypted; keep it safe\n", files[i])
		}
		return printExport(g, o, res)
	}

	path := o.out
	if path == "" {
		path = email + ".p12"
		if o.allHistory {
			path = email + "-history.p12"
		}
	}
	if path == "-" {
		if f, ok := g.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return withHint(usageErrorf("--out -: stdout is a terminal; a PKCS#12 file is binary"), "redirect stdout to a file, or give --out FILE")
		}
		if o.json {
			return usageErrorf("--out - and --json both want stdout")
		}
	} else if _, err := os.Lstat(path); err == nil {
		return withHint(&usageError{Err: &issuer.ExistsError{Path: path}}, "remove it first, or choose another path with --out")
	}
	password, err := g.secretSources().Get(secret.Spec{What: "PKCS#12 password", EnvVar: "ACMEMAIL_P12_PASSWORD", File: o.p12PasswordFile, Flag: "p12-password-file", Confirm: true})
	if err != nil {
		return err
	}
	data, err := exp.PKCS12(password, profile)
	if err != nil {
		return err
	}
	if path == "-" {
		_, err := g.stdout.Write(data)
		return err
	}
	if err := writeNewFile(path, data); err != nil {
		return fmt.Errorf("write the PKCS#12 file: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	res.Profile, res.Files = string(profile), []string{abs}
	if n := len(exp.Generations); n > 1 {
		fmt.Fprintf(g.stderr, "acmemail: wrote %d keys with their certificates to %s (%s profile)\n", n, path, profile)
	} else {
		fmt.Fprintf(g.stderr, "acmemail: wrote the key and certificate of %s to %s (%s profile)\n", email, path, profile)
	}
	return printExport(g, o, res)
}

func printExport(g *globals, o *exportOptions, res exportResult) error {
	if o.json {
		return json.NewEncoder(g.stdout).Encode(res)
	}
	for _, f := range res.Files {
		if _, err := fmt.Fprintln(g.stdout, f); err != nil {
			return err
		}
	}
	return nil
}

// newForgetCmd is forget (cmd/internal/forgetcmd) on the state directory
// and the terminal; its --export is export --all-history.
func newForgetCmd(g *globals) *cobra.Command {
	return forgetcmd.New(forgetcmd.Env{
		Stdout: g.stdout, Stderr: g.stderr, Confirm: g.confirm,
		Store: func() (*keystore.Store, error) { return openStateToRead(g.getenv) },
		Export: func(ctx context.Context, email, file, passwordFile string) error {
			quiet := *g // the paths written are forget's to print
			quiet.stdout = io.Discard
			return runExport(ctx, &quiet, &exportOptions{format: "p12", p12Profile: "modern", out: file, allHistory: true, p12PasswordFile: passwordFile}, email)
		},
	})
}
