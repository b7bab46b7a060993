package mailbox

import "time"

// SetIdleRestartInterval changes how often IDLE is re-issued, for tests
// that must not run concurrently with other watchers.
func SetIdleRestartInterval(d time.Duration) (restore func()) {
	old := idleRestartInterval
	idleRestartInterval = d
	return func() { idleRestartInterval = old }
}
