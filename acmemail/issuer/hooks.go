package issuer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/acmemail/acmemail/acmemail"
)

// hookSecretVar reports whether an ACMEMAIL_ variable may hold a secret,
// which a hook must never see.
func hookSecretVar(name string) bool {
	up := strings.ToUpper(name)
	if !strings.HasPrefix(up, "ACMEMAIL_") {
		return false
	}
	for _, w := range []string{"PASSWORD", "SECRET", "HMAC", "TOKEN", "KEY"} {
		if strings.Contains(up, w) {
			return true
		}
	}
	return false
}

// HookVars are the variables a deploy hook gets about its certificate.
var HookVars = []string{"ACMEMAIL_EMAIL", "ACMEMAIL_P12_PATH", "ACMEMAIL_CERT_PATH", "ACMEMAIL_CHAIN_PATH", "ACMEMAIL_KEY_PATH", "ACMEMAIL_NOT_AFTER", "ACMEMAIL_SERIAL", "ACMEMAIL_CERT_USAGE"}

func hookVar(name string) bool {
	for _, v := range HookVars {
		if v == name {
			return true
		}
	}
	return false
}

// HookEnv is environ without acmemail's secrets, plus the variables
// describing the new certificate.
func HookEnv(environ []string, res *Issued, p12Path string) []string {
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if hookSecretVar(name) || hookVar(name) {
			continue
		}
		env = append(env, kv)
	}
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	return append(env,
		"ACMEMAIL_EMAIL="+res.Meta.Email,
		"ACMEMAIL_P12_PATH="+abs(p12Path),
		"ACMEMAIL_CERT_PATH="+abs(res.Paths.Leaf),
		"ACMEMAIL_CHAIN_PATH="+abs(res.Paths.Chain),
		"ACMEMAIL_KEY_PATH="+abs(res.Paths.Key),
		"ACMEMAIL_NOT_AFTER="+res.Meta.NotAfter.UTC().Format(time.RFC3339),
		"ACMEMAIL_SERIAL="+acmemail.FormatSerialText(res.Meta.Serial),
		// Not ACMEMAIL_USAGE: that sets --usage of an acmemail the hook runs.
		"ACMEMAIL_CERT_USAGE="+res.Meta.Usage,
	)
}

// RunHook runs the deploy hook cmdline for res with the shell, one hook at
// a time (renew runs addresses concurrently; a hook that reloads a service
// should not race itself). Its output goes to HookOutput, a line at a time.
// A failure is returned as a *HookError that says the certificate is saved.
func (is *Issuer) RunHook(ctx context.Context, cmdline string, res *Issued, p12Path string) error {
	if cmdline == "" {
		return nil
	}
	is.hookMu.Lock()
	defer is.hookMu.Unlock()
	var out bytes.Buffer
	c := ShellCommand(ctx, cmdline)
	c.Env = HookEnv(is.environ(), res, p12Path)
	c.Stdin = nil
	c.Stdout, c.Stderr = &out, &out
	c.WaitDelay = 5 * time.Second
	err := c.Run()
	if out.Len() > 0 && is.HookOutput != nil {
		for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			fmt.Fprintf(is.HookOutput, "acmemail: deploy hook (%s%s): %s\n", res.Meta.Email, hookLabel(res, ", "), line)
		}
	}
	if err != nil {
		return &HookError{WithHint(fmt.Errorf("the deploy hook for %s failed: %w (the new certificate is saved in %s)", hookSubject(res), err, res.Paths.Dir),
			"fix the hook and run it by hand, or run the command again with --force to renew once more")}
	}
	return nil
}

// hookLabel names which certificate of an address a hook ran for, after
// sep: the signing or the encryption one; "" for a certificate for both.
func hookLabel(res *Issued, sep string) string {
	if w := UsageNoun(res.Meta.Usage); w != "" {
		return sep + w + " certificate"
	}
	return ""
}

// hookSubject is what a hook ran for: the address, or which of its
// certificates.
func hookSubject(res *Issued) string {
	if w := UsageNoun(res.Meta.Usage); w != "" {
		return "the " + w + " certificate of " + res.Meta.Email
	}
	return res.Meta.Email
}

// UsageNoun is "signing" or "encryption" for a certificate of one usage
// (the two of a split pair), "" for one for both.
func UsageNoun(usage string) string {
	switch usage {
	case "sign":
		return "signing"
	case "encrypt":
		return "encryption"
	}
	return ""
}

// shellWords are the shell's own commands and keywords: a hook that starts
// with one needs no program of that name.
var shellWords = map[string]bool{
	":": true, ".": true, "[": true, "{": true, "(": true, "!": true, "alias": true, "break": true, "case": true, "cd": true,
	"command": true, "continue": true, "echo": true, "eval": true, "exec": true, "exit": true, "export": true, "false": true,
	"for": true, "if": true, "printf": true, "read": true, "set": true, "test": true, "true": true, "umask": true,
	"unset": true, "until": true, "wait": true, "while": true, "call": true, "start": true,
}

// CheckHook reports a deploy hook that cannot run: the program its command
// line starts with is not found (on PATH, or at the path given), so the
// mistake shows before a certificate is ordered, not after. A command line
// that starts with shell syntax (a variable, a quote, a redirection) is not
// judged.
func CheckHook(cmdline string) error {
	fields := strings.Fields(cmdline)
	if len(fields) == 0 {
		return nil
	}
	prog := fields[0]
	if shellWords[prog] || strings.ContainsAny(prog, "$`'\"\\\\<>|&;()=*?~") {
		return nil
	}
	if _, err := exec.LookPath(prog); err != nil {
		return &SettingError{Setting: "deploy_hook", Err: fmt.Errorf("%q: %s is not a program that can be run (%v)", cmdline, prog, errors.Unwrap(err))}
	}
	return nil
}
