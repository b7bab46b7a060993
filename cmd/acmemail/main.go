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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
