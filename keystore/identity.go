package keystore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DirContents is what a certificate directory holds, told by the names
// of its entries alone (no file is read): see [Store.Contents].
type DirContents int

const (
	// NoCertificateFiles: no directory, or nothing in it but lock files
	// (a run that stopped before it made a key) and slots.
	NoCertificateFiles DirContents = iota
	// PendingOnly: only what a first obtain makes before it has a
	// certificate, a pending key (pending-key.pem) or a pending order
	// (order.json): one that failed or was interrupted.
	PendingOnly
	// CertificateFiles: anything of an installed certificate (key.pem,
	// chain.pem, meta.json, cert.p12, archive/, ...) or anything else.
	// [Store.LoadCertificate] tells whether the files are whole.
	CertificateFiles
)

// pendingOnlyFile reports whether name is made by a first obtain before
// it has a certificate.
func pendingOnlyFile(name string) bool {
	return name == pendingKeyFile || name == orderFile || strings.HasPrefix(name, pendingKeyFile+corruptInfix)
}

// Contents tells what email's certificate directory holds, by the names
// in it (nothing is parsed): to tell an address whose first certificate
// is still to come, or that has nothing, from one whose certificate
// files are missing or damaged when [Store.LoadCertificate] fails. It
// does not look into the slots (see [Store.Slot]): a slot's view does.
func (s *Store) Contents(email string) (DirContents, error) {
	_, dir, err := s.certDir(email, false)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return NoCertificateFiles, nil
	}
	if err != nil {
		return 0, err
	}
	c := NoCertificateFiles
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == lockFileName || name == runLockFile:
		case e.IsDir() && name != "archive" && s.slot == "":
			// A slot: a certificate of its own.
		case pendingOnlyFile(name):
			c = max(c, PendingOnly)
		default:
			return CertificateFiles, nil
		}
	}
	return c, nil
}

// ListIdentities returns the (normalized) addresses whose certificate
// directory holds anything but lock files, sorted: those of
// [Store.ListCertificates], and those whose first certificate is still
// pending or whose certificate files are missing or damaged (see
// [Store.Contents]); a directory that cannot be read is listed too. It
// looks into the slots of this view's addresses: a view of a slot lists
// an address when its slot directory holds something.
func (s *Store) ListIdentities() ([]string, error) {
	return s.certDirs(func(dir string) bool {
		c, err := s.Contents(filepath.Base(dir))
		return err != nil || c != NoCertificateFiles
	})
}
