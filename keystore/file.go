package keystore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// Modes of everything the package creates, applied with an explicit chmod
// so that the process umask does not matter.
const (
	filePerm = 0o600
	dirPerm  = 0o700
)

// WriteFileAtomic writes data to path so that readers see either the old
// content or the new one, never a mix, even after a crash: it writes a
// temporary file in the same directory, sets its mode to perm (regardless
// of the umask), fsyncs it, renames it over path and fsyncs the directory.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// replaceFile is WriteFileAtomic without the directory fsync: a reader
// (or a SIGKILL, which loses nothing the kernel already has) sees the old
// content or the new one, both complete, since the new content is fsynced
// before the rename. Only a crash of the whole system can make the rename
// itself be forgotten, and then the old content is found. For state whose
// previous version is as good as the new one to anyone reading it after
// such a crash; it saves one fsync and the journal commit it forces.
func replaceFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeFileExclusive creates path with content data and mode perm, failing
// with an error that wraps fs.ErrExist if path already exists. Like
// WriteFileAtomic, a reader (or a crash) never sees a partial file: the
// temporary file is hard-linked to path, which fails if path exists. Where
// hard links are not supported it falls back to O_CREATE|O_EXCL.
func writeFileExclusive(path string, data []byte, perm os.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", path, fs.ErrExist)
		}
		if err := writeExcl(path, data, perm); err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// tempInfix marks the name of a temporary file: .<name>.tmp-<random>.
const tempInfix = ".tmp-"

// writeTemp writes data to a new temporary file next to path and returns
// its name. The file has mode perm and is fsynced and closed.
func writeTemp(path string, data []byte, perm os.FileMode) (name string, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+tempInfix+"*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// CreateTemp makes the file 0600 minus the umask; chmod only when that
	// is not perm already (it dirties the inode once more).
	if err := chmodIfNeeded(f, perm); err != nil {
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// chmodIfNeeded sets the mode of the open file f to perm unless it has
// that mode already.
func chmodIfNeeded(f *os.File, perm os.FileMode) error {
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm() == perm.Perm() {
		return nil
	}
	return f.Chmod(perm.Perm())
}

// writeExcl creates path with O_CREATE|O_EXCL and writes data to it. On a
// write error the incomplete file is removed.
func writeExcl(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm.Perm())
	if err != nil {
		return err
	}
	err = f.Chmod(perm.Perm())
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// syncDir fsyncs a directory so that renames and creations in it are
// durable. Windows cannot fsync directories; there it is a no-op.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// mkdirPrivate creates the directory path with mode 0700 (regardless of
// the umask) if it does not exist. Its parent must exist.
func mkdirPrivate(path string) error {
	err := os.Mkdir(path, dirPerm)
	if err == nil {
		if err := os.Chmod(path, dirPerm); err != nil {
			return fmt.Errorf("create directory %s: %w", path, err)
		}
		return syncDir(filepath.Dir(path))
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create directory %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("create directory %s: %w", path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("create directory %s: exists and is not a directory", path)
	}
	return nil
}

// exists reports whether path exists; errors other than "does not exist"
// are returned.
func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

// archiveTimeFormat names archive directories: UTC, sortable, and free of
// characters that some file systems reject (':').
const archiveTimeFormat = "20060102T150405.000000000Z"

// newArchiveDir creates and returns a new, empty directory
// <parent>/archive/<timestamp>[-n].
func newArchiveDir(parent string, now time.Time) (string, error) {
	root := filepath.Join(parent, "archive")
	if err := mkdirPrivate(root); err != nil {
		return "", err
	}
	base := now.UTC().Format(archiveTimeFormat)
	for i := 1; ; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		p := filepath.Join(root, name)
		err := os.Mkdir(p, dirPerm)
		if err == nil {
			if err := os.Chmod(p, dirPerm); err != nil {
				return "", fmt.Errorf("create directory %s: %w", p, err)
			}
			return p, syncDir(root)
		}
		if !errors.Is(err, fs.ErrExist) || i >= 1000 {
			return "", fmt.Errorf("create directory %s: %w", p, err)
		}
	}
}

// preserve puts a copy of the file src at dst without disturbing src: a
// hard link where possible, else a byte copy (mode 0600, fsynced).
func preserve(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("archive %s: %w", src, err)
	}
	defer in.Close()
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("archive %s: %w", src, err)
	}
	if err := writeExcl(dst, data, filePerm); err != nil {
		return fmt.Errorf("archive %s: %w", src, err)
	}
	return nil
}
