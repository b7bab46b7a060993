//go:build linux || darwin || freebsd

package keystore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// FreeSpace returns what the file system of the state directory has free
// for this process (for root, the blocks reserved for it count as free);
// ok is false where that cannot be known (see space_other.go).
func (s *Store) FreeSpace() (sp Space, ok bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.Dir, &st); err != nil {
		return Space{}, false, fmt.Errorf("free space of %s: %w", s.Dir, err)
	}
	blocks := uint64(st.Bavail)
	if os.Geteuid() == 0 {
		blocks = uint64(st.Bfree)
	}
	sp = Space{Bytes: blocks * uint64(st.Bsize), Files: -1}
	if st.Files > 0 { // some file systems (btrfs) do not count inodes
		sp.Files = int64(st.Ffree)
	}
	return sp, true, nil
}
