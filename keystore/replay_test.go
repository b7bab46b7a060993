package keystore

import (
	"os"
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
		got, err := s.ClaimReply(tt.key, []byte("info"))
		if err != nil || got != tt.want {
			t.Errorf("call %d: ClaimReply(%q) = %v, %v; want %v", i, tt.key, got, err, tt.want)
		}
	}
	if got, err := s.ReplyClaimed(key); err != nil || !got {
		t.Errorf("ReplyClaimed after a claim = %v, %v; want true", got, err)
	}
	data, err := os.ReadFile(s.replyPath(key))
	if err != nil || string(data) != "info" {
		t.Errorf("record = %q, %v; want %q", data, err, "info")
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
	if got, err := s.ClaimReply("g", nil); err != nil || got {
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
			ok, err := st.ClaimReply("race", nil)
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
