//go:build unix

// Command bench measures acmemail against the embedded sandbox and prints
// the figures of BENCHMARKS.md as a Markdown table:
//
//	go run ./examples/bench              # the full run (a few minutes)
//	go run ./examples/bench -runs 3 -poll-runs 2 -scale 1,3 -learned 0   # a quick look
//
// Everything runs on loopback against one sandbox world started before any
// measurement (its start-up is not measured). `acmemail obtain` runs as a
// real child process (built from ./cmd/acmemail), so its CPU time and peak
// memory are its own. The same figures are available as Go benchmarks:
// go test -run '^$' -bench . ./examples/bench
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

func main() {
	var cfg config
	flag.IntVar(&cfg.runs, "runs", 50, "library issuances for the IDLE reaction figure")
	flag.IntVar(&cfg.cliRuns, "cli-runs", 50, "acmemail obtain child processes per key type (p256, rsa2048); 0 skips them")
	flag.IntVar(&cfg.pollRuns, "poll-runs", 20, "issuances for the polling reaction figure")
	flag.DurationVar(&cfg.pollInterval, "poll-interval", time.Second, "IMAP poll interval for the polling figure (mailbox default: 5s)")
	scale := flag.String("scale", "1,10,100", "numbers of identities for the scale figure")
	flag.IntVar(&cfg.scaleRepeat, "scale-repeat", 3, "how often each scale size is measured (the median is shown)")
	flag.IntVar(&cfg.concurrency, "concurrency", scaleConcurrency, "at most this many identities at once in the scale figure")
	flag.IntVar(&cfg.renewParallel, "renew-parallel", 0, "--parallel for acmemail renew in the scale figure (0: renew's default)")
	flag.StringVar(&cfg.bin, "acmemail", "", "acmemail binary to measure (default: build ./cmd/acmemail)")
	waitSizes := flag.String("waiting", "1,100", "numbers of identities for the waiting-bound figure (\"\": skip it)")
	flag.DurationVar(&cfg.waiting.mailDelay, "mail-delay", 2*time.Second, "the sandbox's mail delay in the waiting-bound figure")
	flag.DurationVar(&cfg.waiting.replyDelay, "reply-delay", time.Second, "the sandbox's reply delay in the waiting-bound figure")
	flag.IntVar(&cfg.waiting.parallel, "waiting-parallel", 0, "--parallel for renew in the waiting-bound figure (0: the number of identities)")
	flag.IntVar(&cfg.waiting.repeat, "waiting-repeat", 1, "how often each waiting-bound size is measured (the median is shown)")
	flag.BoolVar(&cfg.waitingOnly, "waiting-only", false, "measure only the waiting-bound figure")
	flag.IntVar(&cfg.learned.runs, "learned", 10, "renew --force runs with the learned CA timing, after one obtain (0: skip the learned-timing figure)")
	flag.IntVar(&cfg.learned.safeRuns, "learned-safe", 3, "renew --force runs with the learned file removed before each (each waits the default --mail-wait, 20s)")
	flag.DurationVar(&cfg.learned.mailDelay, "learned-mail-delay", 0, "the sandbox's mail delay in the learned-timing figure")
	flag.DurationVar(&cfg.learned.replyDelay, "learned-reply-delay", 0, "the sandbox's reply delay in the learned-timing figure")
	flag.BoolVar(&cfg.learnedOnly, "learned-only", false, "measure only the learned-timing figure")
	flag.StringVar(&cfg.dir, "dir", "", "where the bench makes its state directories (default: the user cache directory, as acmemail's own state is in the home directory, not the system temp directory; see BENCHMARKS.md)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (client library and sandbox) to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	for _, f := range strings.Split(*scale, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: -scale %q: want positive numbers separated by commas\n", *scale)
			os.Exit(2)
		}
		cfg.scale = append(cfg.scale, n)
	}
	if *waitSizes != "" {
		for _, f := range strings.Split(*waitSizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "bench: -waiting %q: want positive numbers separated by commas\n", *waitSizes)
				os.Exit(2)
			}
			cfg.waiting.sizes = append(cfg.waiting.sizes, n)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := run(ctx, cfg, os.Stderr)
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	res.print(os.Stdout)
}

type config struct {
	runs, cliRuns int
	pollRuns      int
	pollInterval  time.Duration
	scale         []int
	scaleRepeat   int
	concurrency   int
	renewParallel int
	bin           string
	dir           string // parent of the bench's directory; "": benchParent()
	waiting       waitingConfig
	waitingOnly   bool
	learned       learnedConfig
	learnedOnly   bool
}

// benchParent is where the bench makes its directory when -dir is not
// given: the user cache directory (~/.cache), not the system temp
// directory. acmemail keeps its state in the home directory; the temp
// directory is where builds and tests create and delete thousands of
// files, and on an ext4 without a journal every file created there then
// skips past each inode deleted in the last one to six minutes, which is
// charged to the creating process (BENCHMARKS.md measured it as 6–37% of
// a renewal's CPU in /tmp, 4–6% in ~/.cache). "" (the temp directory) if
// there is no usable cache directory.
func benchParent() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	return dir
}

// machine describes where the figures were taken.
func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s/%s, %d CPUs (%s), %s, load average %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), model, runtime.Version(), loadAverage())
}

// loadAverage is the system's 1, 5 and 15 minute load average.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "bench: "+format+"\n", args...)
}
