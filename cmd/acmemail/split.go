package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/cmd/internal/secret"
	"github.com/acmemail/acmemail/keystore"
)

// encryptSlot is where --split keeps the encryption certificate.
const encryptSlot = issuer.EncryptSlot

// splitResult is obtain --split --json's output.
type splitResult struct {
	Action     string            `json:"action"` // issued or kept (both)
	Signing    issuer.CertResult `json:"signing"`
	Encryption issuer.CertResult `json:"encryption"`
	PKCS12     string            `json:"pkcs12,omitempty"` // --out: both keys in one file
}

// printSplitResult prints what obtain --split saved: the two PKCS#12
// files, or with --out one file holding both keys (what a mail client
// imports in one go).
func printSplitResult(g *globals, o *obtainOptions, res *issuer.Obtained) error {
	sign, enc := res.Certs[0], res.Certs[1]
	prog := newProgress(g.stderr)
	if res.Profile.Server == "sandbox" {
		prog.Printf("the sandbox issued them; they are trusted by no mail client (its root is a test root)")
	}
	var both string
	if o.out != "" {
		pw, err := (&secret.Run{Sources: g.secretSources()}).P12Password(context.Background(), &res.Profile)
		if err != nil {
			return err
		}
		prof, _ := keystore.ParseP12Profile(res.Profile.P12Profile)
		entries := []keystore.P12Entry{{Key: sign.Key, Chain: sign.Chain}, {Key: enc.Key, Chain: enc.Chain}}
		data, err := keystore.EncodePKCS12Bundle(entries, pw, prof)
		if err != nil {
			return err
		}
		if err := writeNewFile(o.out, data); err != nil {
			return fmt.Errorf("write --out: %w (both certificates are saved in %s)", err, sign.Paths.Dir)
		}
		both, _ = filepath.Abs(o.out)
	}
	if o.json {
		return json.NewEncoder(g.stdout).Encode(splitResult{
			Action: issuer.ActionIssued, Signing: issuer.IssuedResult(res, sign, sign.Paths.PKCS12), Encryption: issuer.IssuedResult(res, enc, enc.Paths.PKCS12), PKCS12: both,
		})
	}
	lines := []string{sign.Paths.PKCS12, enc.Paths.PKCS12}
	if both != "" {
		lines = []string{both}
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(g.stdout, l); err != nil {
			return err
		}
	}
	return nil
}
