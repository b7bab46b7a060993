package keystore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// replyPath returns the record path for key: replies/<hex SHA-256 of key>.
// Hashing keeps whatever the key contains out of file names.
func (s *Store) replyPath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(s.Dir, repliesDir, hex.EncodeToString(sum[:]))
}

// ClaimReply records, durably, that the challenge identified by key is
// being answered, and reports whether this call made the record. Call it
// before sending a reply and send only if claimed is true: RFC 8823 says a
// challenge must never be answered twice, and the record survives crashes
// and is exclusive between goroutines and processes (the file is created
// with O_CREATE|O_EXCL, then info is written and fsynced, then the
// directory is fsynced). claimed is false if the record already exists:
// someone answered or is answering. info is stored as is, for people
// reading the directory; it must not contain secrets.
func (s *Store) ClaimReply(key string, info []byte) (claimed bool, err error) {
	if _, err := s.subdir(repliesDir); err != nil {
		return false, fmt.Errorf("claim reply: %w", err)
	}
	path := s.replyPath(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim reply: %w", err)
	}
	// From here on the claim is ours: even if writing info fails, the
	// record exists, and a failed claim must not be retried as unclaimed.
	err = f.Chmod(filePerm)
	if err == nil {
		_, err = f.Write(info)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return false, fmt.Errorf("claim reply %s: %w", path, err)
	}
	return true, nil
}

// ReplyClaimed reports whether key was claimed with [Store.ClaimReply].
func (s *Store) ReplyClaimed(key string) (bool, error) {
	ok, err := exists(s.replyPath(key))
	if err != nil {
		return false, fmt.Errorf("check reply record: %w", err)
	}
	return ok, nil
}

// Claim is [Store.ClaimReply] with a timestamp as info. With [Store.Claimed]
// it lets a *Store serve as the order flow's reply guard
// (acmemail.ReplyGuard) without either package importing the other.
func (s *Store) Claim(key string) (bool, error) {
	return s.ClaimReply(key, []byte("claimed "+time.Now().UTC().Format(time.RFC3339Nano)+"\n"))
}

// Claimed is [Store.ReplyClaimed].
func (s *Store) Claimed(key string) (bool, error) { return s.ReplyClaimed(key) }
