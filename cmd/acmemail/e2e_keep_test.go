package main

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
)

func obtainCertJSON(t *testing.T, env map[string]string, args ...string) issuer.CertResult {
	t.Helper()
	r := runCLI(t, env, args...)
	var res issuer.CertResult
	if r.code != 0 {
		t.Fatalf("%v: exit %d\n%s", args, r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, r.stdout)
	}
	return res
}

// TestObtainKeepsCertificateNotDue: obtain for an address whose
// certificate is valid and not due keeps it, as certbot does: exit 0,
// "action": "kept", nothing written, no order; a run that would change
// what renew repeats keeps it too and records nothing; --force issues
// anyway, and a revoked certificate is replaced as before.
func TestObtainKeepsCertificateNotDue(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	first := obtainCertJSON(t, env, obtainArgs(w, "--json")...)
	if first.Action != issuer.ActionIssued || first.Serial == "" {
		t.Fatalf("first obtain: %+v, want issued", first)
	}
	before := stateSnapshot(t, env["ACMEMAIL_HOME"])
	requests := w.Stats().Requests

	kept := obtainCertJSON(t, env, obtainArgs(w, "--json")...)
	if kept.Action != issuer.ActionKept || kept.Serial != first.Serial || kept.Certificate != first.Certificate ||
		kept.Chain != first.Chain || kept.PKCS12 != first.PKCS12 || kept.RenewalDue == nil || !kept.RenewalDue.After(time.Now()) {
		t.Errorf("obtain again: %+v, want the first certificate kept (%+v)", kept, first)
	}
	if kept.ACMERequests != 0 || w.Stats().Requests != requests {
		t.Errorf("obtain again asked the CA: %d requests (%d served, %d before)", kept.ACMERequests, w.Stats().Requests, requests)
	}
	// A change of what renew repeats is not applied or recorded.
	r := runCLI(t, env, obtainArgs(w, "--key-type", "p256")...)
	if r.code != 0 || strings.TrimSpace(r.stdout) != first.PKCS12 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("obtain --key-type p256 again: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	if after := stateSnapshot(t, env["ACMEMAIL_HOME"]); !maps.Equal(before, after) {
		t.Errorf("keeping the certificate wrote to the state directory:\nbefore %v\nafter  %v", before, after)
	}

	forced := obtainCertJSON(t, env, obtainArgs(w, "--json", "--force", "--key-type", "p256")...)
	if forced.Action != issuer.ActionIssued || forced.Serial == first.Serial || forced.KeyType != "p256" {
		t.Errorf("obtain --force: %+v, want a new p256 certificate", forced)
	}
	if meta, _ := installed(t, env); acmemail.FormatSerialText(meta.Serial) != forced.Serial || profileOf(t, meta).KeyType != "p256" {
		t.Errorf("after --force the installed certificate is %s (%s), want %s", meta.Serial, profileOf(t, meta).KeyType, forced.Serial)
	}
	// Revoked: obtained as before.
	if r := runCLI(t, env, "revoke", "alice@example.test"); r.code != 0 {
		t.Fatalf("revoke: exit %d\n%s", r.code, r.stderr)
	}
	if again := obtainCertJSON(t, env, obtainArgs(w, "--json")...); again.Action != issuer.ActionIssued || again.Serial == forced.Serial {
		t.Errorf("obtain after revoke: %+v, want a new certificate", again)
	}
}

// TestObtainKeepsSplitPairOnlyWhole: a --split pair is kept only when both
// of its certificates are valid and not due; with the encryption one
// revoked, obtain --split orders the pair again.
func TestObtainKeepsSplitPairOnlyWhole(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	decode := func(r cliResult) splitResult {
		t.Helper()
		var res splitResult
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil {
			t.Fatalf("obtain --split: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		return res
	}
	first := decode(runCLI(t, env, obtainArgs(w, "--split", "--json")...))
	kept := decode(runCLI(t, env, obtainArgs(w, "--split", "--json")...))
	if first.Action != issuer.ActionIssued || kept.Action != issuer.ActionKept || kept.Signing.Serial != first.Signing.Serial ||
		kept.Encryption.Serial != first.Encryption.Serial || kept.Encryption.Action != issuer.ActionKept {
		t.Errorf("obtain --split again: %+v, want the pair %+v kept", kept, first)
	}
	if r := runCLI(t, env, "revoke", "--only", "encryption", "alice@example.test"); r.code != 0 {
		t.Fatalf("revoke --only encryption: exit %d\n%s", r.code, r.stderr)
	}
	again := decode(runCLI(t, env, obtainArgs(w, "--split", "--json")...))
	if again.Action != issuer.ActionIssued || again.Signing.Serial == first.Signing.Serial || again.Encryption.Serial == first.Encryption.Serial {
		t.Errorf("obtain --split with the encryption certificate revoked: %+v, want a new pair", again)
	}
}
