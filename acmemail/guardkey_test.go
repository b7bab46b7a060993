package acmemail

import "testing"

// TestIsChallengeKey: the claim of a challenge is told apart from the
// records of its mail, which a guard must not hold up.
func TestIsChallengeKey(t *testing.T) {
	if k := replyKey("https://ca.example/dir", "https://ca.example/chall/1"); !IsChallengeKey(k) {
		t.Errorf("IsChallengeKey(%q) = false", k)
	}
	cm := &ChallengeMail{TokenPart1: "challenge abc", MessageID: "<challenge@ca.example>"}
	for _, k := range mailKeys(cm) {
		if IsChallengeKey(k) {
			t.Errorf("IsChallengeKey(%q) = true for a mail's key", k)
		}
	}
}
