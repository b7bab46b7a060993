//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
)

// results are the figures of one bench run.
type results struct {
	machine       string
	reactionIdle  summary
	reactionPoll  summary
	pollInterval  time.Duration
	reactionCLI   summary
	obtain        map[string]*obtainFigures // by key type
	scale         []scalePoint
	renewScale    []scalePoint // acmemail renew, when the binary has it
	renewParallel int          // --parallel given to renew (0: its default)
	concurrency   int
	waitingCfg    waitingConfig
	waiting       []waitingPoint
	learned       *learnedFigures
}

type obtainFigures struct {
	keyType   string
	wall, cpu summary
	maxRSS    []int64
	phases    map[string][]time.Duration
	acme      map[string]int // of the last run, by request
	nACME     int
	nIMAP     int
	nSMTP     int
	clientReq int64
}

type scalePoint struct {
	n      int
	total  summary
	cpu    summary // library: CPU time of this process (client library and sandbox); renew: of the child
	maxRSS int64   // renew only
	// renew only: CPU time of the bench process while the child ran, that
	// is, of the sandbox serving it (and the bench's own bookkeeping).
	sandboxCPU summary
}

// scaleConcurrency is the default bound on identities renewed at once in
// the scale figure (the library flow's bound; see BENCHMARKS.md).
const scaleConcurrency = 16

func run(ctx context.Context, cfg config, log io.Writer) (*results, error) {
	parent := cfg.dir
	if parent == "" {
		parent = benchParent()
	}
	tmp, err := os.MkdirTemp(parent, "acmemail-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	logf(log, "state directories in %s", tmp)
	res := &results{machine: machine(), obtain: map[string]*obtainFigures{}, pollInterval: cfg.pollInterval, concurrency: cfg.concurrency}

	bin := cfg.bin
	if bin == "" && (cfg.cliRuns > 0 || len(cfg.waiting.sizes) > 0 || cfg.learned.runs > 0) {
		logf(log, "building ./cmd/acmemail")
		if bin, err = buildCLI(ctx, tmp); err != nil {
			return nil, err
		}
	}
	if cfg.learned.runs > 0 && !cfg.waitingOnly {
		if res.learned, err = learnedFigure(ctx, bin, mkdir(tmp, "learned"), cfg.learned, log); err != nil {
			return nil, err
		}
	}
	if len(cfg.waiting.sizes) > 0 && !cfg.learnedOnly {
		res.waitingCfg = cfg.waiting
		res.waitingCfg.repeat = max(cfg.waiting.repeat, 1)
		if res.waiting, err = waitingFigures(ctx, bin, tmp, res.waitingCfg, log); err != nil {
			return nil, err
		}
	}
	if cfg.waitingOnly || cfg.learnedOnly {
		return res, nil
	}

	w, err := startWorld(ctx, sandbox.Options{}, tmp)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	acct, err := newAccount(w.pool)
	if err != nil {
		return nil, err
	}
	store, err := keystore.Open(mkdir(tmp, "lib"))
	if err != nil {
		return nil, err
	}

	// Warm up: the sandbox makes the domain's DKIM key on first use.
	if err := libObtain(ctx, w, store, acct, "warmup@example.test", keystore.KeyP256, 0); err != nil {
		return nil, err
	}
	w.rec.take()

	logf(log, "reaction over IDLE: %d issuances through the library", cfg.runs)
	if res.reactionIdle, err = reactions(ctx, w, store, acct, "idle@example.test", cfg.runs, 0); err != nil {
		return nil, err
	}

	var cliReactions []time.Duration
	for _, kt := range []string{"p256", "rsa2048"} {
		if cfg.cliRuns == 0 {
			break
		}
		logf(log, "acmemail obtain --key-type %s: %d child processes, first issuance each (new state directory)", kt, cfg.cliRuns)
		f := &obtainFigures{keyType: kt, phases: map[string][]time.Duration{}}
		var walls, cpus []time.Duration
		for i := range cfg.cliRuns {
			r, err := cliObtain(ctx, bin, w, mkdir(tmp, fmt.Sprintf("cli-%s-%d", kt, i)), "cli-"+kt+"@example.test", kt)
			if err != nil {
				return nil, err
			}
			walls, cpus = append(walls, r.wall), append(cpus, r.cpu)
			f.maxRSS = append(f.maxRSS, r.maxRSS)
			for _, p := range r.phases {
				f.phases[p.name] = append(f.phases[p.name], p.d)
			}
			f.acme, f.nACME, f.nIMAP, f.nSMTP, f.clientReq = r.acme, r.nACME, r.nIMAP, r.nSMTP, r.requests
			cliReactions = append(cliReactions, r.reaction)
		}
		f.wall, f.cpu = summarize(walls), summarize(cpus)
		res.obtain[kt] = f
	}
	res.reactionCLI = summarize(cliReactions)

	logf(log, "reaction without IDLE (polling every %s): %d issuances", cfg.pollInterval, cfg.pollRuns)
	if res.reactionPoll, err = reactions(ctx, w, store, acct, "poll@example.test", cfg.pollRuns, cfg.pollInterval); err != nil {
		return nil, err
	}

	for _, n := range cfg.scale {
		logf(log, "scale: %d identities at once (bound %d), %d times", n, cfg.concurrency, cfg.scaleRepeat)
		var totals, cpus []time.Duration
		for rep := range cfg.scaleRepeat {
			emails := make([]string, n)
			for i := range emails {
				emails[i] = fmt.Sprintf("scale%d-%d-%d@example.test", n, rep, i)
				if _, err := w.user(emails[i]); err != nil {
					return nil, err
				}
			}
			st, err := keystore.Open(mkdir(tmp, fmt.Sprintf("scale-%d-%d", n, rep)))
			if err != nil {
				return nil, err
			}
			cpu0 := processCPU()
			d, err := obtainMany(ctx, w, st, acct, emails, cfg.concurrency)
			if err != nil {
				return nil, err
			}
			totals, cpus = append(totals, d), append(cpus, processCPU()-cpu0)
		}
		res.scale = append(res.scale, scalePoint{n: n, total: summarize(totals), cpu: summarize(cpus)})
	}
	if bin != "" && cfg.cliRuns > 0 && hasRenew(ctx, bin) {
		wr, err := startWorld(ctx, sandbox.Options{}, mkdir(tmp, "renew"))
		if err != nil {
			return nil, err
		}
		defer wr.Close()
		wr.password = "bench-renew-password"
		res.renewParallel = cfg.renewParallel
		for _, n := range cfg.scale {
			logf(log, "scale: acmemail renew --force for %d identities (set up with acmemail obtain first), %d times", n, cfg.scaleRepeat)
			var totals, cpus, sandboxCPUs []time.Duration
			var rss int64
			for rep := range cfg.scaleRepeat {
				emails := make([]string, n)
				for i := range emails {
					emails[i] = fmt.Sprintf("renew%d-%d-%d@example.test", n, rep, i)
				}
				r, err := cliRenewScale(ctx, bin, wr, mkdir(tmp, fmt.Sprintf("renew-%d-%d", n, rep)), emails, cfg.renewParallel)
				if err != nil {
					return nil, err
				}
				totals, cpus, rss = append(totals, r.wall), append(cpus, r.cpu), max(rss, r.maxRSS)
				sandboxCPUs = append(sandboxCPUs, r.sandboxCPU)
			}
			res.renewScale = append(res.renewScale, scalePoint{n: n, total: summarize(totals), cpu: summarize(cpus), maxRSS: rss, sandboxCPU: summarize(sandboxCPUs)})
		}
	} else if bin != "" && cfg.cliRuns > 0 {
		logf(log, "scale: this acmemail has no renew command; only the library figure is measured")
	}
	return res, nil
}

// reactions runs n library issuances for email and returns the reaction
// latencies the sandbox observed.
func reactions(ctx context.Context, w *world, store *keystore.Store, acct *account, email string, n int, poll time.Duration) (summary, error) {
	var ds []time.Duration
	for range n {
		w.rec.take()
		start := time.Now()
		if err := libObtain(ctx, w, store, acct, email, keystore.KeyP256, poll); err != nil {
			return summary{}, err
		}
		is := analyze(w.rec.take(), email, start, time.Now())
		if is.reaction <= 0 {
			return summary{}, fmt.Errorf("no reaction observed for %s", email)
		}
		ds = append(ds, is.reaction)
	}
	return summarize(ds), nil
}

// obtainMany issues certificates for emails, at most bound at once, and
// returns the total time.
func obtainMany(ctx context.Context, w *world, store *keystore.Store, acct *account, emails []string, bound int) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, bound)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	start := time.Now()
	for _, e := range emails {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := libObtain(ctx, w, store, acct, e, keystore.KeyP256, 0); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if len(errs) > 0 {
		return 0, errs[0]
	}
	return d, nil
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mkdir(parent, name string) string {
	dir := parent + string(os.PathSeparator) + name
	if err := os.MkdirAll(dir, 0o700); err != nil {
		panic(err)
	}
	return dir
}

// protocolMinimum is the fewest ACME requests a first issuance of one email
// identifier needs from a CA that validates and issues while answering (as
// the sandbox does), and that hands out a nonce with the directory (so no
// HEAD newNonce is needed). BENCHMARKS.md justifies each.
var protocolMinimum = []string{
	"GET directory", "POST newAccount", "POST newOrder", "POST authz",
	"POST challenge", "POST finalize", "POST cert",
}

// notes explain requests that are not in protocolMinimum.
var requestNotes = map[string]string{
	"HEAD newNonce":   "only when no earlier response carried Replay-Nonce",
	"GET renewalInfo": "RFC 9773 ARI after issuance, to schedule the renewal",
	"POST order":      "only while the order is not ready (or processing)",
}

func (r *results) print(out io.Writer) {
	fmt.Fprintf(out, "Machine: %s (at the start); load average at the end: %s\n", r.machine, loadAverage())
	if r.reactionIdle.n > 0 || len(r.obtain) > 0 || len(r.scale) > 0 { // not with -waiting-only or -learned-only
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| figure | runs | median | p99 | min | max |")
		fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|")
	}
	row := func(name string, s summary) {
		if s.n == 0 {
			return
		}
		fmt.Fprintf(out, "| %s | %d | %s | %s | %s | %s |\n", name, s.n, ms(s.median), ms(s.p99), ms(s.min), ms(s.max))
	}
	row("reaction, IDLE (library)", r.reactionIdle)
	row("reaction, IDLE (`acmemail obtain`)", r.reactionCLI)
	row(fmt.Sprintf("reaction, polling every %s", r.pollInterval), r.reactionPoll)
	for _, kt := range []string{"p256", "rsa2048"} {
		f := r.obtain[kt]
		if f == nil {
			continue
		}
		row("`acmemail obtain --key-type "+kt+"`, wall", f.wall)
		row("`acmemail obtain --key-type "+kt+"`, CPU (user+sys)", f.cpu)
	}
	for _, p := range r.scale {
		row(fmt.Sprintf("scale: %d identities, total", p.n), p.total)
	}
	if len(r.scale) > 1 {
		base := r.scale[0]
		fmt.Fprintln(out)
		fmt.Fprintf(out, "Scale (library flow, at most %d identities at once, one shared ACME account and HTTP client):\n\n", r.concurrency)
		fmt.Fprintln(out, "| identities | total (median) | per identity | vs. one | CPU per identity (client + sandbox) |")
		fmt.Fprintln(out, "|---:|---:|---:|---:|---:|")
		for _, p := range r.scale {
			fmt.Fprintf(out, "| %d | %s | %s | %.1f× | %s |\n", p.n, ms(p.total.median), ms(p.total.median/time.Duration(p.n)),
				float64(p.total.median)/float64(base.total.median), ms(p.cpu.median/time.Duration(p.n)))
		}
	}

	if len(r.renewScale) > 0 {
		base := r.renewScale[0]
		par := "its default --parallel"
		if r.renewParallel > 0 {
			par = fmt.Sprintf("--parallel %d", r.renewParallel)
		}
		fmt.Fprintln(out)
		fmt.Fprintf(out, "Scale (`acmemail renew --force` as one child process, %s, for identities obtained before):\n\n", par)
		fmt.Fprintln(out, "| identities | total (median) | per identity | vs. one | CPU per identity: acmemail | sandbox | CPU-bound floor | floor vs. one | peak RSS |")
		fmt.Fprintln(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		cores := time.Duration(runtime.NumCPU())
		for _, p := range r.renewScale {
			// The least wall time the CPU both processes used can take on
			// this machine's cores, and so the best ratio to one identity
			// that this much work per identity allows.
			floor := (p.cpu.median + p.sandboxCPU.median) / cores
			fmt.Fprintf(out, "| %d | %s | %s | %.1f× | %s | %s | %s | %.1f× | %.1f MiB |\n", p.n, ms(p.total.median), ms(p.total.median/time.Duration(p.n)),
				float64(p.total.median)/float64(base.total.median), ms(p.cpu.median/time.Duration(p.n)), ms(p.sandboxCPU.median/time.Duration(p.n)),
				ms(floor), float64(floor)/float64(base.total.median), float64(p.maxRSS)/(1<<20))
		}
		fmt.Fprintf(out, "\nCPU-bound floor: the CPU time of acmemail and of the sandbox (medians) divided by the %d cores.\n", runtime.NumCPU())
	}
	printWaiting(out, r.waitingCfg, r.waiting)
	printLearned(out, r.learned)

	for _, kt := range []string{"p256", "rsa2048"} {
		f := r.obtain[kt]
		if f == nil {
			continue
		}
		fmt.Fprintln(out)
		fmt.Fprintf(out, "Phases of `acmemail obtain --key-type %s` (median of %d; the medians need not add up to the total):\n\n", kt, f.wall.n)
		fmt.Fprintln(out, "| phase | median | p99 |")
		fmt.Fprintln(out, "|---|---:|---:|")
		for _, name := range phaseNames {
			s := summarize(f.phases[name])
			fmt.Fprintf(out, "| %s | %s | %s |\n", name, ms(s.median), ms(s.p99))
		}
		rss := slices.Clone(f.maxRSS)
		slices.Sort(rss)
		fmt.Fprintf(out, "\nPeak RSS of the acmemail process (getrusage of the child): median %.1f MiB, max %.1f MiB\n",
			float64(rss[len(rss)/2])/(1<<20), float64(rss[len(rss)-1])/(1<<20))
	}

	if f := r.obtain["p256"]; f != nil {
		fmt.Fprintln(out)
		fmt.Fprintf(out, "Requests per first issuance (`acmemail obtain`, new account; ACME %d as the sandbox counted them, %d as the client counted them):\n\n", f.nACME, f.clientReq)
		fmt.Fprintln(out, "| ACME request | sent | protocol minimum | note |")
		fmt.Fprintln(out, "|---|---:|---:|---|")
		minimum := map[string]int{}
		for _, m := range protocolMinimum {
			minimum[m]++
		}
		keys := make([]string, 0, len(f.acme))
		for k := range f.acme {
			keys = append(keys, k)
		}
		for k := range minimum {
			if f.acme[k] == 0 {
				keys = append(keys, k)
			}
		}
		order := map[string]int{}
		for i, m := range protocolMinimum {
			order[m] = i
		}
		sort.SliceStable(keys, func(i, j int) bool {
			oi, iok := order[keys[i]]
			oj, jok := order[keys[j]]
			if iok != jok {
				return iok
			}
			if oi != oj {
				return oi < oj
			}
			return keys[i] < keys[j]
		})
		for _, k := range keys {
			fmt.Fprintf(out, "| %s | %d | %d | %s |\n", k, f.acme[k], minimum[k], requestNotes[k])
		}
		fmt.Fprintf(out, "| **total** | **%d** | **%d** | |\n", f.nACME, len(protocolMinimum))
		fmt.Fprintf(out, "\nIMAP commands: %d; SMTP commands: %d (see BENCHMARKS.md for the minimum)\n", f.nIMAP, f.nSMTP)
	}
}
