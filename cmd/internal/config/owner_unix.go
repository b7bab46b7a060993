//go:build unix

package config

import (
	"io/fs"
	"os"
	"syscall"
)

// foreignOwner reports the owner of fi when it is neither the current user
// nor root: such a file may have been planted by someone else.
func foreignOwner(fi fs.FileInfo) (uid int, foreign bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	uid = int(st.Uid)
	return uid, uid != os.Getuid() && uid != 0
}
