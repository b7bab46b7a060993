package issuer

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/keystore"
)

// CATimingVersion is the version of the learned-timing file format.
const CATimingVersion = 1

// Margins of the learned mail wait: twice the longest arrival seen, at
// least minLearnedMailWait, never more than the safe default.
const (
	minLearnedMailWait = 5 * time.Second
	mailWaitFactor     = 2
)

// CATiming is what acmemail learned about how a CA times its challenge
// mail, from its own successful runs against it (only ones that answered
// an authenticated challenge mail from the watched mailbox: never from a
// forged mail, a failed run, --manual, --pipe or the in-process sandbox).
// It is kept per directory URL in the state directory
// (ca/<sha256 of the URL>.json).
type CATiming struct {
	Version   int    `json:"version"`
	Directory string `json:"directory"`
	// MailAfterPost: in the last run that learned, every challenge mail
	// came only after the challenge POST (as secsy-pki mails). Such a CA
	// is POSTed at once.
	MailAfterPost bool `json:"mail_after_post"`
	// LongestArrival is the longest time from the authorization fetch to
	// the challenge mail's arrival, over the runs in which the mail came
	// before the POST (and since the CA last mailed only after it).
	LongestArrival Duration `json:"longest_arrival,omitempty"`
	// LongestPostArrival is the same from the POST, for a CA that mails
	// after it (shown, not used).
	LongestPostArrival Duration `json:"longest_post_arrival,omitempty"`
	// SettleAccepted is the reply settle of the last run whose reply went
	// out before the POST and was accepted; nil when there was none.
	SettleAccepted *Duration `json:"settle_accepted,omitempty"`
	Runs           int       `json:"runs"`
	Updated        time.Time `json:"updated"`
}

// LoadCATiming reads what was learned about the CA at directory. Nothing
// learned is (nil, nil); a file that cannot be read or decoded, or of
// another version, is (nil, err), for a warning: the safe defaults are
// used, and the next successful run replaces it.
func LoadCATiming(store *keystore.Store, directory string) (*CATiming, error) {
	data, err := store.ReadCATiming(directory)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var t CATiming
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v); it is ignored and replaced by the next run", store.CATimingPath(directory), err)
	}
	if t.Version != CATimingVersion || t.Directory != directory || t.LongestArrival < 0 || t.LongestPostArrival < 0 || (t.SettleAccepted != nil && *t.SettleAccepted < 0) {
		return nil, fmt.Errorf("%s is not a learned timing of this acmemail for %s; it is ignored and replaced by the next run", store.CATimingPath(directory), directory)
	}
	return &t, nil
}

func saveCATiming(store *keystore.Store, t *CATiming) error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return store.WriteCATiming(t.Directory, append(data, '\n'))
}

// learn adds the timings of one successful run to t (nil: nothing
// learned yet) and returns the result, or nil when the run says nothing.
func learn(t *CATiming, directory string, timings []acmemail.ChallengeTiming, now time.Time) *CATiming {
	if len(timings) == 0 {
		return nil
	}
	n := CATiming{Version: CATimingVersion, Directory: directory}
	if t != nil {
		n = *t
		n.Version, n.Directory = CATimingVersion, directory
	}
	after := true
	for _, ct := range timings {
		after = after && !ct.BeforePost
	}
	if after != n.MailAfterPost || n.Runs == 0 {
		// The CA changed how it mails (or is new): what was learned of
		// the other way is of no use.
		n.LongestArrival, n.LongestPostArrival, n.SettleAccepted = 0, 0, nil
	}
	n.MailAfterPost = after
	for _, ct := range timings {
		switch {
		case ct.BeforePost:
			n.LongestArrival = max(n.LongestArrival, Duration(ct.Arrival))
			s := Duration(ct.Settle)
			n.SettleAccepted = &s
		case after:
			n.LongestPostArrival = max(n.LongestPostArrival, Duration(ct.Arrival))
		}
	}
	n.Runs++
	n.Updated = now.UTC().Truncate(time.Second)
	return &n
}

// RunTiming is how a run times its challenges: from the profile (the
// safe defaults, or what the user gave), or from what was learned.
type RunTiming struct {
	MailWait    time.Duration
	ReplySettle time.Duration
	PostAtOnce  bool
	Learned     bool // some of it comes from the CA's learned timing
}

// runTimingJSON is RunTiming in JSON: durations as Go writes them ("20s"),
// like the recorded profile's mail_wait and reply_settle.
type runTimingJSON struct {
	MailWait    Duration `json:"mail_wait"`
	ReplySettle Duration `json:"reply_settle"`
	PostAtOnce  bool     `json:"post_at_once"`
	Learned     bool     `json:"learned"`
}

func (t RunTiming) MarshalJSON() ([]byte, error) {
	return json.Marshal(runTimingJSON{Duration(t.MailWait), Duration(t.ReplySettle), t.PostAtOnce, t.Learned})
}

func (t *RunTiming) UnmarshalJSON(b []byte) error {
	var j runTimingJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*t = RunTiming{time.Duration(j.MailWait), time.Duration(j.ReplySettle), j.PostAtOnce, j.Learned}
	return nil
}

// Timing is how a run with profile p uses what was learned (t, or nil)
// about its CA. A mail wait or reply settle other than the default is the
// user's and wins; at the defaults: a CA that mailed only after the POST
// is POSTed at once; one that mailed before waits twice the longest
// arrival seen (at least 5 s, at most the default); the reply settle is
// the one last accepted. A settle shorter than any that was accepted is
// never tried: only the user's own --reply-settle can make it shorter.
func (t *CATiming) Timing(p Profile) RunTiming {
	rt := RunTiming{MailWait: p.MailWait.D(), ReplySettle: p.ReplySettle.D()}
	if t == nil {
		return rt
	}
	if p.MailWait.D() == acmemail.DefaultMailWait {
		switch {
		case t.MailAfterPost:
			rt.PostAtOnce, rt.Learned = true, true
		case t.LongestArrival > 0:
			w := min(max(mailWaitFactor*t.LongestArrival.D(), minLearnedMailWait), acmemail.DefaultMailWait)
			rt.MailWait, rt.Learned = w, rt.Learned || w != p.MailWait.D()
		}
	}
	if p.ReplySettle.D() == serverSettle(p) && t.SettleAccepted != nil && !t.MailAfterPost && t.SettleAccepted.D() < rt.ReplySettle {
		rt.ReplySettle, rt.Learned = t.SettleAccepted.D(), true
	}
	return rt
}

// serverSettle is the default reply settle of p's server.
func serverSettle(p Profile) time.Duration {
	if p.Server == "sandbox" {
		return 0
	}
	return DefaultReplySettle
}

// Describe is one line on what was learned, for show and doctor.
func (t *CATiming) Describe() string {
	if t == nil {
		return "nothing learned yet: the safe defaults (wait up to --mail-wait for the mail, then POST; --reply-settle after a reply)"
	}
	runs := fmt.Sprintf("%d run", t.Runs)
	if t.Runs != 1 {
		runs += "s"
	}
	if t.MailAfterPost {
		s := "mails only after the challenge POST"
		if t.LongestPostArrival > 0 {
			s += fmt.Sprintf(" (within %s)", t.LongestPostArrival.D().Round(time.Millisecond))
		}
		return fmt.Sprintf("%s: the challenge is POSTed at once (learned from %s, last %s)", s, runs, t.Updated.Format(time.DateOnly))
	}
	s := fmt.Sprintf("mails before the challenge POST, within %s of the authorization fetch", t.LongestArrival.D().Round(time.Millisecond))
	if t.SettleAccepted != nil {
		s += fmt.Sprintf("; a reply settled %s was accepted", t.SettleAccepted.D())
	}
	return fmt.Sprintf("%s (learned from %s, last %s)", s, runs, t.Updated.Format(time.DateOnly))
}

// LearnedTimingFailure reports whether err is a failure that timings
// learned about the CA could have caused: the CA refused the reply or did
// not validate in time, or no challenge mail came.
func LearnedTimingFailure(err error) bool {
	return errors.Is(err, acmemail.ErrValidationFailed) || errors.Is(err, acmemail.ErrMailTimeout)
}

// useTiming sets how the run times its challenges: from the profile, and,
// when learnable (IMAP and SMTP, a CA other than the in-process sandbox,
// authenticated challenge mail), from what was learned about the CA. A
// damaged learned file is a warning, never fatal.
func (r *run) useTiming(learnable bool) {
	r.rt = RunTiming{MailWait: r.p.MailWait.D(), ReplySettle: r.p.ReplySettle.D()}
	r.learnable = learnable && r.world == nil && !r.p.SkipMailAuth
	if !r.learnable {
		return
	}
	t, err := LoadCATiming(r.is.Store, r.dirURL)
	if err != nil {
		r.prog.Printf("warning: what was learned about the CA: %v", err)
	}
	r.learned, r.rt = t, t.Timing(r.p)
	if r.rt.Learned {
		r.prog.Printf("the CA %s %s", r.dirURL, t.Describe())
	}
}

// safeTiming drops what was learned for the rest of the run: the
// profile's timings (the safe defaults unless the user gave others).
func (r *run) safeTiming(client *acmemail.Client) {
	r.rt = RunTiming{MailWait: r.p.MailWait.D(), ReplySettle: r.p.ReplySettle.D()}
	client.MailWait, client.ReplySettle, client.PostAtOnce = r.rt.MailWait, r.rt.ReplySettle, false
}

// learn records the timings of a run the CA validated.
func (r *run) learn(timings []acmemail.ChallengeTiming) {
	if !r.learnable {
		return
	}
	if r.together != nil {
		r.learned = r.together.learn(r.dirURL, r.learned, timings, time.Now())
		return
	}
	t := learn(r.learned, r.dirURL, timings, time.Now())
	if t == nil {
		return
	}
	if err := saveCATiming(r.is.Store, t); err != nil {
		r.prog.Printf("warning: %v", err)
		return
	}
	r.learned = t
}

// unlearn forgets what was learned about the CA when the run used it and
// failed in a way it could have caused: the next run is a safe one, and
// learns anew.
func (r *run) unlearn(err error) {
	if LearnedTimingFailure(err) {
		r.forgetLearned()
	}
}

// forgetLearned forgets what was learned about the CA when the run used it.
func (r *run) forgetLearned() {
	if !r.rt.Learned {
		return
	}
	if r.together != nil {
		r.together.unlearn(r.dirURL)
	}
	if rmErr := r.is.Store.RemoveCATiming(r.dirURL); rmErr != nil {
		r.prog.Printf("warning: %v", rmErr)
	}
	r.learned = nil
}

// The renewals of one RenewAll learn into one timing per CA, written
// once when all of them have ended: each renewal writing the file (one
// new file and two fsyncs each, 100 times for 100 addresses of one CA)
// made every renewal pay for a file only the last write survived in,
// since each one started from the file as the run found it.
type caLearning struct {
	t       *CATiming // what the run's renewals learned, merged
	touched bool      // a renewal learned or unlearned: t supersedes the file as found
	dirty   bool      // t is to be written
}

// learn merges one renewal's timings into what the run learned about the
// CA at directory (found: the file as this renewal read it) and returns
// the result.
func (t *together) learn(directory string, found *CATiming, timings []acmemail.ChallengeTiming, now time.Time) *CATiming {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.learned[directory]
	if l == nil {
		l = &caLearning{}
		t.learned[directory] = l
	}
	base := found
	if l.touched {
		base = l.t
	}
	n := learn(base, directory, timings, now)
	if n == nil {
		return found
	}
	l.t, l.touched, l.dirty = n, true, true
	return n
}

// unlearn drops what the run learned about the CA at directory: a
// renewal removed its file, and only what is learned after that is
// written.
func (t *together) unlearn(directory string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.learned[directory] = &caLearning{touched: true}
}

// saveLearned writes what the run learned, warning through prog.
func (t *together) saveLearned(store *keystore.Store, prog Reporter) {
	t.mu.Lock()
	var dirty []*CATiming
	for _, l := range t.learned {
		if l.dirty {
			dirty, l.dirty = append(dirty, l.t), false
		}
	}
	t.mu.Unlock()
	for _, ct := range dirty {
		if err := saveCATiming(store, ct); err != nil && prog != nil {
			prog.Printf("warning: %v", err)
		}
	}
}

// LearnedTiming is what show and doctor say about a CA's learned timing.
type LearnedTiming struct {
	Summary string    `json:"summary"`
	Learned *CATiming `json:"learned,omitempty"` // nil: nothing learned
	// Next is how the next run with the profile times its challenges.
	Next    RunTiming `json:"next"`
	Warning string    `json:"warning,omitempty"` // the learned file cannot be used
}

// LearnedTimingOf is what was learned about the CA at directory and how a
// run with profile p would use it. It writes nothing.
func LearnedTimingOf(store *keystore.Store, directory string, p Profile) *LearnedTiming {
	t, err := LoadCATiming(store, directory)
	lt := &LearnedTiming{Learned: t, Summary: t.Describe(), Next: t.Timing(p)}
	if err != nil {
		lt.Warning = err.Error()
	}
	if t != nil && !lt.Next.Learned {
		lt.Summary += "; the next run does not need it (the recorded --mail-wait or --reply-settle wins, or it changes nothing)"
	}
	return lt
}

// Text is the summary, or "" for nil (show's row).
func (lt *LearnedTiming) Text() string {
	if lt == nil {
		return ""
	}
	return lt.Summary
}
