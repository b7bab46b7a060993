//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// The waiting-bound figure: renewals against a CA whose mail takes
// seconds, where what a renewal waits for is the mail, not the CPU. Each
// `acmemail renew --force --parallel N` child renews N identities obtained
// before (untimed, without the delays), in one of two layouts: every
// identity with a mailbox of its own, or all of them in one mailbox
// (aliases of one login, one IMAP connection for all).

// waitingConfig is the waiting figure's part of the bench's config.
type waitingConfig struct {
	sizes      []int         // identities per renew (the first is the base of the ratio)
	mailDelay  time.Duration // --sandbox-mail-delay
	replyDelay time.Duration // --sandbox-reply-delay
	parallel   int           // renew --parallel; 0: the number of identities
	repeat     int
}

// waitingPoint is one renew of n identities in one layout.
type waitingPoint struct {
	layout     string // "own mailboxes", "one mailbox"
	n          int
	wall       summary
	cpu        summary // of the acmemail child
	sys        summary // the kernel's part of cpu
	sandboxCPU summary // of this process meanwhile: the sandbox serving it
	maxRSS     int64
	// medians of the acmemail child's context switches and page faults
	switches, faults int64
}

var waitingLayouts = []string{"own mailboxes", "one mailbox"}

// waitingFigures measures every size in both layouts.
func waitingFigures(ctx context.Context, bin, tmp string, cfg waitingConfig, log io.Writer) ([]waitingPoint, error) {
	w, err := startWorld(ctx, sandbox.Options{}, mkdir(tmp, "waiting"))
	if err != nil {
		return nil, err
	}
	defer w.Close()
	w.password = "bench-waiting-password" // renew takes one mail password for all
	var out []waitingPoint
	for li, layout := range waitingLayouts {
		for _, n := range cfg.sizes {
			par := cfg.parallel
			if par <= 0 {
				par = n
			}
			logf(log, "waiting: acmemail renew --force --parallel %d of %d identities (%s), mail delay %s, reply delay %s, %d times", par, n, layout, cfg.mailDelay, cfg.replyDelay, cfg.repeat)
			var walls, cpus, syss, sandboxCPUs []time.Duration
			var switches, faults []int64
			var rss int64
			for rep := range cfg.repeat {
				emails := make([]string, n)
				for i := range emails {
					emails[i] = fmt.Sprintf("wait%d-%d-%d-%d@example.test", li, n, rep, i)
				}
				login := ""
				if layout == "one mailbox" {
					login = fmt.Sprintf("box%d-%d@example.test", n, rep)
					if _, err := w.user(login); err != nil {
						return nil, err
					}
					for _, e := range emails {
						if err := w.AddAlias(e, login); err != nil {
							return nil, err
						}
					}
				}
				home := mkdir(tmp, fmt.Sprintf("waiting-%d-%d-%d", li, n, rep))
				w.SetMailDelay(0)
				w.SetReplyDelay(0)
				if err := renewSetup(ctx, bin, w, home, emails, login); err != nil {
					return nil, err
				}
				w.SetMailDelay(cfg.mailDelay)
				w.SetReplyDelay(cfg.replyDelay)
				r, err := renewAll(ctx, bin, w, home, emails, login, par)
				if err != nil {
					return nil, err
				}
				walls, cpus, syss, sandboxCPUs = append(walls, r.wall), append(cpus, r.cpu), append(syss, r.sys), append(sandboxCPUs, r.sandboxCPU)
				switches, faults = append(switches, r.switches), append(faults, r.faults)
				rss = max(rss, r.maxRSS)
			}
			out = append(out, waitingPoint{layout: layout, n: n, wall: summarize(walls), cpu: summarize(cpus), sys: summarize(syss), sandboxCPU: summarize(sandboxCPUs), maxRSS: rss,
				switches: medianCount(switches), faults: medianCount(faults)})
		}
	}
	return out, nil
}

// printWaiting prints the waiting figure's table.
func printWaiting(out io.Writer, cfg waitingConfig, points []waitingPoint) {
	if len(points) == 0 {
		return
	}
	par := "--parallel N (as many as identities)"
	if cfg.parallel > 0 {
		par = fmt.Sprintf("--parallel %d", cfg.parallel)
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "Waiting-bound scale (`acmemail renew --force %s` as one child process; sandbox mail delay %s, reply delay %s; median of %d):\n\n", par, cfg.mailDelay, cfg.replyDelay, points[0].wall.n)
	fmt.Fprintln(out, "| layout | identities | total (median) | vs. one | acmemail CPU per renewal | of it in the kernel | context switches per renewal | page faults per renewal | sandbox CPU per renewal | peak RSS |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var base time.Duration
	for _, p := range points {
		if p.n == cfg.sizes[0] {
			base = p.wall.median
		}
		fmt.Fprintf(out, "| %s | %d | %s | %.2f× | %s | %s | %d | %d | %s | %.1f MiB |\n", p.layout, p.n, ms(p.wall.median), float64(p.wall.median)/float64(base),
			ms(p.cpu.median/time.Duration(p.n)), ms(p.sys.median/time.Duration(p.n)), p.switches/int64(p.n), p.faults/int64(p.n),
			ms(p.sandboxCPU.median/time.Duration(p.n)), float64(p.maxRSS)/(1<<20))
	}
}
