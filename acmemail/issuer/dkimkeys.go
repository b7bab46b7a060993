package issuer

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acmemail/acmemail/acmemail"
)

// Bounds of the DKIM key records a RenewAll keeps.
const (
	// dkimKeyTTL is how long a record is used before it is asked for
	// again. The lookup does not tell the record's own TTL; DKIM key
	// records are commonly published with an hour or more, and a key
	// replaced within this time is caught by keyVerifier's second try.
	dkimKeyTTL = 5 * time.Minute
	// maxDKIMKeys is how many names are kept: the names come from the
	// signatures of mails, which anyone can write.
	maxDKIMKeys = 64
)

// dkimKeys are the DKIM key records (TXT at selector._domainkey.domain)
// that the renewals of one RenewAll looked up. Their challenge mails come
// from one CA, signed with one key: a run of a hundred renewals asks DNS
// once instead of once per mail, and a mail that arrives after the first
// is checked without waiting for a resolver. Lookups of one name made at
// the same time share one query. Only answers are kept, for dkimKeyTTL at
// most; a failed lookup (NXDOMAIN among them) is made again next time.
// Records are kept per resolver (a profile's dns_resolver, or the
// system's): what one profile's resolver says is not trusted for another.
type dkimKeys struct {
	mu      sync.Mutex
	entries map[dkimKeyName]*dkimKeyEntry
	now     func() time.Time // nil: time.Now
}

// dkimKeyName is a record's name (lower case, no final dot) and the
// resolver it was asked of ("": the system's).
type dkimKeyName struct{ resolver, name string }

type dkimKeyEntry struct {
	ready chan struct{} // closed when the lookup has ended
	txt   []string      // set before ready is closed
	err   error
	at    time.Time
}

func (c *dkimKeys) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// get returns the records at name, looked up with lookup (which asks
// resolver) unless kept (fresh: looked up in any case, and kept for the
// next ones). cached says that they were kept from an earlier lookup.
func (c *dkimKeys) get(ctx context.Context, resolver, name string, lookup func(context.Context, string) ([]string, error), fresh bool) (txt []string, cached bool, err error) {
	key := dkimKeyName{resolver, strings.TrimSuffix(strings.ToLower(name), ".")}
	c.mu.Lock()
	if e := c.entries[key]; e != nil && !fresh {
		select {
		case <-e.ready:
			if e.err == nil && c.clock().Sub(e.at) < dkimKeyTTL {
				c.mu.Unlock()
				return e.txt, true, nil
			}
		default:
			// Another renewal is asking: its answer is as fresh as ours.
			c.mu.Unlock()
			select {
			case <-e.ready:
			case <-ctx.Done():
				return nil, false, ctx.Err()
			}
			if e.err == nil {
				return e.txt, false, nil
			}
			// Its lookup failed (perhaps its own deadline): ask anew,
			// without keeping the answer, as if there were no cache.
			txt, err := lookup(ctx, name)
			return txt, false, err
		}
	}
	e := &dkimKeyEntry{ready: make(chan struct{})}
	if c.entries == nil {
		c.entries = map[dkimKeyName]*dkimKeyEntry{}
	}
	if len(c.entries) >= maxDKIMKeys {
		c.sweep()
	}
	_, replaces := c.entries[key]
	keep := replaces || len(c.entries) < maxDKIMKeys
	if keep {
		c.entries[key] = e
	}
	c.mu.Unlock()

	txt, err = lookup(ctx, name)
	e.txt, e.err, e.at = txt, err, c.clock()
	close(e.ready)
	if err != nil && keep {
		c.mu.Lock()
		if c.entries[key] == e {
			delete(c.entries, key)
		}
		c.mu.Unlock()
	}
	return txt, false, err
}

// sweep drops the entries no longer used: failed or too old. c.mu is
// held.
func (c *dkimKeys) sweep() {
	now := c.clock()
	for k, e := range c.entries {
		select {
		case <-e.ready:
			if e.err != nil || now.Sub(e.at) >= dkimKeyTTL {
				delete(c.entries, k)
			}
		default:
		}
	}
}

// keyVerifier is a MailVerifier whose DKIM key lookups go through keys.
// A mail refused while a kept record was used is checked once more with
// the records looked up afresh: a CA may have replaced its key under the
// same selector since the record was kept. So the cache never refuses a
// mail that the verifier alone would accept. What it accepts was verified
// by the verifier itself, with a record at most dkimKeyTTL old: a key the
// CA withdrew within that time still verifies, as it would in a resolver's
// cache.
type keyVerifier struct {
	v        acmemail.MailVerifier // its LookupTXT is the run's (nil: the system resolver)
	resolver string                // what v.LookupTXT asks: the profile's dns_resolver ("": the system's)
	keys     *dkimKeys
}

func (k *keyVerifier) Verify(ctx context.Context, raw []byte, from string) (*acmemail.Verified, error) {
	lookup := k.v.LookupTXT
	if lookup == nil {
		lookup = net.DefaultResolver.LookupTXT
	}
	var usedKept atomic.Bool
	v := k.v
	v.LookupTXT = func(ctx context.Context, name string) ([]string, error) {
		txt, cached, err := k.keys.get(ctx, k.resolver, name, lookup, false)
		if cached {
			usedKept.Store(true)
		}
		return txt, err
	}
	res, err := v.Verify(ctx, raw, from)
	if err == nil || !usedKept.Load() {
		return res, err
	}
	v.LookupTXT = func(ctx context.Context, name string) ([]string, error) {
		txt, _, err := k.keys.get(ctx, k.resolver, name, lookup, true)
		return txt, err
	}
	return v.Verify(ctx, raw, from)
}
