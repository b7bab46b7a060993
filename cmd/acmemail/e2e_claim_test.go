package main

import (
	"bufio"
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// countFiles counts the reply records in dir: not replies/.record, the
// file each record is a link to, which the first claim creates before it
// links the record.
func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			n++
		}
		return nil
	})
	return n
}

// TestObtainKilledInClaimWindow: obtain is SIGKILLed after it recorded
// the challenge as answered and before the submission server accepted the
// reply (the sandbox holds the submission). The rerun must not wait for a
// validation that cannot come: it says the reply was never accepted, and
// gets a certificate from a new order. Looped; no challenge ever gets
// more than one reply.
func TestObtainKilledInClaimWindow(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far, SubmitDelay: time.Hour})
	args := obtainArgs(w, "--force") // each round orders anew
	replies := filepath.Join(env["ACMEMAIL_HOME"], "replies")
	for i := range 3 {
		w.SetSubmitDelay(time.Hour)
		claimed := countFiles(replies)
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), actAsMain+"=1", "XDG_CONFIG_HOME="+t.TempDir())
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		sc := bufio.NewScanner(stderr)
		received := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "received the challenge mail") {
				received = true
				break
			}
		}
		go io.Copy(io.Discard, stderr)
		if !received {
			cmd.Wait()
			t.Fatalf("round %d: the first run ended without receiving the challenge:\n%s", i, log.String())
		}
		// The claim is written right after the mail was accepted, before
		// the reply goes out; the submission server then holds the reply.
		deadline := time.Now().Add(30 * time.Second)
		for countFiles(replies) == claimed && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if countFiles(replies) == claimed {
			t.Fatalf("round %d: no reply record appeared", i)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		w.SetSubmitDelay(0)
		r := runCLI(t, env, args...)
		if r.code != 0 {
			t.Fatalf("round %d: rerun exit %d\n%s", i, r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "stopped before the submission server accepted its reply") || !strings.Contains(r.stderr, "starting a new one") {
			t.Errorf("round %d: the rerun does not say why it starts a new order:\n%s", i, r.stderr)
		}
	}
	s := w.Stats()
	for ch, n := range s.RepliesPerChallenge {
		if n > 1 {
			t.Errorf("challenge %s got %d replies", ch, n)
		}
	}
	if s.CertificatesIssued != 3 || s.Orders != 6 {
		t.Errorf("sandbox: %d certificates from %d orders, want 3 from 6 (each killed order abandoned)", s.CertificatesIssued, s.Orders)
	}
}
