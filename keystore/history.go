package keystore

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Generation is one certificate of an address with its key: the current
// one or an archived one (see [Store.History]).
type Generation struct {
	Key     crypto.Signer
	Chain   []*x509.Certificate // leaf first
	Meta    CertMeta            // from meta.json, or rebuilt from key and leaf
	Dir     string              // the directory holding key.pem and chain.pem
	Current bool                // the installed certificate, not an archived one
}

// History returns every certificate of email that has its key: the
// archived ones (certificates/<email>/archive/*/, oldest first) and the
// current one last. Certificates are archived, never deleted, because old
// mail stays encrypted to old keys. Archive entries without both a key and
// a chain (for instance a pending key that was never certified) are left
// out, and so is a generation seen before (the same leaf). It returns an
// error wrapping [ErrNotFound] if email has no certificate at all, and
// one wrapping an *[ArchiveEntryError] if an archived certificate cannot
// be read.
func (s *Store) History(email string) ([]Generation, error) {
	norm, dir, err := s.certDir(email, false)
	if err != nil {
		return nil, fmt.Errorf("certificate history: %w", err)
	}
	if ok, err := exists(dir); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("no certificate for %s in %s: %w", norm, dir, ErrNotFound)
		}
		return nil, fmt.Errorf("certificate history: %w", err)
	}
	unlock, err := lockForRead(dir)
	if err != nil {
		return nil, fmt.Errorf("certificate history of %s: %w", norm, err)
	}
	defer unlock()

	var gens []Generation
	seen := map[string]bool{}
	add := func(g Generation) {
		if !seen[string(g.Chain[0].Raw)] {
			seen[string(g.Chain[0].Raw)] = true
			gens = append(gens, g)
		}
	}
	archRoot := filepath.Join(dir, "archive")
	entries, err := os.ReadDir(archRoot)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("certificate history of %s: %w", norm, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names) // the names are UTC timestamps
	for _, name := range names {
		g, ok, err := readGeneration(norm, filepath.Join(archRoot, name))
		if err != nil {
			return nil, fmt.Errorf("certificate history of %s: %w", norm, &ArchiveEntryError{Dir: filepath.Join(archRoot, name), Err: err})
		}
		if ok {
			add(g)
		}
	}
	cur, ok, err := readGeneration(norm, dir)
	if err != nil {
		return nil, fmt.Errorf("certificate history of %s: %w", norm, err)
	}
	if ok {
		cur.Current = true
		// The current one comes last, even if an archive holds a copy.
		kept := gens[:0]
		for _, g := range gens {
			if !g.Chain[0].Equal(cur.Chain[0]) {
				kept = append(kept, g)
			}
		}
		gens = append(kept, cur)
	}
	if len(gens) == 0 {
		return nil, fmt.Errorf("certificate history: no certificate for %s in %s: %w", norm, dir, ErrNotFound)
	}
	return gens, nil
}

// ArchiveEntryError is History's error for an archived certificate whose
// files cannot be read: Dir is its directory in the archive.
type ArchiveEntryError struct {
	Dir string
	Err error
}

func (e *ArchiveEntryError) Error() string {
	return "the archived certificate in " + e.Dir + " cannot be read: " + e.Err.Error()
}
func (e *ArchiveEntryError) Unwrap() error { return e.Err }

// Current returns email's installed certificate with its key, as the last
// generation of [Store.History] but without reading the archive (a damaged
// archive does not keep the current certificate from being read), or an
// error wrapping [ErrNotFound] when there is none.
func (s *Store) Current(email string) (Generation, error) {
	norm, dir, err := s.certDir(email, false)
	if err != nil {
		return Generation{}, fmt.Errorf("current certificate: %w", err)
	}
	if ok, err := exists(dir); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("no certificate for %s in %s: %w", norm, dir, ErrNotFound)
		}
		return Generation{}, fmt.Errorf("current certificate: %w", err)
	}
	unlock, err := lockForRead(dir)
	if err != nil {
		return Generation{}, fmt.Errorf("current certificate of %s: %w", norm, err)
	}
	defer unlock()
	g, ok, err := readGeneration(norm, dir)
	if err != nil {
		return Generation{}, fmt.Errorf("current certificate of %s: %w", norm, err)
	}
	if !ok {
		return Generation{}, fmt.Errorf("current certificate: no certificate for %s in %s: %w", norm, dir, ErrNotFound)
	}
	g.Current = true
	return g, nil
}

// readGeneration reads key.pem, chain.pem and meta.json in dir. ok is
// false when the key or the chain is missing; a key that is not the
// leaf's is an error (the archive is damaged).
func readGeneration(norm, dir string) (Generation, bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, chainFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Generation{}, false, nil
	}
	if err != nil {
		return Generation{}, false, err
	}
	chain, err := ParseChain(data)
	if err != nil {
		return Generation{}, false, fmt.Errorf("%s: %w", filepath.Join(dir, chainFile), err)
	}
	key, err := readKey(filepath.Join(dir, keyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Generation{}, false, nil
	}
	if err != nil {
		return Generation{}, false, err
	}
	if !publicKeysEqual(key.Public(), chain[0].PublicKey) {
		return Generation{}, false, fmt.Errorf("%s does not hold the key of the certificate in %s", filepath.Join(dir, keyFile), filepath.Join(dir, chainFile))
	}
	g := Generation{Key: key, Chain: chain, Dir: dir}
	if data, err := os.ReadFile(filepath.Join(dir, metaFile)); err == nil && json.Unmarshal(data, &g.Meta) == nil {
		// meta.json as written
	} else {
		g.Meta = CertMeta{Email: norm}
		g.Meta.KeyType, _ = KeyTypeOf(key.Public())
		fillFromLeaf(&g.Meta, chain[0])
	}
	return g, true, nil
}
