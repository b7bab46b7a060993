package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// actAsMain is the environment variable that makes the test binary run
// main (see TestMain): acmemail as installed, signal handling included.
const actAsMain = "ACMEMAIL_TEST_MAIN"

// peakMemoryFile names the file the test binary acting as acmemail writes
// its peak memory to (Linux; see TestMain and TestHostileFiles).
const peakMemoryFile = "ACMEMAIL_TEST_PEAK_MEMORY_FILE"

func TestMain(m *testing.M) {
	// Re-executed by TestHostileFiles as acmemail that writes its peak
	// memory (VmHWM, which exec resets: the parent's pages do not count,
	// as they do in the rusage of a child) to the file named.
	if path := os.Getenv(peakMemoryFile); path != "" {
		code := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
		if status, err := os.ReadFile("/proc/self/status"); err == nil {
			for _, line := range strings.Split(string(status), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					os.WriteFile(path, []byte(strings.TrimSpace(v)), 0o600)
				}
			}
		}
		os.Exit(code)
	}
	// Re-executed by TestSignalExitStatus as acmemail itself: main, with
	// its signal handling.
	if os.Getenv(actAsMain) != "" {
		main()
	}
	// Re-executed by TestObtainKilledAfterReply as acmemail that stops
	// dead once its reply is sent, to be SIGKILLed there.
	if os.Getenv(hangAfterReply) != "" {
		ctx := context.WithValue(context.Background(), orderStateHookKey{}, hangHook)
		os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
	}
	testscript.Main(parallelDefault{m}, map[string]func(){
		"acmemail": func() {
			os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
		},
	})
}

// TestScript runs the CLI scripts in testdata/script: each is a txtar file
// of commands and expected output (see testscript's documentation).
func TestScript(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("ACMEMAIL_HOME", e.WorkDir+"/home")
			return nil
		},
	})
}
