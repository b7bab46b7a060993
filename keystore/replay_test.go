package keystore

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

func TestClaimReply(t *testing.T) {
	s := openTestStore(t)
	const key = "challenge https://ca.example/dir https://ca.example/chall/1"
	if got, err := s.ReplyClaimed(key); err != nil || got {
		t.Fatalf("ReplyClaimed before any claim = %v, %v; want false", got, err)
	}
	tests := []struct {
		key  string
		want bool
	}{
		{key, true},
		{key, false},
		{"other", true},
		{"other", false},
		{key, false},
	}
	for i, tt := range tests {
		got, err := s.ClaimReply(tt.key)
		if err != nil || got != tt.want {
			t.Errorf("call %d: ClaimReply(%q) = %v, %v; want %v", i, tt.key, got, err, tt.want)
		}
	}
	if got, err := s.ReplyClaimed(key); err != nil || !got {
		t.Errorf("ReplyClaimed after a claim = %v, %v; want true", got, err)
	}
	// The records are hard links to one file: claiming creates no inode.
	a, errA := os.Stat(s.replyPath(key))
	b, errB := os.Stat(s.replyPath("other"))
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		t.Errorf("the records of two claims are not one file (%v, %v)", errA, errB)
	}

	// The ReplyGuard method set.
	if got, err := s.Claim("g"); err != nil || !got {
		t.Errorf("Claim(new) = %v, %v; want true", got, err)
	}
	if got, err := s.Claim("g"); err != nil || got {
		t.Errorf("Claim(again) = %v, %v; want false", got, err)
	}
	if got, err := s.Claimed("g"); err != nil || !got {
		t.Errorf("Claimed = %v, %v; want true", got, err)
	}
	// Both method sets keep the same records.
	if got, err := s.ClaimReply("g"); err != nil || got {
		t.Errorf("ClaimReply after Claim = %v, %v; want false", got, err)
	}
	if got, err := s.Claimed(key); err != nil || !got {
		t.Errorf("Claimed(a key ClaimReply recorded) = %v, %v; want true", got, err)
	}
	if got, err := s.Claim(key); err != nil || got {
		t.Errorf("Claim(a key ClaimReply recorded) = %v, %v; want false", got, err)
	}
	if got, err := s.Claimed("never"); err != nil || got {
		t.Errorf("Claimed(never claimed) = %v, %v; want false", got, err)
	}
}

func TestClaimReplyConcurrent(t *testing.T) {
	s := openTestStore(t)
	// Separate Store values on one directory, as separate processes would be.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			st, err := Open(s.Dir)
			if err != nil {
				t.Error(err)
				return
			}
			ok, err := st.ClaimReply("race")
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Errorf("%d of 20 concurrent ClaimReply calls claimed, want exactly 1", got)
	}
}

// TestClaimReplyTemplate: the records stay exclusive whatever became of
// the file they link to: removed (a new one is made), or something that
// is not a file in its place (each record is then a file of its own).
func TestClaimReplyTemplate(t *testing.T) {
	s := openTestStore(t)
	if ok, err := s.ClaimReply("a"); err != nil || !ok {
		t.Fatalf("first claim = %v, %v", ok, err)
	}
	tmpl := filepath.Join(s.Dir, repliesDir, replyTemplate)
	if err := os.Remove(tmpl); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.ClaimReply("b"); err != nil || !ok {
		t.Fatalf("claim after the template was removed = %v, %v", ok, err)
	}
	if err := os.Remove(tmpl); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tmpl, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.ClaimReply("c"); err != nil || !ok {
		t.Fatalf("claim with a directory in the template's place = %v, %v", ok, err)
	}
	if fi, err := os.Stat(s.replyPath("c")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != filePerm {
		t.Errorf("record made without the template: %v, %v; want a 0600 file", fi, err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if ok, err := s.ClaimReply(k); err != nil || ok {
			t.Errorf("claim %q again = %v, %v; want false", k, ok, err)
		}
		if ok, err := s.ReplyClaimed(k); err != nil || !ok {
			t.Errorf("ReplyClaimed(%q) = %v, %v; want true", k, ok, err)
		}
	}
	if ok, err := s.ReplyClaimed(replyTemplate); err != nil || ok {
		t.Errorf("ReplyClaimed(the template's name) = %v, %v; want false (records are named by a hash)", ok, err)
	}
}
