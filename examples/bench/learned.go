//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
)

// The learned-timing figure (issue 17): against a CA that mails the
// challenge only after the challenge POST (the sandbox's
// `--sandbox-mail-timing challenge`, as secsy-pki), the first `acmemail
// obtain` waits the default --mail-wait for a mail that cannot come before
// the POST, and learns so; every later run (`renew --force`) POSTs at once.
// For comparison the same renewals with the learned file removed before
// each: what every run did before acmemail learned, the mail wait again.

// learnedConfig is the learned-timing figure's part of the bench's config.
type learnedConfig struct {
	runs       int           // renew --force with what was learned; 0 skips the figure
	safeRuns   int           // renew --force with the learned file removed before each
	mailDelay  time.Duration // --sandbox-mail-delay
	replyDelay time.Duration // --sandbox-reply-delay
}

// learnedFigures are the figure's timings and what was counted.
type learnedFigures struct {
	cfg           learnedConfig
	first         summary // the first obtain: nothing learned yet
	learned, safe summary // renew --force wall times
	// From the authorization fetch to the challenge POST, as the CA saw
	// them: what the learned timing saves.
	firstPost, learnedPost, safePost summary

	runs           int // obtains and renewals
	postBeforeMail int // runs in which the CA saw the challenge POST before it sent the mail
	mails          int // challenge mails the CA sent
	startedLearned int // renewals that started with a learned "mails after the POST"
	learnedRuns    int // the runs the learned file counted after the learned renewals
	relearned      int // renewals without the file after which it was learned anew
	timingRetries  int // renewals retried with the safe defaults (timing_retry)
	invalid        int // challenges the CA failed
}

// learnedRun is one obtain or renewal of the figure, as the CA saw it.
type learnedRun struct {
	wall           time.Duration
	post           time.Duration // first authorization fetch to challenge POST
	postBeforeMail bool
	mails          int
	timingRetry    bool
}

// learnedWorld is a sandbox CA that mails after the challenge POST, with
// one identity obtained in home (the first run, as today: nothing learned).
type learnedWorld struct {
	*world
	bin, home, email string
	store            *keystore.Store
}

func startLearned(ctx context.Context, bin, dir string, cfg learnedConfig) (*learnedWorld, learnedRun, error) {
	w, err := startWorld(ctx, sandbox.Options{MailTiming: sandbox.MailAfterChallenge, MailDelay: cfg.mailDelay, ReplyDelay: cfg.replyDelay}, dir)
	if err != nil {
		return nil, learnedRun{}, err
	}
	w.password = "bench-learned-password"
	lw := &learnedWorld{world: w, bin: bin, home: mkdir(dir, "home"), email: "learned@example.test"}
	if lw.store, err = keystore.Open(lw.home); err != nil {
		w.Close()
		return nil, learnedRun{}, err
	}
	w.rec.take()
	start := time.Now()
	// Without --mail-wait: the default, which is what learning replaces.
	if err := renewSetup(ctx, bin, w, lw.home, []string{lw.email}, ""); err != nil {
		w.Close()
		return nil, learnedRun{}, err
	}
	first := lw.observed(time.Since(start))
	return lw, first, nil
}

// observed is what the CA saw of the one run since the last take.
func (lw *learnedWorld) observed(wall time.Duration) learnedRun {
	r := learnedRun{wall: wall}
	var authz, post, mail time.Time
	for _, o := range lw.rec.take() {
		switch {
		case o.Kind == sandbox.ObserveACME && o.Detail == "POST authz" && authz.IsZero():
			authz = o.At
		case o.Kind == sandbox.ObserveACME && o.Detail == "POST challenge" && post.IsZero():
			post = o.At
		case o.Kind == sandbox.ObserveChallengeMail && o.Email == lw.email:
			r.mails++
			if mail.IsZero() {
				mail = o.At
			}
		}
	}
	if !authz.IsZero() && !post.IsZero() {
		r.post = post.Sub(authz)
	}
	r.postBeforeMail = !post.IsZero() && !mail.IsZero() && post.Before(mail)
	return r
}

// learnedTiming is what the state directory has learned about the CA (nil:
// nothing).
func (lw *learnedWorld) learnedTiming() (*issuer.CATiming, error) {
	return issuer.LoadCATiming(lw.store, lw.DirectoryURL)
}

// renew times one `acmemail renew --force` of the identity; forget removes
// the learned file first.
func (lw *learnedWorld) renew(ctx context.Context, forget bool) (learnedRun, error) {
	if forget {
		if err := lw.store.RemoveCATiming(lw.DirectoryURL); err != nil {
			return learnedRun{}, err
		}
	}
	lw.rec.take()
	rr, err := renewAll(ctx, lw.bin, lw.world, lw.home, []string{lw.email}, "", 0)
	if err != nil {
		return learnedRun{}, err
	}
	r := lw.observed(rr.wall)
	r.timingRetry = rr.timingRetries > 0
	return r, nil
}

// learnedFigure measures the first obtain, cfg.runs renewals with what it
// learned and cfg.safeRuns without.
func learnedFigure(ctx context.Context, bin, dir string, cfg learnedConfig, log io.Writer) (*learnedFigures, error) {
	logf(log, "learned timing: a CA that mails after the challenge POST (mail delay %s, reply delay %s): acmemail obtain, then %d × renew --force, then %d × renew --force without the learned file", cfg.mailDelay, cfg.replyDelay, cfg.runs, cfg.safeRuns)
	lw, first, err := startLearned(ctx, bin, dir, cfg)
	if err != nil {
		return nil, err
	}
	defer lw.Close()
	f := &learnedFigures{cfg: cfg, first: summarize([]time.Duration{first.wall}), firstPost: summarize([]time.Duration{first.post})}
	f.count(first)
	var walls, posts []time.Duration
	for range cfg.runs {
		if t, err := lw.learnedTiming(); err == nil && t != nil && t.MailAfterPost {
			f.startedLearned++
		}
		r, err := lw.renew(ctx, false)
		if err != nil {
			return nil, err
		}
		f.count(r)
		walls, posts = append(walls, r.wall), append(posts, r.post)
	}
	f.learned, f.learnedPost = summarize(walls), summarize(posts)
	if t, err := lw.learnedTiming(); err != nil {
		return nil, err
	} else if t != nil {
		f.learnedRuns = t.Runs
	}
	walls, posts = nil, nil
	for range cfg.safeRuns {
		r, err := lw.renew(ctx, true)
		if err != nil {
			return nil, err
		}
		f.count(r)
		walls, posts = append(walls, r.wall), append(posts, r.post)
		if t, err := lw.learnedTiming(); err == nil && t != nil && t.MailAfterPost && t.Runs == 1 {
			f.relearned++
		}
	}
	f.safe, f.safePost = summarize(walls), summarize(posts)
	f.invalid = lw.Stats().ChallengesInvalid
	return f, nil
}

func (f *learnedFigures) count(r learnedRun) {
	f.runs++
	f.mails += r.mails
	if r.postBeforeMail {
		f.postBeforeMail++
	}
	if r.timingRetry {
		f.timingRetries++
	}
}

// printLearned prints the learned-timing figure.
func printLearned(out io.Writer, f *learnedFigures) {
	if f == nil {
		return
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "Learned CA timing (a sandbox CA that mails the challenge only after the challenge POST, `--sandbox-mail-timing challenge`; mail delay %s, reply delay %s; one identity, the default --mail-wait %s; each run one `acmemail` child process):\n\n",
		f.cfg.mailDelay, f.cfg.replyDelay, acmemail.DefaultMailWait)
	fmt.Fprintln(out, "| run | runs | median | p99 | min | max | authz fetch to challenge POST (median) |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|")
	row := func(name string, s, post summary) {
		if s.n == 0 {
			return
		}
		fmt.Fprintf(out, "| %s | %d | %s | %s | %s | %s | %s |\n", name, s.n, ms(s.median), ms(s.p99), ms(s.min), ms(s.max), ms(post.median))
	}
	row("first run: `acmemail obtain`, nothing learned", f.first, f.firstPost)
	row("second and later runs: `renew --force`, learned", f.learned, f.learnedPost)
	row("`renew --force`, learned file removed before each (as before learning)", f.safe, f.safePost)
	fmt.Fprintf(out, "\nCounted: %d runs; the CA saw the challenge POST before it sent the mail in %d, sent %d challenge mails and failed %d challenges; %d renewals started with a learned \"mails after the POST\" (the learned file counted %d runs after them), %d without the file learned it anew; %d timing retries.\n",
		f.runs, f.postBeforeMail, f.mails, f.invalid, f.startedLearned, f.learnedRuns, f.relearned, f.timingRetries)
}
