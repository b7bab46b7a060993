package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/cmd/internal/servercmd"
	"github.com/acmemail/acmemail/cmd/internal/termout"
	"github.com/acmemail/acmemail/keystore"
	"github.com/spf13/cobra"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var (
	version = ""
	commit  = ""
	date    = ""
)

func versionString() string {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return v
}

// globals holds what every command shares: streams, environment, verbosity.
type globals struct {
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	getenv  func(string) string
	verbose int
	started bool // a command's own code began; errors before are usage errors

	configFile     string         // --config
	config         *config        // the parsed configuration file, or nil
	settingSources []configSource // flags set from the environment or the file
	// settingChecks are the checks a command makes of its settings before
	// it acts (obtain's, renew's), by command: checkSettings runs them.
	settingChecks map[*cobra.Command]func(email string) error

	// onOrderState, if set (by tests), sees every order state once the
	// issuer recorded it.
	onOrderState func(acmemail.OrderState)
}

func (g *globals) logger() *slog.Logger { return termout.Logger(g.stderr, g.verbose) }

const rootLong = `acmemail obtains S/MIME certificates for your own mail address from ACME CAs that
support RFC 8823 (identifier type "email", challenge "email-reply-00").

It creates the ACME order, watches your IMAP inbox for the CA's challenge mail, checks
that the mail is authentic (DKIM or S/MIME, From and To as expected), replies through
your own submission server so the reply carries your domain's DKIM signature, finalizes
with a fresh key, and exports a PKCS#12 file your mail client can import.

Try it without a real CA:  acmemail obtain --server sandbox alice@example.test

Progress goes to stderr; stdout carries only the result, so scripts can capture it.

` + configHelp

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "acmemail",
		Short:         "Obtain S/MIME certificates with ACME (RFC 8823)",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       versionString(),
	}
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetHelpTemplate(helpTemplate)
	root.PersistentFlags().CountVarP(&g.verbose, "verbose", "v", "log more (-v: steps, -vv: protocol details)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{Err: err}
	})
	root.PersistentFlags().StringVar(&g.configFile, "config", "", "configuration file (default $XDG_CONFIG_HOME/acmemail/config.toml); flags also come from it and from ACMEMAIL_<FLAG> variables, see CONFIGURATION in acmemail --help")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		g.started = true
		return g.settingsPreRun(cmd, args)
	}
	root.CompletionOptions.DisableDefaultCmd = true // ours has help, examples and a man page
	root.AddCommand(newObtainCmd(g), newLoginCmd(g), newSandboxCmd(g), newVersionCmd(g), newCompletionCmd(g))
	root.AddCommand(newDoctorCmd(g), newRespondCmd(g))
	root.AddCommand(newAccountCmd(g))
	root.AddCommand(newConfigCmd(g))
	root.AddCommand(newExportCmd(g))
	root.AddCommand(newRenewCmd(g), newRevokeCmd(g), newListCmd(g), newShowCmd(g), newForgetCmd(g))
	root.AddCommand(servercmd.New(g.serverEnv()))
	wireCompletions(g, root)
	emailArgs(root)
	return root
}

// serverEnv is what the server commands (and renew and list, for the server
// certificates) get from the root command.
func (g *globals) serverEnv() servercmd.Env {
	return servercmd.Env{Stdout: g.stdout, Stderr: g.stderr, Getenv: g.getenv, Logger: g.logger, OpenState: func() (*keystore.Store, error) { return openState(g.getenv) }}
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of acmemail",
		Long: "Print the version, commit and build date stamped into this binary at release\n" +
			"(goreleaser sets them with -ldflags); a binary built with go install shows its\n" +
			"module version and \"unknown\" for what was not stamped.",
		Example: "  acmemail version\n  acmemail --version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, d := commit, date
			if c == "" {
				c = "unknown"
			}
			if d == "" {
				d = "unknown"
			}
			_, err := io.WriteString(g.stdout, "acmemail "+versionString()+" (commit "+c+", built "+d+")\n")
			return err
		},
	}
}

// run is main without the process: testable, returns the exit status.
// orderStateHookKey is the context key of a function that sees every
// order state once it is recorded (tests only; see globals.onOrderState).
type orderStateHookKey struct{}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if getenv == nil {
		getenv = os.Getenv
	}
	if _, ok := stderr.(*os.File); !ok {
		// Progress, logs and the protocol trace write from several
		// goroutines; an *os.File takes that, a buffer in a test does not.
		stderr = &termout.LockedWriter{Mu: new(sync.Mutex), W: stderr}
	}
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	g.onOrderState, _ = ctx.Value(orderStateHookKey{}).(func(acmemail.OrderState))
	root := newRootCmd(g)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && !g.started {
		if _, ok := err.(*usageError); !ok {
			err = &usageError{Err: err}
		}
	}
	if err != nil {
		printError(stderr, err)
		if errors.Is(err, context.Canceled) && cmd != nil && (cmd.Name() == "obtain" || cmd.Name() == "renew") {
			io.WriteString(stderr, "acmemail: hint: "+interruptedHint(err)+"\n")
		}
		if ie := (*issuer.InputEndedError)(nil); errors.As(err, &ie) {
			io.WriteString(stderr, "acmemail: hint: "+inputEndedHint(ie)+"\n")
		}
		for _, h := range settingHints(err, g.settingSources) {
			io.WriteString(stderr, "acmemail: hint: "+h+"\n")
		}
		if _, ok := err.(*usageError); ok {
			path := "acmemail"
			if cmd != nil {
				path = cmd.CommandPath()
			}
			io.WriteString(stderr, "acmemail: hint: run '"+path+" --help' for usage\n")
		}
	}
	return interruptedCode(ctx, exitCode(err))
}

// interruptedCode is code, except for a run interrupted by a signal
// (signalContext): then the status says which one, 130 for SIGINT, 143
// for SIGTERM. The error alone does not say: most code returns
// ctx.Err(), which is context.Canceled whatever the cause.
func interruptedCode(ctx context.Context, code int) int {
	var se *signalError
	if code == exitInterrupted && errors.As(context.Cause(ctx), &se) {
		return se.exitCode()
	}
	return code
}

// emailArgs makes every command used as "... EMAIL" say what it misses
// in its own words, not cobra's "accepts 1 arg(s), received 0".
func emailArgs(c *cobra.Command) {
	for _, sub := range c.Commands() {
		emailArgs(sub)
	}
	if !strings.HasSuffix(c.Use, " EMAIL") {
		return
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return usageErrorf("%s needs the mail address: %s", cmd.Name(), cmd.UseLine())
		case len(args) > 1:
			return usageErrorf("%s takes one mail address, got %d (%s): %s", cmd.Name(), len(args), strings.Join(args, " "), cmd.UseLine())
		}
		return nil
	}
}

// interruptedHint says what running an interrupted obtain or renew again
// does, as the recorded order state decides it.
func interruptedHint(err error) string {
	var ie *issuer.InterruptedError
	switch {
	case !errors.As(err, &ie) || !ie.Ordered:
		return "run the same command again: nothing was ordered yet, and a key already made is kept"
	case ie.Answered:
		return "run the same command again to continue: the order and key are kept, and no challenge is answered twice"
	}
	return "run the same command again: its challenge mail came to this run, so the next one starts a new order, with the same key (a challenge is never answered twice)"
}
