package keystore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// caDir holds what was learned about each CA, one file per directory URL:
// ca/<sha256 of the directory URL>.json.
const caDir = "ca"

// caTimingMaxSize bounds a learned-timing file: it is a few hundred bytes,
// and a larger one is not read.
const caTimingMaxSize = 64 << 10

// CATimingPath is the file of what was learned about the CA at directory.
func (s *Store) CATimingPath(directory string) string {
	sum := sha256.Sum256([]byte(directory))
	return filepath.Join(s.Dir, caDir, hex.EncodeToString(sum[:])+".json")
}

// WriteCATiming records, atomically (0600, under the 0700 ca/ directory),
// what was learned about the CA at directory (opaque JSON from the caller).
func (s *Store) WriteCATiming(directory string, data []byte) error {
	if _, err := s.subdir(caDir); err != nil {
		return fmt.Errorf("write what was learned about %s: %w", directory, err)
	}
	if err := WriteFileAtomic(s.CATimingPath(directory), data, filePerm); err != nil {
		return fmt.Errorf("write what was learned about %s: %w", directory, err)
	}
	return nil
}

// ReadCATiming returns what [Store.WriteCATiming] recorded last for
// directory, or an error wrapping ErrNotFound. It writes nothing, and reads
// at most 64 KiB: a larger file is an error.
func (s *Store) ReadCATiming(directory string) ([]byte, error) {
	path := s.CATimingPath(directory)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("nothing learned about %s: %w", directory, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read what was learned about %s: %w", directory, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, caTimingMaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > caTimingMaxSize {
		return nil, fmt.Errorf("read %s: the file is larger than %d bytes", path, caTimingMaxSize)
	}
	return data, nil
}

// RemoveCATiming forgets what was learned about the CA at directory.
func (s *Store) RemoveCATiming(directory string) error {
	err := os.Remove(s.CATimingPath(directory))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("forget what was learned about %s: %w", directory, err)
	}
	return nil
}
