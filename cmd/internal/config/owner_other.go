//go:build !unix

package config

import "io/fs"

// foreignOwner: file ownership is not a uid outside Unix; the mode check
// in CheckPerm is what is left there.
func foreignOwner(fs.FileInfo) (int, bool) { return 0, false }
