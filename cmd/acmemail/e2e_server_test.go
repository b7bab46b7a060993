package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestServerObtainSandbox: acmemail server obtain against the in-process
// sandbox, through lego's own rfc2136 provider (TSIG-signed UPDATEs to the
// sandbox's DNS), with dns-01 and the experimental dns-service-01: the
// certificate names the host and the SRVName, and list, show and export
// see it.
func TestServerObtainSandbox(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	env := map[string]string{"ACMEMAIL_HOME": home}
	r := runCLI(t, env, "server", "obtain", "--server", "sandbox", "--dns", "rfc2136", "--service", "imaps", "--service", "submissions",
		"--experimental-service-challenge", "--json", "mail.example.test")
	if r.code != 0 {
		t.Fatalf("server obtain: exit %d\n%s", r.code, r.stderr)
	}
	var got struct {
		Host  string   `json:"host"`
		Names []string `json:"names"`
		Chain string   `json:"chain_path"`
		Key   string   `json:"key_path"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	want := []string{"mail.example.test", "_imaps.mail.example.test", "_submissions.mail.example.test"}
	if got.Host != "mail.example.test" || !slices.Equal(got.Names, want) {
		t.Errorf("obtained %+v, want names %v", got, want)
	}
	if fi, err := os.Stat(got.Key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem: %v %v", fi, err)
	}
	r = runCLI(t, env, "server", "list", "--json")
	var list []map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list) != 1 || list[0]["host"] != "mail.example.test" {
		t.Errorf("server list --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "server", "show", "--json", "mail.example.test")
	var show map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &show) != nil || show["dns"] != "rfc2136" || show["server"] != "sandbox" {
		t.Errorf("server show --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	out := t.TempDir()
	if r = runCLI(t, env, "server", "export", "--out", out, "mail.example.test"); r.code != 0 {
		t.Errorf("server export: exit %d\n%s", r.code, r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(out, "mail.example.test.key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("exported key: %v %v", fi, err)
	}
	// A certificate of the in-process sandbox is not renewed (its CA is gone).
	if r = runCLI(t, env, "server", "renew", "--json"); r.code != 0 {
		t.Errorf("server renew of a sandbox certificate: exit %d\n%s", r.code, r.stderr)
	}
}

// TestServerBadCertificates: a certificate with a wrong name, without
// serverAuth, or with a key usage unfit for an EC key is refused: exit 5,
// nothing saved (only the pending key is there).
func TestServerBadCertificates(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"wrong-san", "no-server-auth", "changed-key-usage"} {
		t.Run(bad, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			r := runCLI(t, map[string]string{"ACMEMAIL_HOME": home}, "server", "obtain", "--server", "sandbox", "--dns", "rfc2136",
				"--service", "imaps", "--sandbox-bad-cert", bad, "--deploy-hook", "touch "+filepath.Join(home, "hook-ran"), "mail.example.test")
			if r.code != exitCA {
				t.Fatalf("exit %d, want %d\n%s", r.code, exitCA, r.stderr)
			}
			entries, _ := os.ReadDir(filepath.Join(home, "servers", "mail.example.test"))
			for _, e := range entries {
				if e.Name() != "pending-key.pem" && e.Name() != ".run-lock" && e.Name() != ".lock" {
					t.Errorf("a refused certificate left %s", e.Name())
				}
			}
			if _, err := os.Stat(filepath.Join(home, "hook-ran")); err == nil {
				t.Errorf("the deploy hook ran for a refused certificate")
			}
		})
	}
}
