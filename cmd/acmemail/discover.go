package main

import (
	"context"
	"errors"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/keystore"
)

const discoveryHelp = `Without --imap and --smtp, acmemail finds the servers from EMAIL's domain: SRV
records (RFC 6186 and 8314: _imaps, _imap, _submissions, _submission), then the
domain's autoconfig document (over HTTPS, certificate verified), then the usual
names (imap., smtp., mail. of the domain and of its MX host) if they answer. Only
TLS and STARTTLS servers are used. What was found, and where, is printed, and
remembered for EMAIL in the state directory (mail/EMAIL.json): later runs and
renewals use it without looking again; --rediscover looks again.`

// discoverServers fills in the profile's servers when --imap and --smtp
// were not given (issuer.Discover), with the CLI's hints when none is found.
func discoverServers(ctx context.Context, g *globals, prog *progress, p *issuer.Profile, rediscover bool) error {
	stateDir, err := keystore.DefaultDir(g.getenv)
	if err != nil {
		return err
	}
	err = issuer.Discover(ctx, p, issuer.DiscoverOptions{StateDir: stateDir, Rediscover: rediscover, Progress: prog, Logger: g.logger()})
	var de *issuer.DiscoveryError
	if !errors.As(err, &de) {
		return settingErr(err)
	}
	hints := []string{
		"give the servers: --imap imaps://HOST:993 (or imap://HOST:143 for STARTTLS) and --smtp smtps://HOST:465 (or smtp://HOST:587)",
		"your provider's help pages name them, usually under \"IMAP settings\"",
	}
	if de.Unknown {
		hints = append([]string{"the DNS knows no MX, address or NS record for " + de.Domain + ": is the address spelled right?"}, hints...)
	}
	return withHint(usageErrorf("--imap and --smtp are needed: %w", de.Err), hints...)
}
