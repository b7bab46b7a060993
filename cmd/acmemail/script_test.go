package main

import (
	"context"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	// Re-executed by TestObtainKilledAfterReply as acmemail that stops
	// dead once its reply is sent, to be SIGKILLed there.
	if os.Getenv(hangAfterReply) != "" {
		ctx := context.WithValue(context.Background(), orderStateHookKey{}, hangHook)
		os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
	}
	testscript.Main(m, map[string]func(){
		"acmemail": func() {
			os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
		},
	})
}

// TestScript runs the CLI scripts in testdata/script: each is a txtar file
// of commands and expected output (see testscript's documentation).
func TestScript(t *testing.T) {
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
