package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCIWaitsForDpkgLock: every apt-get that installs or updates in the
// CI scripts waits for the dpkg lock another apt-get or
// unattended-upgrades holds, instead of failing at once (issue 16, item
// 13: .ci/run failed at once on a machine still installing updates).
func TestCIWaitsForDpkgLock(t *testing.T) {
	t.Parallel()
	call := regexp.MustCompile(`apt-get\s+(-\S+\s+)*(update|install)\b[^;&|]*`)
	n := 0
	for _, name := range []string{"run", "realmail.sh"} {
		b, err := os.ReadFile(filepath.Join("..", "..", ".ci", name))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, c := range call.FindAllString(line, -1) {
				n++
				if !strings.Contains(c, "DPkg::Lock::Timeout=") {
					t.Errorf(".ci/%s:%d: %q does not wait for the dpkg lock (-o DPkg::Lock::Timeout=SECONDS)", name, i+1, c)
				}
			}
		}
	}
	if n < 4 {
		t.Errorf("found %d apt-get update/install calls in .ci/run and .ci/realmail.sh, want at least 4: has the script changed shape?", n)
	}
}
