package servercmd

import (
	"errors"
	"time"

	"github.com/acmemail/acmemail/acmemail/server"
	"github.com/acmemail/acmemail/keystore"

	"github.com/acmemail/acmemail/cmd/internal/termout"
)

// Merge is a followed by b, for the one JSON array of acmemail renew and
// acmemail list (addresses first, then hosts).
func Merge[T, U any](a []T, b []U) []any {
	out := make([]any, 0, len(a)+len(b))
	for _, v := range a {
		out = append(out, v)
	}
	for _, v := range b {
		out = append(out, v)
	}
	return out
}

// WithStore is env using store, opened already (acmemail list opens the
// state directory read-only, and must not create or change it).
func (env Env) WithStore(store *keystore.Store) Env {
	env.OpenState = func() (*keystore.Store, error) { return store, nil }
	return env
}

// ListRows are acmemail list's rows of the managed server certificates,
// in its columns (HOST, SERIAL, NOT AFTER, RENEW AT, KEY, USAGE "server",
// STATE, CA; escaped), and their --json entries (as server list --json
// prints them). A host whose files cannot be read gets a "broken" row and
// is in the error.
func ListRows(env Env) (rows [][]string, entries []any, err error) {
	m, err := manager(env)
	if err != nil {
		return nil, nil, err
	}
	hosts, err := m.List()
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for _, h := range hosts {
		res, err := m.Load(h)
		if err != nil {
			errs = append(errs, err)
			rows = append(rows, []string{termout.Escape(h), "-", "-", "-", "-", "server", "broken", "-"})
			continue
		}
		j := resultJSON(res)
		row := []string{j.Host, j.Serial, j.NotAfter.Format(time.DateOnly), j.RenewAt.Format(time.DateOnly), string(res.Profile.KeyType), "server", state(res), j.Server}
		for i, f := range row {
			row[i] = termout.Escape(f)
		}
		rows, entries = append(rows, row), append(entries, j)
	}
	return rows, entries, errors.Join(errs...)
}

// state is list's STATE of a server certificate.
func state(res *server.Result) string {
	switch {
	case res.Revoked != nil:
		return "revoked"
	case !time.Now().Before(res.Meta.NotAfter):
		return "expired"
	}
	return "valid"
}
