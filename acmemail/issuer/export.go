package issuer

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// Export is what an address's certificates with their keys are exported
// from: for a PKCS#12 file Generations, for PEM files Current and
// Encryption.
type Export struct {
	Email      string
	Current    keystore.Generation  // the address's current certificate
	Encryption *keystore.Generation // the current encryption certificate of a split pair, or nil
	// Generations go into a PKCS#12 file: the current certificate (with
	// the history, every archived one before it), then likewise those of
	// the encryption slot of a split pair.
	Generations []keystore.Generation
}

// ErrArchivedOnly: an address has archived certificates but no current
// one.
var ErrArchivedOnly = errors.New("archived certificates but no current one")

// AlsoAddressError: an address has no certificate of its own, but is one
// more address (Also) of Primary's certificate.
type AlsoAddressError struct {
	Email, Primary string
	Err            error
}

func (e *AlsoAddressError) Error() string {
	return fmt.Sprintf("%s has no certificate of its own: %v", e.Email, e.Err)
}
func (e *AlsoAddressError) Unwrap() error { return e.Err }

// ExistsError: a file an export would write exists; it is never
// overwritten.
type ExistsError struct{ Path string }

func (e *ExistsError) Error() string { return e.Path + " exists; acmemail never overwrites it" }
func (e *ExistsError) Unwrap() error { return fs.ErrExist }

// ExportOf gathers the certificates of email to export: the current one
// and the current encryption certificate of a split pair, with history
// also every archived one. An address without a certificate is an
// *AlsoAddressError when another address's certificate names it, else
// ErrNotManaged; one without a current certificate is ErrArchivedOnly.
//
// Without history the archive is not read, so an archived certificate
// that cannot be read does not keep the current one from being exported;
// with it, that is an error wrapping a *keystore.ArchiveEntryError
// (failing rather than leaving a key out: the history is for reading old
// mail, and a file without one of its keys would look complete).
func ExportOf(store *keystore.Store, email string, history bool) (*Export, error) {
	gens, err := generations(store, email, history)
	if errors.Is(err, keystore.ErrNotFound) {
		if primary := certificateHolding(store, email); primary != "" {
			return nil, &AlsoAddressError{Email: email, Primary: primary, Err: err}
		}
		return nil, fmt.Errorf("%s: %w", email, ErrNotManaged)
	}
	if err != nil {
		return nil, err
	}
	cur := gens[len(gens)-1]
	if !cur.Current {
		return nil, fmt.Errorf("%s: %w", email, ErrArchivedOnly)
	}
	if !history {
		gens = gens[len(gens)-1:]
	}
	e := &Export{Email: email, Current: cur}
	if encStore, err := store.Slot(EncryptSlot); err == nil {
		encGens, err := generations(encStore, email, history)
		switch {
		case err == nil:
			if c := encGens[len(encGens)-1]; c.Current {
				e.Encryption = &c
			}
			if !history {
				encGens = encGens[len(encGens)-1:]
				if e.Encryption == nil {
					encGens = nil
				}
			}
			gens = append(gens, encGens...)
		case !errors.Is(err, keystore.ErrNotFound):
			return nil, err
		}
	}
	e.Generations = gens
	return e, nil
}

// generations are email's certificates to export: with history all of
// them (keystore.Store.History), else the current one alone, read without
// the archive; the archive is read only to tell an address with archived
// certificates but no current one from one without any.
func generations(store *keystore.Store, email string, history bool) ([]keystore.Generation, error) {
	if !history {
		cur, err := store.Current(email)
		if !errors.Is(err, keystore.ErrNotFound) {
			if err != nil {
				return nil, err
			}
			return []keystore.Generation{cur}, nil
		}
	}
	return store.History(email)
}

// Serials are those of the leaves in the PKCS#12 file, in its order.
func (e *Export) Serials() []string {
	var out []string
	for _, g := range e.Generations {
		out = append(out, acmemail.FormatSerialText(g.Meta.Serial))
	}
	return out
}

// PKCS12 is the PKCS#12 file of the Generations, each key with its
// certificate and chain.
func (e *Export) PKCS12(password string, profile keystore.P12Profile) ([]byte, error) {
	entries := make([]keystore.P12Entry, len(e.Generations))
	for i, g := range e.Generations {
		entries[i] = keystore.P12Entry{Key: g.Key, Chain: g.Chain}
	}
	return keystore.EncodePKCS12Bundle(entries, password, profile)
}

// PEMFilesPerCert is how many files WritePEM writes per certificate.
const PEMFilesPerCert = 4

// WritePEM writes EMAIL.key.pem (PKCS#8, not encrypted, 0600),
// EMAIL.cert.pem (the leaf), EMAIL.chain.pem (the leaf, then its issuers,
// as chain.pem in the state directory) and EMAIL.ca.pem (the CA
// certificates alone, issuer first) into dir, and likewise
// EMAIL.encrypt.*.pem for the encryption certificate of a split pair. It
// refuses with an *ExistsError before writing anything when one of them
// exists, and returns their absolute paths, PEMFilesPerCert per
// certificate in that order.
func (e *Export) WritePEM(dir string) ([]string, error) {
	type set struct {
		prefix string
		gen    keystore.Generation
	}
	sets := []set{{e.Email, e.Current}}
	if e.Encryption != nil {
		sets = append(sets, set{e.Email + ".encrypt", *e.Encryption})
	}
	type file struct {
		path string
		data []byte
		perm os.FileMode
	}
	var files []file
	for _, s := range sets {
		keyPEM, err := keystore.MarshalPrivateKey(s.gen.Key)
		if err != nil {
			return nil, err
		}
		var certPEM, caPEM bytes.Buffer
		pem.Encode(&certPEM, &pem.Block{Type: "CERTIFICATE", Bytes: s.gen.Chain[0].Raw})
		for _, c := range s.gen.Chain[1:] {
			pem.Encode(&caPEM, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
		chainPEM := append(slices.Clip(certPEM.Bytes()), caPEM.Bytes()...)
		for _, f := range []file{
			{s.prefix + ".key.pem", keyPEM, 0o600},
			{s.prefix + ".cert.pem", certPEM.Bytes(), 0o644},
			{s.prefix + ".chain.pem", chainPEM, 0o644},
			{s.prefix + ".ca.pem", caPEM.Bytes(), 0o644},
		} {
			p := filepath.Join(dir, f.path)
			if _, err := os.Lstat(p); err == nil {
				return nil, &ExistsError{Path: p}
			}
			if abs, err := filepath.Abs(p); err == nil {
				p = abs
			}
			f.path = p
			files = append(files, f)
		}
	}
	var paths []string
	for _, f := range files {
		if err := WriteNewFile(f.path, f.data, f.perm); err != nil {
			return nil, fmt.Errorf("write %s: %w", f.path, err)
		}
		paths = append(paths, f.path)
	}
	return paths, nil
}

// WriteNewFile creates path exclusively with perm (never replacing a file
// or following a symlink there) and writes data; a private file (0600) is
// synced too.
func WriteNewFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && perm == 0o600 {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// certificateHolding returns the managed address whose certificate also
// names email (one more address of it), or "".
func certificateHolding(store *keystore.Store, email string) string {
	list, err := store.ListCertificates()
	if err != nil {
		return ""
	}
	for _, addr := range list {
		_, _, meta, _, err := store.LoadCertificate(addr)
		if err != nil || meta.Also == "" {
			continue
		}
		for _, a := range strings.Split(meta.Also, ",") {
			if strings.EqualFold(a, email) {
				return addr
			}
		}
	}
	return ""
}
