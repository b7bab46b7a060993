package install

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// postfix installs into Postfix: main.cf through postconf.
type postfix struct {
	confDir string
	// chainFiles: Postfix 3.4 or newer has smtpd_tls_chain_files, which
	// takes the key and its chain in one setting.
	chainFiles bool
}

func (p *postfix) name() string { return "postfix" }

func (p *postfix) preflight(ctx context.Context, in *installer) error {
	p.confDir = in.path("/etc/postfix")
	if err := checkConfigPath(p.confDir); err != nil {
		return err
	}
	if fi, err := os.Stat(p.confDir + "/main.cf"); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("no Postfix configuration at %s/main.cf", p.confDir)
	}
	out, err := in.run(ctx, "postconf", "-c", p.confDir, "-d", "-h", "mail_version")
	if err != nil {
		return err
	}
	major, minor, err := parseVersion(string(out))
	if err != nil {
		return fmt.Errorf("postconf mail_version: %w", err)
	}
	p.chainFiles = major > 3 || major == 3 && minor >= 4
	for _, name := range []string{"smtpd_tls_chain_files", "smtpd_tls_cert_file"} {
		cur, err := in.run(ctx, "postconf", "-c", p.confDir, "-h", name)
		if err != nil {
			return err
		}
		if err := in.oneHost("postfix", name, string(cur)); err != nil {
			return err
		}
	}
	if in.opts.Reload {
		return in.need("postfix")
	}
	return nil
}

// settings are the main.cf parameters and values that point Postfix at key
// and chain.
func (p *postfix) settings(key, chain string) [][2]string {
	if p.chainFiles {
		return [][2]string{{"smtpd_tls_chain_files", key + ", " + chain}}
	}
	return [][2]string{{"smtpd_tls_cert_file", chain}, {"smtpd_tls_key_file", key}}
}

// legacyParams are the certificate settings smtpd_tls_chain_files
// replaces: Postfix ignores them when it is set, but warns at each smtpd
// start while any is, so they are commented out ("#name = value" stays in
// main.cf, for a roll back).
var legacyParams = []string{"smtpd_tls_cert_file", "smtpd_tls_key_file", "smtpd_tls_eccert_file", "smtpd_tls_eckey_file", "smtpd_tls_dcert_file", "smtpd_tls_dkey_file"}

func (p *postfix) configure(ctx context.Context, in *installer, key, chain string) error {
	if err := p.set(ctx, in, key, chain); err != nil {
		return err
	}
	if !p.chainFiles {
		return nil
	}
	for _, name := range legacyParams {
		// -n: only what main.cf itself sets.
		cur, err := in.run(ctx, "postconf", "-c", p.confDir, "-n", "-h", name)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) == "" {
			continue
		}
		if _, err := in.run(ctx, "postconf", "-c", p.confDir, "-#", name); err != nil {
			return err
		}
		in.log.Info("main.cf: commented out, smtpd_tls_chain_files replaces it", "target", "postfix", "parameter", name, "was", strings.TrimSpace(string(cur)))
	}
	return nil
}

func (p *postfix) set(ctx context.Context, in *installer, key, chain string) error {
	for _, s := range p.settings(key, chain) {
		cur, err := in.run(ctx, "postconf", "-c", p.confDir, "-h", s[0])
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) == s[1] {
			continue
		}
		if _, err := in.run(ctx, "postconf", "-c", p.confDir, "-e", s[0]+" = "+s[1]); err != nil {
			return err
		}
		in.log.Info("main.cf changed", "target", "postfix", "parameter", s[0], "value", s[1], "was", strings.TrimSpace(string(cur)))
		got, err := in.run(ctx, "postconf", "-c", p.confDir, "-h", s[0])
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(got)) != s[1] {
			return fmt.Errorf("postconf -e %s did not take: it reads %q", s[0], sanitize(strings.TrimSpace(string(got))))
		}
	}
	return nil
}

func (p *postfix) reload(ctx context.Context, in *installer) (bool, error) {
	if _, err := in.run(ctx, "postfix", "-c", p.confDir, "status"); err != nil {
		if exitCode(err) > 0 {
			return false, nil // "the Postfix mail system is not running"
		}
		return false, err
	}
	if _, err := in.run(ctx, "postfix", "-c", p.confDir, "reload"); err != nil {
		return false, err
	}
	return true, nil
}

// checkConfigPath refuses paths that the servers' configuration syntax
// cannot hold unquoted: Postfix splits lists at commas and white space.
func checkConfigPath(p string) error {
	if strings.ContainsAny(p, " \t\n\r,\"'<>\\$%{}#") {
		return fmt.Errorf("the path %q has characters Postfix or Dovecot would misread (white space, commas, quotes, $, %%, braces, #)", sanitize(p))
	}
	return nil
}
