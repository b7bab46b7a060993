package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// timingArgs are obtain's arguments without obtainArgs' --mail-wait, so
// that a run can use what was learned about the CA.
func timingArgs(w *sandbox.World, extra ...string) []string {
	args := []string{"obtain", "--server", w.DirectoryURL, "--imap", w.IMAPURL, "--smtp", w.SMTPURL,
		"--dns-resolver", w.DNSAddr, "--reply-settle", "0", "--agree-tos", "--force"}
	return append(append(args, extra...), "alice@example.test")
}

func learnedTiming(t *testing.T, env map[string]string, dirURL string) *issuer.CATiming {
	t.Helper()
	got, err := issuer.LoadCATiming(openHome(t, env), dirURL)
	if err != nil {
		t.Fatalf("the learned timing: %v", err)
	}
	return got
}

// challengeGaps records, per challenge POST, how long after the
// authorization fetch before it it came.
type challengeGaps struct {
	mu    sync.Mutex
	authz time.Time
	gaps  []time.Duration
}

func (g *challengeGaps) observe(o sandbox.Observation) {
	if o.Kind != sandbox.ObserveACME {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch o.Detail {
	case "POST authz":
		g.authz = o.At
	case "POST challenge":
		g.gaps = append(g.gaps, o.At.Sub(g.authz))
	}
}

func (g *challengeGaps) last() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gaps[len(g.gaps)-1]
}

// TestLearnedTimingMailAfterPost: a first run against a CA that mails
// only after the challenge POST learns so; the next runs with the default
// --mail-wait (20 s) POST at once: they succeed within a --timeout of 10 s,
// which waiting the mail wait could not. An explicit --mail-wait still
// wins (the POST comes no earlier than it).
func TestLearnedTimingMailAfterPost(t *testing.T) {
	t.Parallel()
	gaps := &challengeGaps{}
	w, env := world(t, sandbox.Options{MailTiming: sandbox.MailAfterChallenge, RenewalWindow: far, Observe: gaps.observe})
	if r := runCLI(t, env, timingArgs(w, "--mail-wait", "300ms")...); r.code != 0 {
		t.Fatalf("first obtain: exit %d\n%s", r.code, r.stderr)
	}
	lt := learnedTiming(t, env, w.DirectoryURL)
	if lt == nil || !lt.MailAfterPost || lt.Runs != 1 {
		t.Fatalf("learned after the first run: %+v, want mail_after_post", lt)
	}
	path := openHome(t, env).CATimingPath(w.DirectoryURL)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("learned file: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("learned directory: %v, want 0700", err)
	}

	// The default mail wait: what was learned is used.
	r := runCLI(t, env, timingArgs(w, "--mail-wait", "20s", "--timeout", "10s")...)
	if r.code != 0 {
		t.Fatalf("obtain with the learned timing: exit %d\n%s", r.code, r.stderr)
	}
	if g := gaps.last(); g >= 5*time.Second {
		t.Errorf("the challenge was POSTed %s after the authorization fetch, want at once", g)
	}
	r = runCLI(t, env, "renew", "--force", "--json", "--timeout", "10s")
	var outs []renewOutcome
	if err := json.Unmarshal([]byte(r.stdout), &outs); err != nil || len(outs) != 1 || outs[0].Status != "renewed" || outs[0].TimingRetry {
		t.Fatalf("renew --force: exit %d, %s (%v)\n%s", r.code, r.stdout, err, r.stderr)
	}
	if lt := learnedTiming(t, env, w.DirectoryURL); lt == nil || !lt.MailAfterPost || lt.Runs != 3 {
		t.Errorf("learned after three runs: %+v", lt)
	}

	// show says so.
	r = runCLI(t, env, "show", "--json", "alice@example.test")
	var st struct {
		Timing *issuer.LearnedTiming `json:"learned_timing"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Timing == nil || st.Timing.Learned == nil || !st.Timing.Next.PostAtOnce {
		t.Errorf("show --json learned_timing = %+v (%v)\n%s", st.Timing, err, r.stdout)
	}

	// An explicit --mail-wait wins over what was learned.
	if r := runCLI(t, env, timingArgs(w, "--mail-wait", "1500ms")...); r.code != 0 {
		t.Fatalf("obtain --mail-wait 1500ms: exit %d\n%s", r.code, r.stderr)
	}
	if g := gaps.last(); g < 1500*time.Millisecond {
		t.Errorf("with --mail-wait 1500ms the challenge was POSTed %s after the authorization fetch", g)
	}
}

// TestLearnedTimingRetry: a learned timing that is wrong (a CA that mails
// at the authorization fetch and checks for the reply only right after
// the POST, recorded as one that mails after the POST) makes the renewal
// fail once; it is retried with the safe defaults, succeeds, says so
// (timing_retry), and the CA is learned anew.
func TestLearnedTimingRetry(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{MailTiming: sandbox.MailAtAuthorization, ValidationWindow: time.Millisecond, RenewalWindow: far})
	if r := runCLI(t, env, timingArgs(w)...); r.code != 0 {
		t.Fatalf("obtain: exit %d\n%s", r.code, r.stderr)
	}
	lt := learnedTiming(t, env, w.DirectoryURL)
	if lt == nil || lt.MailAfterPost {
		t.Fatalf("learned: %+v, want the mail before the POST", lt)
	}
	wrong := *lt
	wrong.MailAfterPost = true
	data, _ := json.Marshal(wrong)
	if err := openHome(t, env).WriteCATiming(w.DirectoryURL, data); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, env, "renew", "--force", "--json")
	var outs []renewOutcome
	if err := json.Unmarshal([]byte(r.stdout), &outs); err != nil || len(outs) != 1 {
		t.Fatalf("renew --force: exit %d, %s (%v)\n%s", r.code, r.stdout, err, r.stderr)
	}
	if outs[0].Status != "renewed" || !outs[0].TimingRetry || r.code != 0 {
		t.Errorf("renew --force: exit %d, %+v, want renewed after a retry\n%s", r.code, outs[0], r.stderr)
	}
	if st := w.Stats(); st.ChallengesInvalid != 1 || st.CertificatesIssued != 2 {
		t.Errorf("the CA saw %d invalid challenges and issued %d certificates, want 1 and 2", st.ChallengesInvalid, st.CertificatesIssued)
	}
	if lt := learnedTiming(t, env, w.DirectoryURL); lt == nil || lt.MailAfterPost {
		t.Errorf("learned after the retry: %+v, want the mail before the POST", lt)
	}
}

// TestLearnedTimingCorrupt: a damaged learned file is a warning, never
// fatal: the run uses the safe defaults and replaces it.
func TestLearnedTimingCorrupt(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	store := openHome(t, env)
	if err := store.WriteCATiming(w.DirectoryURL, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, env, timingArgs(w)...)
	if r.code != 0 {
		t.Fatalf("obtain with a damaged learned file: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "warning: what was learned about the CA") {
		t.Errorf("no warning about the damaged file:\n%s", r.stderr)
	}
	if lt := learnedTiming(t, env, w.DirectoryURL); lt == nil || lt.MailAfterPost || lt.Runs != 1 {
		t.Errorf("the damaged file was not replaced: %+v", lt)
	}
}

// TestDoctorCATiming: with a state directory, doctor's last check is
// ca-timing: PASS with what was learned about the CA (its Describe line)
// after a run that learned, and WARN, with a fix line, when the learned
// file is damaged.
func TestDoctorCATiming(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{MailTiming: sandbox.MailAfterChallenge})
	if r := runCLI(t, env, timingArgs(w, "--mail-wait", "300ms")...); r.code != 0 {
		t.Fatalf("obtain: exit %d\n%s", r.code, r.stderr)
	}
	lt := learnedTiming(t, env, w.DirectoryURL)
	if lt == nil || !lt.MailAfterPost {
		t.Fatalf("learned: %+v, want mail_after_post", lt)
	}
	caTiming := func(r cliResult) (doctorCheck, []string) {
		t.Helper()
		var checks []doctorCheck
		if err := json.Unmarshal([]byte(r.stdout), &checks); err != nil || len(checks) == 0 {
			t.Fatalf("doctor --json: exit %d, %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
		}
		var names []string
		for _, c := range checks {
			names = append(names, c.Name)
		}
		return checks[len(checks)-1], names
	}
	r := runCLI(t, env, doctorArgs(w)...)
	c, names := caTiming(r)
	if got, want := strings.Join(names, " "), "imap-login imap-idle smtp-login dkim ca-directory ca-email ca-timing"; got != want || r.code != 0 {
		t.Fatalf("doctor: exit %d, checks %s, want %s\n%s", r.code, got, want, r.stderr)
	}
	if c.Status != "pass" || !c.OK || c.Detail != lt.Describe() {
		t.Errorf("ca-timing after a learned run = %+v, want pass with %q", c, lt.Describe())
	}

	if err := openHome(t, env).WriteCATiming(w.DirectoryURL, []byte(`{"version":1,`)); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, env, doctorArgs(w)...)
	c, _ = caTiming(r)
	if r.code != 0 || c.Name != "ca-timing" || c.Status != "warn" || !c.OK || c.Fix == "" {
		t.Errorf("doctor with a damaged learned file: exit %d, ca-timing %+v, want a warning with a fix\n%s", r.code, c, r.stderr)
	}
	if !strings.Contains(c.Detail, openHome(t, env).CATimingPath(w.DirectoryURL)) {
		t.Errorf("ca-timing detail %q does not name the damaged file", c.Detail)
	}
}

// TestLearnedTimingTimeoutUnlearns: a run with timings learned about the
// CA that its --timeout ends (here: the CA mails after the POST, as
// learned, but now takes longer than the whole timeout) forgets what was
// learned, so the next run is a safe one instead of a repeat.
func TestLearnedTimingTimeoutUnlearns(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{MailTiming: sandbox.MailAfterChallenge, RenewalWindow: far})
	if r := runCLI(t, env, timingArgs(w, "--mail-wait", "300ms")...); r.code != 0 {
		t.Fatalf("obtain: exit %d\n%s", r.code, r.stderr)
	}
	// Recorded with the default mail wait, which learned timings replace.
	if r := runCLI(t, env, timingArgs(w, "--mail-wait", "20s", "--timeout", "10s")...); r.code != 0 {
		t.Fatalf("obtain with the learned timing: exit %d\n%s", r.code, r.stderr)
	}
	if lt := learnedTiming(t, env, w.DirectoryURL); lt == nil || !lt.MailAfterPost {
		t.Fatalf("learned: %+v, want the mail after the POST", lt)
	}
	w.SetMailDelay(time.Minute)
	r := runCLI(t, env, "renew", "--force", "--json", "--timeout", "1s")
	if r.code == 0 {
		t.Fatalf("renew --force --timeout 1s with no mail: exit 0\n%s", r.stdout)
	}
	if lt := learnedTiming(t, env, w.DirectoryURL); lt != nil {
		t.Errorf("learned after a run the timeout ended: %+v, want it forgotten", lt)
	}
}
