// Command acmemail obtains S/MIME certificates from ACME CAs that support
// RFC 8823 (the email-reply-00 challenge), answering the CA's challenge
// mail through the user's own mailbox.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// signalContext is canceled by the first SIGINT or SIGTERM, with a
// *signalError as its cause, so that run can exit with the status that
// says which signal it was. Until stop, later signals are caught too: a
// second Ctrl-C does not kill a run that is cleaning up.
func signalContext(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			cancel(&signalError{sig})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}

// signalError is the cause of a run's cancellation by a signal. It is
// context.Canceled to errors.Is, as the context's own error is: code that
// returns context.Cause(ctx) stops as on any cancellation.
type signalError struct{ sig os.Signal }

func (e *signalError) Error() string {
	return context.Canceled.Error() + " (signal: " + e.sig.String() + ")"
}
func (e *signalError) Is(target error) bool { return target == context.Canceled }

// exitCode is 128 plus the signal's number, as a shell reports a process
// the signal killed: 130 for SIGINT, 143 for SIGTERM.
func (e *signalError) exitCode() int {
	if s, ok := e.sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return exitInterrupted
}
