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

// replyTemplate is the file, in replies/, that every reply record is a
// hard link to: a claim then adds a name to the directory instead of
// creating a file, which is most of a claim's cost on a file system that
// is slow to allocate inodes (ext4 without a journal skips every inode
// freed in the last 60 s, or 360 s while its inode table is not written
// back). Its name cannot be a record's (hex digits).
const replyTemplate = ".record"

var replyTemplateText = []byte("acmemail: each other file in this directory records that a challenge was answered (or was being\n" +
	"answered): its name is the SHA-256 of the challenge's key. Where the file system has hard links,\n" +
	"each is a hard link to this file. Never delete them: they keep a challenge from being answered twice.\n")

// ClaimReply records, durably, that the challenge identified by key is
// being answered, and reports whether this call made the record. Call it
// before sending a reply and send only if claimed is true: RFC 8823 says a
// challenge must never be answered twice, and the record survives crashes
// and is exclusive between goroutines and processes. The record is a hard
// link to replies/.record (link fails if the name exists), or where hard
// links do not work a file created with O_CREATE|O_EXCL and fsynced; then
// the directory is fsynced. claimed is false if the record already
// exists: someone answered or is answering.
func (s *Store) ClaimReply(key string) (claimed bool, err error) {
	dir, err := s.subdir(repliesDir)
	if err != nil {
		return false, fmt.Errorf("claim reply: %w", err)
	}
	path := s.replyPath(key)
	claimed, linked, err := linkReply(dir, path)
	if !linked {
		claimed, err = createReply(path)
	}
	if err == nil && claimed {
		err = syncDir(dir)
	}
	if err != nil {
		// Even now the record may exist, and a failed claim must not be
		// retried as unclaimed.
		return false, fmt.Errorf("claim reply %s: %w", path, err)
	}
	return claimed, nil
}

// linkReply makes path a hard link to dir's reply template, creating the
// template first when needed. linked is false when no link could be made
// for a reason other than path existing (a file system without hard
// links): the caller then creates the record as a file of its own.
func linkReply(dir, path string) (claimed, linked bool, err error) {
	tmpl := filepath.Join(dir, replyTemplate)
	fi, err := os.Lstat(tmpl)
	fresh := err != nil || !fi.Mode().IsRegular()
	for range 2 {
		if fresh {
			if err := writeReplyTemplate(tmpl); err != nil {
				return false, false, nil
			}
		}
		err := os.Link(tmpl, path)
		switch {
		case err == nil:
			return true, true, nil
		case errors.Is(err, fs.ErrExist):
			return false, true, nil
		case fresh:
			return false, false, nil
		}
		// The template may have as many links as the file system allows
		// (65,000 on ext4, 1,023 on NTFS), or be gone: once with a new one.
		fresh = true
	}
	return false, false, nil
}

// writeReplyTemplate puts a new template in place of whatever is there
// (the records linked to the old one stay valid), fsynced with its
// directory before any record links to it. It is created in place, not
// renamed into place: no temporary file can be left behind, and what it
// says is for people; a record is its name. Another process making one at
// the same moment is as good.
func writeReplyTemplate(tmpl string) error {
	if err := os.Remove(tmpl); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	err := writeExcl(tmpl, replyTemplateText, filePerm)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(tmpl))
}

// createReply creates the record at path as a file of its own.
func createReply(path string) (claimed bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// From here on the claim is ours, even if what follows fails.
	err = f.Chmod(filePerm)
	if err == nil {
		_, err = f.Write([]byte("claimed " + time.Now().UTC().Format(time.RFC3339) + "\n"))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return true, err
}

// ReplyClaimed reports whether key was claimed with [Store.ClaimReply].
func (s *Store) ReplyClaimed(key string) (bool, error) {
	ok, err := exists(s.replyPath(key))
	if err != nil {
		return false, fmt.Errorf("check reply record: %w", err)
	}
	return ok, nil
}

// Claim is [Store.ClaimReply]. With [Store.Claimed] it lets a *Store serve
// as the order flow's reply guard (acmemail.ReplyGuard) without either
// package importing the other.
func (s *Store) Claim(key string) (bool, error) { return s.ClaimReply(key) }

// Claimed is [Store.ReplyClaimed].
func (s *Store) Claimed(key string) (bool, error) { return s.ReplyClaimed(key) }
