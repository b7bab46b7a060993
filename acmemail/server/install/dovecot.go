package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// snippetName is the conf.d file Install writes for Dovecot: late in the
// order conf.d/*.conf is included in, after Debian's 10-ssl.conf.
const snippetName = "99-acmemail.conf"

// dovecot installs into Dovecot: a conf.d snippet, checked with doveconf.
type dovecot struct {
	conf, confD string
	// v24: Dovecot 2.4 renamed ssl_cert and ssl_key to
	// ssl_server_cert_file and ssl_server_key_file, which take a path
	// rather than "<path".
	v24 bool
}

func (d *dovecot) name() string { return "dovecot" }

func (d *dovecot) preflight(ctx context.Context, in *installer) error {
	d.conf = in.path("/etc/dovecot/dovecot.conf")
	d.confD = in.path("/etc/dovecot/conf.d")
	if err := checkConfigPath(filepath.Dir(d.conf)); err != nil {
		return err
	}
	if fi, err := os.Stat(d.conf); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("no Dovecot configuration at %s", d.conf)
	}
	if fi, err := os.Stat(d.confD); err != nil || !fi.IsDir() {
		return fmt.Errorf("no %s directory (Debian's dovecot.conf includes conf.d/*.conf)", d.confD)
	}
	out, err := in.run(ctx, "dovecot", "--version")
	if err != nil {
		return err
	}
	major, minor, err := parseVersion(string(out))
	if err != nil {
		return fmt.Errorf("dovecot --version: %w", err)
	}
	d.v24 = major > 2 || major == 2 && minor >= 4
	snippet, err := readSmall(filepath.Join(d.confD, snippetName), maxOutput)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := in.oneHost("dovecot", filepath.Join(d.confD, snippetName), string(snippet)); err != nil {
		return err
	}
	if _, err := in.run(ctx, "doveconf", "-c", d.conf, "-h", "base_dir"); err != nil {
		return err
	}
	if in.opts.Reload {
		return in.need("doveadm")
	}
	return nil
}

// snippet is the conf.d file's content for key and chain.
func (d *dovecot) snippet(host, key, chain string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by acmemail for the server certificate of %s; --install dovecot\n", host)
	b.WriteString("# rewrites it at each renewal. The key and chain are under the \"current\" link.\n")
	if d.v24 {
		fmt.Fprintf(&b, "ssl_server_cert_file = %s\nssl_server_key_file = %s\n", chain, key)
	} else {
		fmt.Fprintf(&b, "ssl_cert = <%s\nssl_key = <%s\n", chain, key)
	}
	return b.Bytes()
}

// effective are the settings doveconf must report once the snippet is in,
// with the flag that shows them.
func (d *dovecot) effective(key, chain string) [][3]string {
	if d.v24 {
		return [][3]string{{"ssl_server_cert_file", chain}, {"ssl_server_key_file", key}}
	}
	return [][3]string{{"ssl_cert", "<" + chain}, {"ssl_key", "<" + key}}
}

func (d *dovecot) configure(ctx context.Context, in *installer, key, chain string) error {
	path := filepath.Join(d.confD, snippetName)
	want := d.snippet(in.cert.host, key, chain)
	old, err := readSmall(path, maxOutput)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	existed := err == nil
	if !existed || !bytes.Equal(old, want) {
		if err := writeFileAtomic(path, want, 0o644); err != nil {
			return err
		}
		in.log.Info("configuration written", "target", "dovecot", "file", path)
	}
	if err := d.verify(ctx, in, key, chain); err != nil {
		// Put back what was there: a snippet that does not take effect
		// (or breaks the configuration) must not stay.
		if existed {
			writeFileAtomic(path, old, 0o644)
		} else {
			os.Remove(path)
		}
		return err
	}
	return nil
}

// verify asks doveconf whether the snippet's settings are the effective
// ones: dovecot.conf must include conf.d/*.conf, and no later file may set
// them again.
func (d *dovecot) verify(ctx context.Context, in *installer, key, chain string) error {
	for _, s := range d.effective(key, chain) {
		// -P shows ssl_key, which doveconf otherwise hides; it prints
		// "<path", not the key (that would take -x).
		out, err := in.run(ctx, "doveconf", "-P", "-c", d.conf, "-h", s[0])
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(string(out)); got != s[1] {
			return fmt.Errorf("after writing %s, doveconf reports %s = %q: does %s include conf.d/*.conf after its own ssl settings, and no later file set %s?",
				filepath.Join(d.confD, snippetName), s[0], sanitize(got), d.conf, s[0])
		}
	}
	return nil
}

func (d *dovecot) reload(ctx context.Context, in *installer) (bool, error) {
	out, err := in.run(ctx, "doveconf", "-c", d.conf, "-h", "base_dir")
	if err != nil {
		return false, err
	}
	baseDir := strings.TrimSpace(string(out))
	if !running(filepath.Join(baseDir, "master.pid")) {
		return false, nil
	}
	if _, err := in.run(ctx, "doveadm", "-c", d.conf, "reload"); err != nil {
		return false, err
	}
	return true, nil
}

// running reports whether the process in pidFile is alive.
func running(pidFile string) bool {
	data, err := readSmall(pidFile, 64)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return false
	}
	return processAlive(pid)
}
