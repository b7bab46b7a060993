package issuer

import (
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail"
)

// TestCATimingRules: what a run uses of what was learned, and what a run
// teaches.
func TestCATimingRules(t *testing.T) {
	p := Profile{Server: "https://ca.example/dir", MailWait: Duration(acmemail.DefaultMailWait), ReplySettle: Duration(DefaultReplySettle)}
	var none *CATiming
	if rt := none.Timing(p); rt.Learned || rt.PostAtOnce || rt.MailWait != acmemail.DefaultMailWait || rt.ReplySettle != DefaultReplySettle {
		t.Errorf("nothing learned: %+v, want the safe defaults", rt)
	}
	now := time.Now()
	after := learn(nil, p.Server, []acmemail.ChallengeTiming{{Email: "a@x", Arrival: 40 * time.Millisecond}}, now)
	if !after.MailAfterPost || after.Runs != 1 {
		t.Fatalf("learned %+v, want mail after the POST", after)
	}
	if rt := after.Timing(p); !rt.PostAtOnce || !rt.Learned {
		t.Errorf("mail after the POST: %+v, want a POST at once", rt)
	}
	given := p
	given.MailWait = Duration(5 * time.Second)
	if rt := after.Timing(given); rt.PostAtOnce || rt.MailWait != 5*time.Second {
		t.Errorf("--mail-wait 5s given: %+v, want it to win", rt)
	}

	// The CA starts mailing before the POST: relearned, with a margin.
	before := learn(after, p.Server, []acmemail.ChallengeTiming{{Email: "a@x", BeforePost: true, Arrival: 4 * time.Second, Settle: time.Second}}, now)
	if before.MailAfterPost || before.LongestArrival.D() != 4*time.Second || before.Runs != 2 {
		t.Fatalf("relearned %+v", before)
	}
	if rt := before.Timing(p); rt.PostAtOnce || rt.MailWait != 8*time.Second || rt.ReplySettle != time.Second {
		t.Errorf("mail before the POST within 4s, a 1s settle accepted: %+v, want an 8s wait and a 1s settle", rt)
	}
	quick := learn(nil, p.Server, []acmemail.ChallengeTiming{{BeforePost: true, Arrival: time.Millisecond, Settle: DefaultReplySettle}}, now)
	if rt := quick.Timing(p); rt.MailWait != minLearnedMailWait || rt.ReplySettle != DefaultReplySettle {
		t.Errorf("a quick CA: %+v, want the floor of the wait and the settle accepted (never shorter)", rt)
	}
	slow := learn(nil, p.Server, []acmemail.ChallengeTiming{{BeforePost: true, Arrival: time.Minute}}, now)
	if rt := slow.Timing(p); rt.MailWait != acmemail.DefaultMailWait {
		t.Errorf("a slow CA: %+v, want no more than the default wait", rt)
	}
	settled := p
	settled.ReplySettle = Duration(2 * time.Second)
	if rt := before.Timing(settled); rt.ReplySettle != 2*time.Second {
		t.Errorf("--reply-settle 2s given: %+v, want it to win", rt)
	}
	if learn(before, p.Server, nil, now) != nil {
		t.Error("a run without timings taught something")
	}
}
