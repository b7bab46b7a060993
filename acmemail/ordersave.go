package acmemail

// SaveMode says how durably a changed OrderState must be written for an
// interrupted run to resume its order (see SaveModeFor).
type SaveMode int

const (
	// SaveNone: nothing resuming needs has changed; keep it in memory.
	SaveNone SaveMode = iota
	// SaveAtomic: write the whole state atomically, without the directory
	// fsync (a power failure may bring back the state before it; a killed
	// process loses nothing).
	SaveAtomic
	// SaveDurable: write it and fsync the file and its directory.
	SaveDurable
)

// SaveModeFor is how durably st must be written when prev is what was
// last written (nil for nothing yet).
//
// What an interrupted run needs to continue the order is the order itself
// (CA, URL, addresses, the certificate it replaces): that is written
// durably the first time, before the authorizations are fetched, so that
// the CA's challenge mail can never arrive for an order that is not on
// disk. Everything else the state records is read again from the CA when
// the order is continued (authorizations, whether a challenge was POSTed
// or the order finalized), and whether a challenge was answered is decided
// by the reply records, which are made durable before any reply is sent
// (the ReplyGuard). So a reply sent is recorded atomically but without
// the directory fsync, and a change of nothing else is not written.
func SaveModeFor(prev *OrderState, st OrderState) SaveMode {
	switch {
	case prev == nil || !sameOrder(*prev, st):
		return SaveDurable
	case repliesSent(st) != repliesSent(*prev):
		return SaveAtomic
	}
	return SaveNone
}

// sameOrder reports whether a and b record the same order: what resuming
// it needs.
func sameOrder(a, b OrderState) bool {
	if a.Directory != b.Directory || a.OrderURL != b.OrderURL || a.Replaces != b.Replaces ||
		!a.Created.Equal(b.Created) || len(a.Emails) != len(b.Emails) {
		return false
	}
	for i := range a.Emails {
		if a.Emails[i] != b.Emails[i] {
			return false
		}
	}
	return true
}

// repliesSent counts the authorizations of st whose reply was sent.
func repliesSent(st OrderState) int {
	n := 0
	for _, a := range st.Authorizations {
		if a.ReplySent {
			n++
		}
	}
	return n
}
