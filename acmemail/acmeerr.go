package acmemail

// ACMEError is how this package reports an error of the ACME client
// (github.com/mholt/acmez) while doing op: a *ProblemError when the CA
// sent a problem document, else err with op in front. Other packages that
// speak ACME through acmez (the mail servers' certificates) report the
// CA's words the same way, so the CLI's exit statuses and hints apply.
func ACMEError(op string, err error) error { return fromACME(op, err) }
