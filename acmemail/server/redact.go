package server

import (
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
)

// A DNS provider's error may quote its credentials: lego's DuckDNS client
// puts the token in the request URL, and a failed request's error quotes
// that URL; an API may echo what it was sent. acmemail's errors go to the
// terminal, cron mail and --json, so every provider error is passed through
// redactError first.

// redacted replaces a credential in an error's text.
const redacted = "REDACTED"

// secretWords mark an environment variable whose value may be a
// credential (CF_DNS_API_TOKEN, OVH_APPLICATION_SECRET, RFC2136_TSIG_SECRET,
// NAMECHEAP_API_KEY, HTTPREQ_PASSWORD, RFC2136_TSIG_FILE, ...). Matching a
// few names too many only hides a value that was not secret.
var secretWords = []string{"TOKEN", "SECRET", "KEY", "TSIG", "PASSWORD", "PASSWD", "PASS", "AUTH", "CREDENTIAL", "PRIVATE"}

func secretName(name string) bool {
	up := strings.ToUpper(name)
	if strings.HasSuffix(up, "TSIG_KEY") {
		return false // the TSIG key's name, which a BADKEY error needs; its secret is TSIG_SECRET
	}
	for _, w := range secretWords {
		if strings.Contains(up, w) {
			return true
		}
	}
	return false
}

// Limits on what is taken for a secret: shorter values would replace
// ordinary words; a *_FILE is read up to maxSecretFile bytes.
const (
	minSecret     = 6
	minFileWord   = 12
	maxSecretFile = 64 << 10
)

// secretValues returns the credentials that may appear in a provider's
// errors: the values of the environment variables named like credentials,
// and, for lego's NAME_FILE variants of them, the file's content and each
// of its words of minFileWord characters or more (a BIND key file holds
// the secret among other words). Longest first, so that a secret that
// contains another is replaced whole.
func secretValues(environ []string) []string {
	var out []string
	add := func(v string) {
		if len(v) >= minSecret && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !secretName(strings.TrimSuffix(name, "_FILE")) {
			continue
		}
		if !strings.HasSuffix(name, "_FILE") {
			add(strings.TrimSpace(value))
			continue
		}
		content := readSecretFile(value)
		add(strings.TrimSpace(content))
		for _, w := range strings.FieldsFunc(content, func(r rune) bool {
			return r <= ' ' || strings.ContainsRune(`"';{}`, r)
		}) {
			if len(w) >= minFileWord {
				add(w)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// readSecretFile reads a regular file named by a *_FILE variable, up to
// maxSecretFile bytes ("" for anything else: a FIFO is never opened).
func readSecretFile(path string) string {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, maxSecretFile))
	return string(b)
}

var (
	// urlSecretParam is a URL query parameter (or form field) whose name
	// says credential: token=..., api_key=..., apiSecret=...
	urlSecretParam = regexp.MustCompile(`(?i)([?&;](?:[a-z0-9_.-]*(?:token|key|secret|passw|pass|auth|sig|credential)[a-z0-9_.-]*)=)[^&;\s"'<>\])]+`)
	// urlUserinfo is the password of user:password@ in a URL.
	urlUserinfo = regexp.MustCompile(`(://[^/\s:@"'<>]*:)[^@/\s"'<>]+@`)
)

// redactedError is a provider error with its credentials replaced. It
// unwraps only to context.Canceled or context.DeadlineExceeded, when the
// original did, so that an interrupted run still reads as one; the rest
// of the original stays out of reach of anything that prints.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

// redactError returns err with the credentials of environ (see
// secretValues), in their plain, query-escaped and path-escaped forms,
// credential-named URL parameters and URL passwords replaced.
func redactError(err error, environ []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range secretValues(environ) {
		for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
			msg = strings.ReplaceAll(msg, form, redacted)
		}
	}
	msg = urlSecretParam.ReplaceAllString(msg, "${1}"+redacted)
	msg = urlUserinfo.ReplaceAllString(msg, "${1}"+redacted+"@")
	e := &redactedError{msg: msg}
	switch {
	case errors.Is(err, context.Canceled):
		e.cause = context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		e.cause = context.DeadlineExceeded
	}
	return e
}
