package install

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	currentLink = "current"
	keyFile     = "key.pem"
	chainFile   = "chain.pem"

	dirMode   = 0o755
	keyMode   = 0o600
	chainMode = 0o644
)

// version is what writeVersion did.
type version struct {
	dir      string // the version directory "current" now points to
	previous string // the one it pointed to before, "" if none
	reused   bool   // the current version already held this key and chain
}

// writeVersion writes the key and chain of c into a new version directory
// under dir and switches dir/current to it in one rename: the files are
// complete and synced before the link changes, and a reader following the
// link sees the old pair or the new one. When current already holds the
// same key and chain, nothing is written. Older versions beyond
// KeepVersions are removed.
func writeVersion(dir string, c *parsedCert, now time.Time) (version, error) {
	if err := mkdirAll(dir); err != nil {
		return version{}, err
	}
	link := filepath.Join(dir, currentLink)
	prev, err := os.Readlink(link)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return version{}, fmt.Errorf("read %s: %w", link, err)
	}
	if prev != "" && !validVersionName(prev) {
		return version{}, fmt.Errorf("%s points to %q, not to a version this installer wrote: move it away", link, sanitize(prev))
	}
	if prev != "" && sameFiles(filepath.Join(dir, prev), c) {
		return version{dir: filepath.Join(dir, prev), previous: previousOf(dir, prev), reused: true}, nil
	}

	sum := sha256.Sum256(c.leaf.Raw)
	name := now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(sum[:4])
	vdir := filepath.Join(dir, name)
	if _, err := os.Lstat(vdir); err == nil {
		// The same certificate installed twice within a second, after
		// another one: a fresh directory all the same.
		var r [3]byte
		rand.Read(r[:])
		name += "-" + hex.EncodeToString(r[:])
		vdir = filepath.Join(dir, name)
	}
	if err := os.Mkdir(vdir, dirMode); err != nil {
		return version{}, err
	}
	if err := setOwnerMode(vdir, dirMode); err != nil {
		return version{}, err
	}
	if err := writeFileSynced(filepath.Join(vdir, keyFile), c.keyPEM, keyMode); err != nil {
		os.RemoveAll(vdir)
		return version{}, err
	}
	if err := writeFileSynced(filepath.Join(vdir, chainFile), c.chainPEM, chainMode); err != nil {
		os.RemoveAll(vdir)
		return version{}, err
	}
	if err := syncDir(vdir); err != nil {
		os.RemoveAll(vdir)
		return version{}, err
	}
	// The link: a new one under a temporary name, renamed over current.
	tmp := filepath.Join(dir, ".current.tmp-"+name)
	os.Remove(tmp)
	if err := os.Symlink(name, tmp); err != nil {
		os.RemoveAll(vdir)
		return version{}, err
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(tmp, 0, 0); err != nil {
			os.Remove(tmp)
			os.RemoveAll(vdir)
			return version{}, err
		}
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		os.RemoveAll(vdir)
		return version{}, err
	}
	if err := syncDir(dir); err != nil {
		return version{}, err
	}
	prune(dir, name, prev)
	v := version{dir: vdir}
	if prev != "" {
		v.previous = filepath.Join(dir, prev)
	}
	return v, nil
}

// validVersionName reports whether name is a version directory's name as
// writeVersion makes them (a link elsewhere is not ours to follow).
func validVersionName(name string) bool {
	if len(name) < len("20060102T150405Z-00000000") || strings.ContainsAny(name, "/\\") {
		return false
	}
	if _, err := time.Parse("20060102T150405Z", name[:16]); err != nil {
		return false
	}
	for _, ch := range name[16:] {
		if !(ch == '-' || ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f') {
			return false
		}
	}
	return true
}

// versions lists the version directories under dir, oldest first.
func versions(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && validVersionName(e.Name()) {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// previousOf is the newest version older than cur, "" if none.
func previousOf(dir, cur string) string {
	var prev string
	for _, v := range versions(dir) {
		if v < cur {
			prev = v
		}
	}
	if prev == "" {
		return ""
	}
	return filepath.Join(dir, prev)
}

// prune removes the oldest versions beyond KeepVersions, never cur or
// prev. A failure leaves a stale directory, nothing worse.
func prune(dir, cur, prev string) {
	vs := versions(dir)
	for len(vs) > KeepVersions {
		v := vs[0]
		vs = vs[1:]
		if v == cur || v == prev {
			continue
		}
		os.RemoveAll(filepath.Join(dir, v))
	}
}

// sameFiles reports whether the version directory vdir holds c's key and
// chain already.
func sameFiles(vdir string, c *parsedCert) bool {
	key, err := readSmall(filepath.Join(vdir, keyFile), maxKeyPEM)
	if err != nil || !bytes.Equal(key, c.keyPEM) {
		return false
	}
	chain, err := readSmall(filepath.Join(vdir, chainFile), maxChainPEM)
	return err == nil && bytes.Equal(chain, c.chainPEM)
}

// readSmall reads a regular file of at most max bytes.
func readSmall(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return data, nil
}

// mkdirAll makes dir and its missing parents, each root-owned with mode
// 0755; an existing directory is left as it is, unless it is writable by
// others than its owner, which would let them swap the files.
func mkdirAll(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		if fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("%s is writable by group or others (mode %v): fix it before installing keys under it", dir, fi.Mode().Perm())
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := mkdirAll(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return setOwnerMode(dir, dirMode)
}

// writeFileSynced creates path (which must not exist) with data, owned by
// root with mode perm whatever the umask, and syncs it.
func writeFileSynced(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if os.Geteuid() == 0 {
		if err := f.Chown(0, 0); err != nil {
			return err
		}
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

// writeFileAtomic replaces path with data (mode perm, root-owned), so that
// a reader sees the old content or the new one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	var r [6]byte
	rand.Read(r[:])
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(r[:]))
	if err := writeFileSynced(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func setOwnerMode(path string, perm os.FileMode) error {
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 0, 0); err != nil {
			return err
		}
	}
	return os.Chmod(path, perm)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
