//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
)

// The benchmarks share one sandbox world per test binary; its start-up is
// not measured. Run them with
//
//	go test -run '^$' -bench . -benchtime 50x ./examples/bench
//
// They report the figures of BENCHMARKS.md as custom metrics (ms, counts)
// next to ns/op.

var shared struct {
	once  sync.Once
	err   error
	dir   string
	w     *world
	acct  *account
	store *keystore.Store
	bin   string
}

func sharedWorld(b *testing.B, withCLI bool) (*world, *account, *keystore.Store) {
	b.Helper()
	shared.once.Do(func() {
		ctx := context.Background()
		if shared.dir, shared.err = os.MkdirTemp(benchParent(), "acmemail-bench-"); shared.err != nil {
			return
		}
		if shared.w, shared.err = startWorld(ctx, sandbox.Options{}, shared.dir); shared.err != nil {
			return
		}
		if shared.acct, shared.err = newAccount(shared.w.pool); shared.err != nil {
			return
		}
		if shared.store, shared.err = keystore.Open(mkdir(shared.dir, "lib")); shared.err != nil {
			return
		}
		shared.err = libObtain(ctx, shared.w, shared.store, shared.acct, "warmup@example.test", keystore.KeyP256, 0)
	})
	if shared.err != nil {
		b.Fatal(shared.err)
	}
	if withCLI && shared.bin == "" {
		bin, err := buildCLI(context.Background(), shared.dir)
		if err != nil {
			b.Fatal(err)
		}
		shared.bin = bin
	}
	return shared.w, shared.acct, shared.store
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.w != nil {
		shared.w.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

func reportDurations(b *testing.B, name string, d []time.Duration) {
	s := summarize(d)
	b.ReportMetric(float64(s.median)/1e6, name+"-median-ms")
	b.ReportMetric(float64(s.p99)/1e6, name+"-p99-ms")
}

// BenchmarkReaction: one issuance per op through the library; the metric is
// the time from the challenge mail being delivered to the reply being
// accepted by the submission server.
func BenchmarkReaction(b *testing.B) {
	for _, c := range []struct {
		name string
		poll time.Duration
	}{{"idle", 0}, {"poll-1s", time.Second}} {
		b.Run(c.name, func(b *testing.B) {
			w, acct, store := sharedWorld(b, false)
			email := "bench-" + c.name + "@example.test"
			var ds []time.Duration
			for b.Loop() {
				w.rec.take()
				start := time.Now()
				if err := libObtain(b.Context(), w, store, acct, email, keystore.KeyP256, c.poll); err != nil {
					b.Fatal(err)
				}
				is := analyze(w.rec.take(), email, start, time.Now())
				ds = append(ds, is.reaction)
			}
			reportDurations(b, "reaction", ds)
		})
	}
}

// BenchmarkObtainCLI: one `acmemail obtain` child process per op, first
// issuance (new state directory, new account). ns/op is the wall time.
func BenchmarkObtainCLI(b *testing.B) {
	for _, kt := range []string{"p256", "rsa2048"} {
		b.Run(kt, func(b *testing.B) {
			w, _, _ := sharedWorld(b, true)
			var cpu []time.Duration
			var rss int64
			var acme, imap, smtp int
			i := 0
			for b.Loop() {
				i++
				r, err := cliObtain(b.Context(), shared.bin, w, mkdir(shared.dir, fmt.Sprintf("bench-cli-%s-%d", kt, i)), "bench-cli-"+kt+"@example.test", kt)
				if err != nil {
					b.Fatal(err)
				}
				cpu = append(cpu, r.cpu)
				rss = max(rss, r.maxRSS)
				acme, imap, smtp = r.nACME, r.nIMAP, r.nSMTP
			}
			reportDurations(b, "cpu", cpu)
			b.ReportMetric(float64(rss)/(1<<20), "max-rss-MiB")
			b.ReportMetric(float64(acme), "acme-requests")
			b.ReportMetric(float64(imap), "imap-commands")
			b.ReportMetric(float64(smtp), "smtp-commands")
		})
	}
}

// BenchmarkScale: one op issues certificates for n identities at once
// (bounded), through the library with one shared account.
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			w, acct, _ := sharedWorld(b, false)
			rep := 0
			for b.Loop() {
				b.StopTimer()
				rep++
				emails := make([]string, n)
				for i := range emails {
					emails[i] = fmt.Sprintf("bench-scale%d-%d-%d@example.test", n, rep, i)
					if _, err := w.user(emails[i]); err != nil {
						b.Fatal(err)
					}
				}
				store, err := keystore.Open(mkdir(shared.dir, fmt.Sprintf("bench-scale-%d-%d", n, rep)))
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := obtainMany(b.Context(), w, store, acct, emails, scaleConcurrency); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRenew: one op is one `acmemail renew --force` child process
// renewing n identities that were obtained before (untimed). Skipped when
// the binary has no renew command.
func BenchmarkRenew(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			w, _, _ := sharedWorld(b, true)
			if !hasRenew(b.Context(), shared.bin) {
				b.Skip("this acmemail has no renew command")
			}
			// renew takes one mail password for every address.
			w.password = "bench-renew-password"
			defer func() { w.password = "" }()
			rep := 0
			var cpu []time.Duration
			var switches, faults []int64
			for b.Loop() {
				b.StopTimer()
				rep++
				emails := make([]string, n)
				for i := range emails {
					emails[i] = fmt.Sprintf("bench-renew%d-%d-%d@example.test", n, rep, i)
				}
				home := mkdir(shared.dir, fmt.Sprintf("bench-renew-%d-%d", n, rep))
				if err := renewSetup(b.Context(), shared.bin, w, home, emails, ""); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				r, err := renewAll(b.Context(), shared.bin, w, home, emails, "", 0)
				if err != nil {
					b.Fatal(err)
				}
				cpu = append(cpu, r.cpu)
				switches, faults = append(switches, r.switches), append(faults, r.faults)
			}
			reportDurations(b, "cpu", cpu)
			// Counts of kernel work, steadier than CPU time on a shared VM.
			b.ReportMetric(float64(medianCount(switches))/float64(n), "switches-per-renewal")
			b.ReportMetric(float64(medianCount(faults))/float64(n), "faults-per-renewal")
		})
	}
}

// BenchmarkLearnedTiming: one op is one `acmemail renew --force` child
// process of one identity against a CA that mails only after the challenge
// POST, obtained before (untimed, the first run: it learns that). learned:
// with what the first run learned; forgotten: with the learned file removed
// before each op, so each waits the default --mail-wait (20 s) as every run
// did before acmemail learned (use -benchtime 3x).
func BenchmarkLearnedTiming(b *testing.B) {
	for _, forget := range []bool{false, true} {
		name := "learned"
		if forget {
			name = "forgotten"
		}
		b.Run(name, func(b *testing.B) {
			sharedWorld(b, true)
			lw, _, err := startLearned(b.Context(), shared.bin, mkdir(shared.dir, "bench-learned-"+name), learnedConfig{})
			if err != nil {
				b.Fatal(err)
			}
			defer lw.Close()
			var walls, posts []time.Duration
			for b.Loop() {
				r, err := lw.renew(b.Context(), forget)
				if err != nil {
					b.Fatal(err)
				}
				if !r.postBeforeMail || r.timingRetry {
					b.Fatalf("renew --force: POST before the mail %v, timing retry %v", r.postBeforeMail, r.timingRetry)
				}
				walls, posts = append(walls, r.wall), append(posts, r.post)
			}
			reportDurations(b, "renew", walls)
			reportDurations(b, "authz-to-post", posts)
		})
	}
}

// TestSmoke runs the bench command's code once with tiny numbers, so that
// it keeps working; it asserts what was counted, never how long anything
// took. The `acmemail obtain` child processes need a build of cmd/acmemail
// and run only with ACMEMAIL_BENCH_CLI=1 (the benchmarks always run them).
func TestSmoke(t *testing.T) {
	cfg := config{runs: 1, pollRuns: 1, pollInterval: 50 * time.Millisecond, scale: []int{1, 2}, scaleRepeat: 1, concurrency: 2, dir: t.TempDir()}
	if os.Getenv("ACMEMAIL_BENCH_CLI") == "1" {
		cfg.cliRuns = 1
		cfg.waiting = waitingConfig{sizes: []int{1, 2}, mailDelay: 100 * time.Millisecond, replyDelay: 50 * time.Millisecond, repeat: 1}
		// One renewal each way; the one without the learned file waits
		// the default --mail-wait, as does the first obtain.
		cfg.learned = learnedConfig{runs: 1, safeRuns: 1, mailDelay: 20 * time.Millisecond, replyDelay: 10 * time.Millisecond}
	}
	res, err := run(t.Context(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.reactionIdle.n != 1 || res.reactionPoll.n != 1 || res.reactionIdle.median <= 0 {
		t.Errorf("reactions: idle %+v, poll %+v; want one positive sample each", res.reactionIdle, res.reactionPoll)
	}
	if len(res.scale) != 2 {
		t.Errorf("scale points = %d, want 2", len(res.scale))
	}
	if f := res.obtain["p256"]; cfg.cliRuns > 0 {
		if f == nil {
			t.Fatal("no figures for acmemail obtain --key-type p256")
		}
		if int64(f.nACME) != f.clientReq {
			t.Errorf("the sandbox saw %d ACME requests, the client counted %d", f.nACME, f.clientReq)
		}
		for _, m := range protocolMinimum {
			if f.acme[m] == 0 {
				t.Errorf("no %s request was seen; requests: %v", m, f.acme)
			}
		}
		if f.nIMAP == 0 || f.nSMTP == 0 {
			t.Errorf("IMAP commands %d, SMTP commands %d; want some of each", f.nIMAP, f.nSMTP)
		}
	}
	if n := len(res.waiting); cfg.waiting.sizes != nil && n != 2*len(cfg.waiting.sizes) {
		t.Errorf("%d waiting-bound points, want %d", n, 2*len(cfg.waiting.sizes))
	}
	for _, p := range res.waiting {
		if p.cpu.median <= 0 || p.wall.median < 100*time.Millisecond {
			t.Errorf("waiting-bound point %+v: no CPU time, or faster than the mail delay", p)
		}
		if p.sys.median <= 0 || p.sys.median > p.cpu.median {
			t.Errorf("waiting-bound point %+v: the kernel's part of the CPU time is not part of it", p)
		}
		if p.switches <= 0 || p.faults <= 0 {
			t.Errorf("waiting-bound point %+v: no context switches or page faults counted", p)
		}
	}
	if f := res.learned; cfg.learned.runs > 0 {
		checkLearned(t, f, cfg.learned)
	}
	var out strings.Builder
	res.print(&out)
	if !strings.Contains(out.String(), "reaction, IDLE") {
		t.Errorf("the table lacks the reaction row:\n%s", out.String())
	}
}

// checkLearned checks what the learned-timing figure counted: every run
// (the obtain and each renewal) POSTed the challenge before the CA mailed
// it, one mail each, nothing failed or was retried, the renewals with the
// learned file started from "mails after the POST" and added to it, and
// each one without the file learned it anew.
func checkLearned(t *testing.T, f *learnedFigures, cfg learnedConfig) {
	t.Helper()
	if f == nil {
		t.Fatal("no learned-timing figure")
	}
	runs := 1 + cfg.runs + cfg.safeRuns
	if f.runs != runs || f.postBeforeMail != runs || f.mails != runs {
		t.Errorf("learned timing: %d runs, %d with the POST before the mail, %d mails; want %d each", f.runs, f.postBeforeMail, f.mails, runs)
	}
	if f.first.n != 1 || f.learned.n != cfg.runs || f.safe.n != cfg.safeRuns {
		t.Errorf("learned timing: samples %d, %d, %d; want 1, %d, %d", f.first.n, f.learned.n, f.safe.n, cfg.runs, cfg.safeRuns)
	}
	if f.startedLearned != cfg.runs || f.learnedRuns != 1+cfg.runs || f.relearned != cfg.safeRuns {
		t.Errorf("learned timing: %d renewals started learned (want %d), the file counted %d runs (want %d), %d relearned (want %d)",
			f.startedLearned, cfg.runs, f.learnedRuns, 1+cfg.runs, f.relearned, cfg.safeRuns)
	}
	if f.invalid != 0 || f.timingRetries != 0 {
		t.Errorf("learned timing: %d invalid challenges, %d timing retries; want none", f.invalid, f.timingRetries)
	}
}
