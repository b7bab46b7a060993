package keystore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// treeSnapshot describes every file and directory below dir (dir
// included): its mode, size and modification time.
func treeSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		size := fi.Size()
		if fi.IsDir() {
			size = 0 // a directory's size is the file system's business
		}
		snap[p] = fmt.Sprintf("%v %d %s", fi.Mode(), size, fi.ModTime())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func diffSnapshots(before, after map[string]string) []string {
	var diff []string
	for p, b := range before {
		if a, ok := after[p]; !ok {
			diff = append(diff, "removed "+p)
		} else if a != b {
			diff = append(diff, fmt.Sprintf("changed %s: %s -> %s", p, b, a))
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			diff = append(diff, "new "+p)
		}
	}
	return diff
}

// makeReadOnly removes the lock files below dir but those in the
// directories keep names (as a state directory restored from a backup,
// or copied without its dot files, has none), then takes the write
// permission from everything: directories 0500 (the state directory
// itself 0555, loose: nothing may tighten it), files 0400. The test's
// cleanup gives it back.
func makeReadOnly(t *testing.T, dir string, keep ...string) {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			dirs = append(dirs, p)
			return nil
		case (d.Name() == lockFileName || d.Name() == runLockFile) && !slices.Contains(keep, filepath.Base(filepath.Dir(p))):
			return os.Remove(p)
		}
		return os.Chmod(p, 0o400)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		mode := os.FileMode(0o500)
		if dirs[i] == dir {
			mode = 0o555
		}
		if err := os.Chmod(dirs[i], mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range dirs {
			os.Chmod(d, 0o700)
		}
	})
}

// TestReadOnlyState: the methods that only read work on a state directory
// that cannot be written, and change nothing in it: they make no lock
// file, no directory, and tighten no permission. Root is not held back by
// permissions, so as root the test proves the second half, from a
// snapshot of the tree (names, modes, sizes, modification times) taken
// before and after; run as another user it proves both, and that an
// interrupted install that cannot be completed there is named.
func TestReadOnlyState(t *testing.T) {
	ca := newTestCA(t)
	s := openTestStore(t)
	// locked keeps its lock file, read-only: a reader locks it shared.
	const email, locked, staged = "ro@example.org", "locked@example.org", "staged@example.org"
	for _, e := range []string{email, email, locked} {
		k, err := s.CertKey(e, KeyP256)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveCertificate(e, ca.issue(t, k.Public(), e), CertMeta{Usage: "both"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteOrderState(email, []byte(`{"order_url":"https://ca.example/order/1"}`)); err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	if !root {
		// An install interrupted after its chain was staged: completing it
		// would write.
		k, err := s.CertKey(staged, KeyP256)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.SaveCertificate(staged, ca.issue(t, k.Public(), staged), CertMeta{})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Link(p.Chain, p.Chain+stagedSuffix); err != nil {
			t.Fatal(err)
		}
	}
	makeReadOnly(t, s.Dir, locked)
	before := treeSnapshot(t, s.Dir)

	ro, err := OpenExisting(s.Dir)
	if err != nil {
		t.Fatalf("OpenExisting = %v", err)
	}
	if list, err := ro.ListCertificates(); err != nil || len(list) < 2 || list[0] != locked || list[1] != email {
		t.Errorf("ListCertificates = %q, %v", list, err)
	}
	if list, err := ro.ListIdentities(); err != nil || len(list) < 2 || list[0] != locked || list[1] != email {
		t.Errorf("ListIdentities = %q, %v", list, err)
	}
	if c, err := ro.Contents(email); err != nil || c != CertificateFiles {
		t.Errorf("Contents = %v, %v", c, err)
	}
	if _, chain, meta, _, err := ro.LoadCertificate(email); err != nil || meta.Serial != chain[0].SerialNumber.Text(16) {
		t.Errorf("LoadCertificate = %v", err)
	}
	if gens, err := ro.History(email); err != nil || len(gens) != 2 {
		t.Errorf("History = %d generations, %v; want 2", len(gens), err)
	}
	if _, _, _, _, err := ro.LoadCertificate(locked); err != nil {
		t.Errorf("LoadCertificate with a read-only lock file = %v", err)
	}
	if _, err := ro.History(locked); err != nil {
		t.Errorf("History with a read-only lock file = %v", err)
	}
	if _, err := ro.ReadOrderState(email); err != nil {
		t.Errorf("ReadOrderState = %v", err)
	}
	if !root {
		_, _, _, _, err := ro.LoadCertificate(staged)
		if err == nil || !strings.Contains(err.Error(), "cannot complete the interrupted install of "+filepath.Join(s.Dir, "certificates", staged, chainFile+stagedSuffix)) {
			t.Errorf("LoadCertificate of a staged install in a read-only directory = %v, want the install named", err)
		}
	}
	if diff := diffSnapshots(before, treeSnapshot(t, s.Dir)); len(diff) > 0 {
		t.Errorf("reading changed the state directory:\n%s", strings.Join(diff, "\n"))
	}

	if _, err := OpenExisting(filepath.Join(s.Dir, "nothing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenExisting of a missing directory = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "nothing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenExisting made the missing directory")
	}
}
