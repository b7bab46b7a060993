package issuer

import (
	"fmt"

	"github.com/acmemail/acmemail/keystore"
)

// What one certificate needs free in the state directory, checked before
// it is ordered: its pending key, the order's state, the reply records,
// the staged install (chain, leaf, meta, PKCS#12 file), the archive and
// the renewal window: about a dozen small files, each at least a block
// (4 KiB) on most file systems, with room to spare for the temporary
// files of atomic writes and a new account.
const (
	certSpace = 64 << 10
	certFiles = 32
)

// checkSpace refuses to order a certificate (or to continue an
// interrupted order, resuming) when the state directory's file system
// has too little space left to save it: an order made then would be
// answered and issued, and the certificate would not fit. Where the free
// space cannot be known (see keystore.Store.FreeSpace) it passes.
func checkSpace(store *keystore.Store, resuming bool) error {
	sp, ok, err := store.FreeSpace()
	if err != nil || !ok {
		return nil // the save itself reports a real problem
	}
	what := "nothing was ordered"
	if resuming {
		what = "the interrupted order was not continued"
	}
	hint := "free space on that disk and run the same command again"
	if sp.Bytes < certSpace {
		return WithHint(fmt.Errorf("the disk of the state directory %s has %d KiB free; a certificate needs %d KiB to be saved, so %s", store.Dir, sp.Bytes>>10, certSpace>>10, what), hint)
	}
	if sp.Files >= 0 && sp.Files < certFiles {
		return WithHint(fmt.Errorf("the disk of the state directory %s can hold only %d more files; a certificate needs %d, so %s", store.Dir, sp.Files, certFiles, what), hint)
	}
	return nil
}
