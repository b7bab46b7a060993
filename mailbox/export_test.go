package mailbox

import "time"

// SetIdleRestartInterval changes how often IDLE is re-issued, for tests
// that must not run concurrently with other watchers.
func SetIdleRestartInterval(d time.Duration) (restore func()) {
	old := idleRestartInterval
	idleRestartInterval = d
	return func() { idleRestartInterval = old }
}

// SetSMTPGreetingTimeout changes how long a STARTTLS server may take to
// greet, for tests that must not run concurrently with other senders.
func SetSMTPGreetingTimeout(d time.Duration) (restore func()) {
	old := smtpGreetingTimeout
	smtpGreetingTimeout = d
	return func() { smtpGreetingTimeout = old }
}
