// Package install puts a server certificate into the mail servers that use
// it, Postfix and Dovecot, and reloads them: what an admin otherwise glues
// to certbot or lego by hand.
//
// # Where the files go
//
// Each target gets its own copy of the key and chain, in a new directory per
// installation, and a symbolic link "current" that is switched to it in one
// rename, so a server process that starts in the middle of an installation
// reads the old pair or the new one, never the new key with the old chain:
//
//	/etc/acmemail/postfix/mail.example.com/
//	    current -> 20261206T052233Z-1a2b3c4d
//	    20261206T052233Z-1a2b3c4d/key.pem     0600 root:root
//	    20261206T052233Z-1a2b3c4d/chain.pem   0644 root:root
//	    20261101T031500Z-99aa00bb/...         the previous one, kept for a roll back
//
// The newest [KeepVersions] directories are kept. Postfix and Dovecot both
// read their keys as root before they drop privileges, so the key is
// readable by root only (Debian's ssl-cert group is not needed).
//
// # What is configured
//
// Postfix (3.4 or newer): smtpd_tls_chain_files = KEY, CHAIN in main.cf,
// through postconf -e, only when it is not that already; older Postfix:
// smtpd_tls_cert_file and smtpd_tls_key_file. Dovecot: conf.d/99-acmemail.conf
// with ssl_cert = <CHAIN and ssl_key = <KEY (2.3), or ssl_server_cert_file
// and ssl_server_key_file (2.4), checked with doveconf to be the effective
// setting. Then postfix reload and doveadm reload.
//
// # Failures
//
// Nothing is written when a target is unknown or a check before writing
// fails (the certificate does not match the key or the host, the server's
// configuration is not found, a program is missing, not root). After that
// each target is done on its own: a failure (of writing, configuring or
// reloading) is a [*TargetError] in the returned error, and the files
// already in place stay, with the previous version next to them.
package install

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Targets are the servers Install knows, in the order it installs them.
var Targets = []string{"postfix", "dovecot"}

// KeepVersions is how many installed versions are kept per target and
// host: the current one and the ones before it, for a roll back.
const KeepVersions = 3

// Cert is the certificate to install.
type Cert struct {
	// Host is the server's host name (the certificate's dNSName).
	Host string
	// KeyPEM is the private key, ChainPEM the leaf certificate followed by
	// its intermediates.
	KeyPEM, ChainPEM []byte
	// NotAfter is the leaf's expiry; zero means read it from the leaf.
	NotAfter time.Time
}

// Options say where to install and whether to reload.
type Options struct {
	// Root is prefixed to every path Install reads or writes, and the
	// servers are told the prefixed paths: "" (or "/") is the system
	// itself; a directory holds etc/postfix, etc/dovecot for a server in a
	// chroot, a container's root, or a test.
	Root string
	// Reload reloads each server after its files and configuration are in
	// place (a server that is not running is left alone: it reads them when
	// it starts).
	Reload bool
	// Logger receives what is done, one record per step; nil logs nothing.
	Logger *slog.Logger

	// run runs a program and returns its standard output; nil is exec.
	// Tests replace it.
	run runFunc
	// now is the clock; nil is time.Now.
	now func() time.Time
	// euid is the effective user id; nil is os.Geteuid.
	euid func() int
	// look finds a program; nil is exec.LookPath.
	look func(string) (string, error)
}

// Result is what Install did for one target.
type Result struct {
	Target string
	// KeyPath and ChainPath are the paths the server was configured with
	// (through the "current" link), with Root prefixed.
	KeyPath, ChainPath string
	// Reloaded says the server was reloaded.
	Reloaded bool
	// Version is the directory the files were written to; Previous the
	// one "current" pointed to before, kept for a roll back ("" if none).
	Version, Previous string
}

// TargetError is the failure of one target after the checks passed.
type TargetError struct {
	Target string
	// Stage is "write", "configure" or "reload".
	Stage string
	Err   error
}

func (e *TargetError) Error() string {
	switch e.Stage {
	case "reload":
		return fmt.Sprintf("install into %s: the certificate is in place but the reload failed: %v", e.Target, e.Err)
	case "configure":
		return fmt.Sprintf("install into %s: the files are written but configuring %s failed: %v", e.Target, e.Target, e.Err)
	}
	return fmt.Sprintf("install into %s: %v", e.Target, e.Err)
}

func (e *TargetError) Unwrap() error { return e.Err }

// ErrUnknownTarget is wrapped by the error for a target Install does not know.
var ErrUnknownTarget = errors.New("unknown install target")

// ParseTargets splits a comma-separated --install value into known
// targets, without duplicates, in the order given.
func ParseTargets(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if !slices.Contains(Targets, f) {
			return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownTarget, f, strings.Join(Targets, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no install target in %q (known: %s)", s, strings.Join(Targets, ", "))
	}
	return out, nil
}

// target is one server Install knows.
type target interface {
	name() string
	// preflight checks, without writing, that the target can be installed
	// into: its configuration is there, its programs are found.
	preflight(ctx context.Context, in *installer) error
	// configure points the server at key and chain (idempotent).
	configure(ctx context.Context, in *installer, key, chain string) error
	// reload reloads the server; false without an error when it is not
	// running.
	reload(ctx context.Context, in *installer) (bool, error)
}

// installer is one Install call.
type installer struct {
	root string
	opts Options
	log  *slog.Logger
	run  runFunc
	look func(string) (string, error)
	now  func() time.Time
	cert *parsedCert
}

// need checks that the programs are installed.
func (in *installer) need(progs ...string) error {
	for _, p := range progs {
		if _, err := in.look(p); err != nil {
			return fmt.Errorf("%s is not installed (not found on PATH)", p)
		}
	}
	return nil
}

// oneHost refuses to point target at this certificate when its
// configuration (conf, from where) names the files acmemail installed for
// another host: --install serves one host per server, and two hosts would
// take turns at each renewal.
func (in *installer) oneHost(target, where, conf string) error {
	base := in.path("/etc/acmemail/"+target) + string(filepath.Separator)
	for _, f := range strings.FieldsFunc(conf, func(r rune) bool { return r <= ' ' || strings.ContainsRune(",<=\"'", r) }) {
		rest, ok := strings.CutPrefix(f, base)
		if !ok {
			continue
		}
		if h, _, _ := strings.Cut(rest, string(filepath.Separator)); h != "" && h != in.cert.host {
			return fmt.Errorf("%s already serves the certificate acmemail installed for %s (%s); --install serves one host per server: "+
				"use a deploy hook for %s (examples/deploy-hooks), or point %s away from %s first", target, sanitize(h), sanitize(where), in.cert.host, target, sanitize(h))
		}
	}
	return nil
}

// path is p (absolute, slash-separated) under the root.
func (in *installer) path(p string) string {
	if in.root == "" {
		return filepath.FromSlash(p)
	}
	return filepath.Join(in.root, filepath.FromSlash(p))
}

// Install installs c into each of targets, in the order of [Targets]. See
// the package documentation for what it writes and how it fails. The
// results are those of the targets whose files were written, also when the
// error is not nil.
func Install(ctx context.Context, targets []string, c Cert, opts Options) ([]Result, error) {
	if len(targets) == 0 {
		return nil, errors.New("install: no target")
	}
	var ts []target
	for _, name := range Targets {
		if slices.Contains(targets, name) {
			ts = append(ts, newTarget(name))
		}
	}
	for _, name := range targets {
		if !slices.Contains(Targets, name) {
			return nil, fmt.Errorf("install: %w %q (known: %s)", ErrUnknownTarget, name, strings.Join(Targets, ", "))
		}
	}
	if runtime.GOOS == "windows" {
		return nil, errors.New("install: Postfix and Dovecot are installed into on Unix systems only")
	}
	in := &installer{opts: opts, log: opts.Logger, run: opts.run, look: opts.look, now: opts.now}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.run == nil {
		in.run = execRun
	}
	if in.look == nil {
		in.look = exec.LookPath
	}
	if in.now == nil {
		in.now = time.Now
	}
	euid := os.Geteuid
	if opts.euid != nil {
		euid = opts.euid
	}
	if opts.Root != "" && filepath.Clean(opts.Root) != string(filepath.Separator) {
		root, err := filepath.Abs(opts.Root)
		if err != nil {
			return nil, fmt.Errorf("install: root %s: %w", opts.Root, err)
		}
		if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("install: root %s is not a directory", opts.Root)
		}
		in.root = root
	}
	if euid() != 0 {
		return nil, errors.New("install: installing into Postfix and Dovecot needs root (their keys are root's and their reloads too)")
	}
	pc, err := checkCert(c, in.now())
	if err != nil {
		return nil, fmt.Errorf("install: refusing the certificate for %s: %w", sanitize(c.Host), err)
	}
	in.cert = pc
	for _, t := range ts {
		if err := t.preflight(ctx, in); err != nil {
			return nil, fmt.Errorf("install: %s: %w (nothing was written)", t.name(), err)
		}
	}

	var results []Result
	var errs []error
	for _, t := range ts {
		res, err := in.installOne(ctx, t)
		if res != nil {
			results = append(results, *res)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return results, errors.Join(errs...)
}

// installOne writes, configures and reloads one target.
func (in *installer) installOne(ctx context.Context, t target) (*Result, error) {
	name := t.name()
	dir := in.path("/etc/acmemail/" + name + "/" + in.cert.host)
	v, err := writeVersion(dir, in.cert, in.now())
	if err != nil {
		return nil, &TargetError{Target: name, Stage: "write", Err: err}
	}
	res := &Result{
		Target:    name,
		KeyPath:   filepath.Join(dir, currentLink, keyFile),
		ChainPath: filepath.Join(dir, currentLink, chainFile),
		Version:   v.dir,
		Previous:  v.previous,
	}
	if v.reused {
		in.log.Info("the certificate is already installed", "target", name, "version", v.dir)
	} else {
		in.log.Info("certificate written", "target", name, "version", v.dir, "previous", v.previous)
	}
	if err := t.configure(ctx, in, res.KeyPath, res.ChainPath); err != nil {
		return res, &TargetError{Target: name, Stage: "configure", Err: err}
	}
	if !in.opts.Reload {
		return res, nil
	}
	ok, err := t.reload(ctx, in)
	if err != nil {
		return res, &TargetError{Target: name, Stage: "reload", Err: err}
	}
	res.Reloaded = ok
	if ok {
		in.log.Info("reloaded", "target", name)
	} else {
		in.log.Warn("not running, not reloaded: it reads the certificate when it starts", "target", name)
	}
	return res, nil
}

func newTarget(name string) target {
	switch name {
	case "postfix":
		return &postfix{}
	case "dovecot":
		return &dovecot{}
	}
	panic("install: no target " + name)
}

// sanitize makes s safe to show on a terminal: printable ASCII only.
func sanitize(s string) string {
	const max = 256
	var b strings.Builder
	for i, r := range s {
		if i >= max {
			b.WriteString("...")
			break
		}
		if r < 0x20 || r > 0x7e {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
