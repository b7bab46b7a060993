package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/internal/tmpfstest"
)

const page = 4096 // what a tmpfs counts: each file takes at least one

// fullWorld is world with the state directory on a tmpfs of its own,
// returned too, that a test can fill.
func fullWorld(t *testing.T) (*sandbox.World, map[string]string, string) {
	t.Helper()
	fs := tmpfstest.Mount(t, 1<<20)
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	env["ACMEMAIL_HOME"] = filepath.Join(fs, "home")
	return w, env, fs
}

// keyRing collects the public keys of every certificate key a state
// directory holds (pending, installed, archived), so a test can check
// that none ever goes away.
type keyRing map[string]string // DER of the public key -> where it was first seen

func (k keyRing) collect(t *testing.T, home string) {
	t.Helper()
	filepath.WalkDir(filepath.Join(home, "certificates"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || (d.Name() != "key.pem" && d.Name() != "pending-key.pem") {
			return nil
		}
		if der := publicKeyDER(t, p); der != "" {
			if _, ok := k[der]; !ok {
				k[der] = strings.TrimPrefix(p, home)
			}
		}
		return nil
	})
}

// missing lists the keys of k that are nowhere in home now.
func (k keyRing) missing(t *testing.T, home string) []string {
	t.Helper()
	now := keyRing{}
	now.collect(t, home)
	var out []string
	for der, where := range k {
		if _, ok := now[der]; !ok {
			out = append(out, where)
		}
	}
	return out
}

func publicKeyDER(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("read %s: %v", path, err)
		return ""
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Errorf("%s holds no PEM block", path)
		return ""
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return ""
	}
	der, err := x509.MarshalPKIXPublicKey(key.(crypto.Signer).Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(der)
}

// TestDiskFullBeforeOrdering: with less free space than a certificate
// needs, obtain and renew refuse before ordering, and say so.
func TestDiskFullBeforeOrdering(t *testing.T) {
	w, env, fs := fullWorld(t)
	args := obtainArgs(w, "--key-type", "p256")
	unfill := tmpfstest.Fill(t, fs, 32<<10)
	r := runCLI(t, env, args...)
	unfill()
	if r.code != exitError || !strings.Contains(r.stderr, "KiB free; a certificate needs 64 KiB to be saved, so nothing was ordered") {
		t.Errorf("obtain with 32 KiB free: exit %d\n%s", r.code, r.stderr)
	}
	if s := w.Stats(); s.Orders != 0 {
		t.Fatalf("obtain with 32 KiB free made %d orders", s.Orders)
	}
	mustObtain(t, env, w, "--key-type", "p256")
	for _, leave := range []int64{12 << 10, 16 << 10} {
		unfill := tmpfstest.Fill(t, fs, leave)
		r := runCLI(t, env, "renew", "--force")
		unfill()
		if r.code != exitSomeFailed || !strings.Contains(r.stderr, "a certificate needs 64 KiB to be saved, so nothing was ordered") {
			t.Errorf("renew --force with %d KiB free: exit %d\n%s", leave>>10, r.code, r.stderr)
		}
	}
	if s := w.Stats(); s.Orders != 1 || s.RepliesReceived != 1 {
		t.Errorf("sandbox: %d orders, %d replies; want the obtain's 1 and 1", s.Orders, s.RepliesReceived)
	}
}

// TestDiskFullAfterIssuance: the disk fills up while an order runs (the
// free-space check passed), so that the write points after it fail in
// turn, for obtain and for renew --force. Once the reply is out, the
// order goes on; when the certificate then cannot be saved, the run says
// it was issued and keeps the order's state, and the rerun after space
// was freed downloads it from the same order: no new order, no new reply,
// no key lost. A disk that fills before the reply is recorded gives up
// the order without answering it.
func TestDiskFullAfterIssuance(t *testing.T) {
	created := func(st acmemail.OrderState) bool { return st.OrderURL != "" && len(st.Authorizations) == 0 }
	replied := func(st acmemail.OrderState) bool {
		return len(st.Authorizations) > 0 && st.Authorizations[0].ReplySent
	}
	cases := []struct {
		name  string
		renew bool
		at    func(acmemail.OrderState) bool
		leave int64
		// sameOrder: the rerun continues the first run's order; else
		// the first run gave it up before its reply went out.
		sameOrder bool
	}{
		// The challenge's claim, before the reply, cannot be written.
		{"created, full", false, created, 0, false},
		// The claim is written, the records of the mail sent and the
		// reply's state (then the install) are not. (In a renewal the
		// reply records take no page: they are links to replies/.record,
		// which the obtain made.)
		{"created, 1 page", false, created, 1 * page, true},
		{"created, 3 pages", false, created, 3 * page, true},
		{"created, 4 pages", false, created, 4 * page, true},
		// The install: chain, leaf, meta and PKCS#12 file fail in turn.
		{"replied, full", false, replied, 0, true},
		{"replied, 1 page", false, replied, 1 * page, true},
		{"replied, 2 pages", false, replied, 2 * page, true},
		{"replied, 3 pages", false, replied, 3 * page, true},
		{"renew, replied, full", true, replied, 0, true},
		{"renew, replied, 3 pages", true, replied, 3 * page, true},
		{"renew, created, 3 pages", true, created, 3 * page, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each has its own sandbox and tmpfs
			w, env, fs := fullWorld(t)
			home := env["ACMEMAIL_HOME"]
			args := obtainArgs(w, "--key-type", "p256")
			keys := keyRing{}
			if tc.renew {
				mustObtain(t, env, w, "--key-type", "p256")
				args = []string{"renew", "--force"}
			}
			keys.collect(t, home)
			var unfill func()
			var filled atomic.Bool
			ctx := context.WithValue(context.Background(), orderStateHookKey{}, func(st acmemail.OrderState) {
				if tc.at(st) && filled.CompareAndSwap(false, true) {
					keys.collect(t, home)
					unfill = tmpfstest.Fill(t, fs, tc.leave)
				}
			})
			before := w.Stats()
			r := runCLICtx(t, ctx, env, args...)
			if !filled.Load() {
				t.Fatalf("the disk was never filled: exit %d\n%s", r.code, r.stderr)
			}
			unfill()
			if r.code == exitOK {
				t.Fatalf("the run on a full disk succeeded:\n%s", r.stderr)
			}
			first := w.Stats()
			if first.RepliesReceived-before.RepliesReceived > 1 || first.Orders-before.Orders != 1 {
				t.Fatalf("first run: %d orders, %d replies; want 1 order and at most 1 reply\n%s", first.Orders-before.Orders, first.RepliesReceived-before.RepliesReceived, r.stderr)
			}
			var st acmemail.OrderState
			if tc.sameOrder {
				if first.CertificatesIssued-before.CertificatesIssued != 1 {
					t.Fatalf("first run: %d certificates issued, want 1\n%s", first.CertificatesIssued-before.CertificatesIssued, r.stderr)
				}
				for _, want := range []string{"the CA issued the certificate (serial ", "no space left on device", "free space on the disk of " + home + ", then run the same command again: it downloads this certificate from its order", "without a new order or reply"} {
					if !strings.Contains(r.stderr, want) {
						t.Errorf("the first run does not say %q:\n%s", want, r.stderr)
					}
				}
				data, err := openHome(t, env).ReadOrderState("alice@example.test")
				if err != nil {
					t.Fatalf("the order's state is gone after the failed save: %v\n%s", err, r.stderr)
				}
				json.Unmarshal(data, &st)
			} else if first.RepliesReceived != before.RepliesReceived {
				t.Fatalf("the order given up was answered")
			}
			keys.collect(t, home)

			r = runCLI(t, env, args...)
			if r.code != exitOK {
				t.Fatalf("rerun with space: exit %d\n%s", r.code, r.stderr)
			}
			again := w.Stats()
			if tc.sameOrder {
				if !tc.renew && !strings.Contains(r.stderr, "continuing the interrupted order "+st.OrderURL) { // renew is quiet
					t.Errorf("the rerun did not continue the order %s:\n%s", st.OrderURL, r.stderr)
				}
				if again.Orders != first.Orders || again.RepliesReceived != first.RepliesReceived || again.CertificatesIssued != first.CertificatesIssued {
					t.Errorf("the rerun made %d orders, sent %d replies and got %d certificates issued; want none",
						again.Orders-first.Orders, again.RepliesReceived-first.RepliesReceived, again.CertificatesIssued-first.CertificatesIssued)
				}
				if meta, _ := installed(t, env); meta.OrderURL != st.OrderURL {
					t.Errorf("the certificate installed is from order %s, want %s", meta.OrderURL, st.OrderURL)
				}
			}
			for ch, n := range again.RepliesPerChallenge {
				if n > 1 {
					t.Errorf("challenge %s got %d replies", ch, n)
				}
			}
			keys.collect(t, home)
			if lost := keys.missing(t, home); len(lost) > 0 {
				t.Errorf("keys lost: %v", lost)
			}
			checkInstalled(t, env)
			if _, err := openHome(t, env).ReadOrderState("alice@example.test"); err == nil {
				t.Errorf("the order's state is still there after the install")
			}
		})
	}
}

// checkInstalled: the installed certificate has its key and its PKCS#12
// file holds it.
func checkInstalled(t *testing.T, env map[string]string) {
	t.Helper()
	key, chain, meta, paths, err := openHome(t, env).LoadCertificate("alice@example.test")
	if err != nil {
		t.Fatalf("no certificate installed: %v", err)
	}
	if !samePublicKey(key.Public(), chain[0].PublicKey) {
		t.Errorf("key.pem is not the certificate's key")
	}
	data, err := os.ReadFile(paths.PKCS12)
	if err != nil {
		t.Fatalf("cert.p12: %v", err)
	}
	_, leaf, _, err := pkcs12.DecodeChain(data, env["ACMEMAIL_P12_PASSWORD"])
	if err != nil {
		t.Fatalf("cert.p12: %v", err)
	}
	if leaf.SerialNumber.Text(16) != meta.Serial {
		t.Errorf("cert.p12 holds serial %s, the installed certificate is %s", leaf.SerialNumber.Text(16), meta.Serial)
	}
}
